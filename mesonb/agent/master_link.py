"""The agent's one WebSocket to the leading master, kept open with Mesos's back-off.

:class:`MasterLink` connects to ``ws://<master>/mesonb/v1/agent`` (following a 307 from a
non-leading master; with ``--master zk://...`` the leader is looked up in ZooKeeper before
every connection, so the agent finds the new leader after a failover), hands every
:class:`MasterCommand` to the agent, and reconnects after
a randomized exponential back-off when the connection drops (a master in this process
and loop is reached in-process instead, :mod:`mesonb.http.inproc`). It knows nothing about
registration: the agent sends REGISTER from ``on_open`` and re-sends it on the same
:class:`Backoff` until REGISTERED arrives, as Mesos's ``doReliableRegistration`` does.

With a ``zk://`` master it watches the election (:class:`mesonb.discovery.LeaderDetector`).
When ZooKeeper names a new leader the link leaves the old one, resets the back-off, and
connects to the new one after a random ``uniform(0, LEADER_SPREAD)`` delay; while that
leader answers 503 (elected, not serving yet) it retries every ``LEADER_RETRY`` seconds
rather than on the registration back-off, which by then may have grown to a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from tornado.websocket import WebSocketClosedError

from mesonb import discovery, tls
from mesonb.agent import ws_client
from mesonb.agent.command_reader import CommandReader
from mesonb.http import inproc
from mesonb.protocol.agent import AGENT_PATH, AgentCall, MasterCommand
from mesonb.protocol.errors import BadRequest
from mesonb.protocol.jsontext import dumpb

log = logging.getLogger(__name__)

MASTER_SCHEMES = ("http://", "ws://")  # accepted (and dropped) before --master's host:port
MAX_REDIRECTS = 5
MAX_MESSAGE_SIZE = 64 * 1024 * 1024
# After a leader change every agent reconnects within uniform(0, LEADER_SPREAD) seconds,
# so that thousands of them do not all register in the same instant. It is a constant,
# not scaled with the cluster: an agent does not know how many others there are, and no
# measurement yet shows a better value than 0.2 s (it adds at most 0.2 s to a failover).
LEADER_SPREAD = 0.2
# Seconds between tries while the master ZooKeeper names as leader answers 503.
LEADER_RETRY = (0.2, 0.5)


class Backoff:
    """Mesos's registration back-off: wait ``uniform(0, bound)``, the bound doubling from
    ``factor`` up to ``maximum``; :meth:`reset` once registered.

    >>> b = Backoff(1.0, 4.0, rng=lambda: 1.0)
    >>> [b.next() for _ in range(4)]
    [1.0, 2.0, 4.0, 4.0]
    """

    def __init__(
        self, factor: float, maximum: float, rng: Callable[[], float] = random.random
    ) -> None:
        self.factor = factor
        self.maximum = max(maximum, 0.0)
        self._rng = rng
        self._bound = factor

    def next(self) -> float:
        bound = min(self._bound, self.maximum)
        self._bound = min(self._bound * 2, self.maximum) if self._bound > 0 else self.factor
        return bound * self._rng()

    def reset(self) -> None:
        self._bound = self.factor


def parse_master(spec: str) -> str:
    """``--master`` as ``host:port``: accepts ``host:port``, a bare ``host`` (port 5050) and
    a leading ``http://`` or ``ws://`` (:func:`mesonb.discovery.parse_master`); a ``zk://``
    URL is checked and returned as it is (it is resolved on every connection); raises
    ValueError otherwise."""
    spec = spec.strip()
    try:
        if discovery.is_zk(spec):
            discovery.parse_zk_url(spec)
            return spec
        return discovery.parse_master(spec, schemes=MASTER_SCHEMES)
    except ValueError as exc:
        raise ValueError(f"--master {str(exc).removeprefix('master ')}") from None


async def resolve_master(spec: str, timeout: float = 10.0) -> str:
    """The ``host:port`` of the leading master named by ``--master``
    (:func:`mesonb.discovery.resolve_master`). Raises TimeoutError when no master leads."""
    return await discovery.resolve_master(spec, timeout, schemes=MASTER_SCHEMES)


def follow_redirect(url: str, location: str) -> str:
    """The WebSocket URL a 307 ``Location`` points at (Mesos sends ``//host:port/path``)."""
    current = urlsplit(url)
    if location.startswith("//"):
        return f"{current.scheme}:{location}"
    if location.startswith("/"):
        return f"{current.scheme}://{current.netloc}{location}"
    target = urlsplit(location)
    scheme = {"http": "ws", "https": "wss"}.get(target.scheme, target.scheme)
    if scheme in ("ws", "wss") and target.netloc:
        return f"{scheme}://{target.netloc}{target.path or current.path}"
    return f"{current.scheme}://{location.rstrip('/')}{current.path}"  # bare host:port


class MasterLink:
    """One WebSocket to the master, reconnected with back-off until :meth:`stop`."""

    def __init__(
        self,
        master: str,
        *,
        on_open: Callable[[], None],
        on_command: Callable[[MasterCommand], None],
        on_close: Callable[[], None],
        secret: str | None = None,
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.master = master
        self.secret = secret
        self.backoff = backoff or Backoff(1.0, 60.0)
        self.connect_timeout = connect_timeout
        self.master_address: str | None = None  # host:port we are connected to
        self._on_open = on_open
        self._on_command = on_command
        self._on_close = on_close
        # The master's socket (ws_client.WebSocket), or an in-process link (inproc.Link)
        self._conn: Any = None
        self._outbox: list[AgentCall] = []
        self._read_commands = CommandReader()  # load_commands, RUN_TASK's parts shared
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # set by start()
        self._stopping = False
        self._wake = asyncio.Event()
        # With a zk:// master: a watch on the election, so a new leader is met at once.
        self._detector: discovery.LeaderWatch | None = None
        self._leader: str | None = None
        self._trying: str | None = None  # host:port of the connection being opened

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def start(self) -> None:
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run())

    async def stop(self, farewell: AgentCall | None = None) -> None:
        """Send ``farewell`` (e.g. UNREGISTER) if connected, close, and stop reconnecting."""
        self._stopping = True
        self._wake.set()
        if self._detector is not None:
            detector, self._detector = self._detector, None
            await detector.stop()
        conn = self._conn
        if conn is not None:
            self._flush(conn)  # what this turn queued goes before the farewell
            if farewell is not None:
                if _in_process(conn):
                    with contextlib.suppress(WebSocketClosedError, OSError):
                        await conn.write_message([farewell])
                else:
                    conn.send(dumpb(farewell.to_json()))
            conn.close(1000, "agent stopping")
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5.0)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            self._task = None

    def send(self, call: AgentCall) -> bool:
        """Queue one message for this loop turn's frame; False when there is no connection
        (the caller retries). Messages sent in one turn leave together as one frame."""
        conn = self._conn
        if conn is None:
            return False
        if not self._outbox:
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self._flush, conn)
        self._outbox.append(call)
        return True

    def _flush(self, conn: Any) -> None:
        messages, self._outbox = self._outbox, []
        if not messages or conn is not self._conn:
            return
        if isinstance(conn, ws_client.WebSocket):  # one text frame: an object or an array
            conn.send(dumpb(messages[0].to_json() if len(messages) == 1
                            else [m.to_json() for m in messages]))
            return
        try:  # a master in this process takes the calls as they are (read-only from now)
            fut = conn.write_message(messages)
        except WebSocketClosedError:
            return
        fut.add_done_callback(_swallow_closed)

    def reconnect(self, why: str) -> None:
        """Drop the connection (e.g. the master stopped pinging); the loop reconnects."""
        conn = self._conn
        if conn is not None:
            log.warning("dropping the master connection: %s", why)
            conn.close(1001, why[:100])

    # -- the loop -------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            try:
                conn = await self._connect()
            except Exception as exc:
                delay = self.backoff.next()
                if self._leader_not_ready(exc):
                    delay = min(delay, random.uniform(*LEADER_RETRY))
                log.warning("cannot reach master %s (%s); retrying in %.2fs",
                            self.master, _describe(exc), delay)
                await self._sleep(delay)
                continue
            if self._stopping:
                conn.close()
                break
            self._conn = conn
            self._wake.clear()  # a wake-up meant for the wait before this connection
            log.info("connected to master %s", self.master_address)
            try:
                self._on_open()
                await self._read(conn)
            finally:
                self._conn = None
                self._on_close()
            if not self._stopping:
                delay = self.backoff.next()
                log.warning("lost the master connection; reconnecting in %.2fs", delay)
                await self._sleep(delay)

    async def _read(self, conn: Any) -> None:
        if _in_process(conn):  # the master hands its messages over as it flushes them
            conn.deliver_to(self._take)
            await conn.wait_closed()
            return
        await conn.mesonb_inbox.deliver_to(self._take)

    def _take(self, message: str | bytes | list[Any]) -> None:
        try:
            commands = (self._read_commands(message) if not isinstance(message, list)
                        else [_command(m) for m in message])  # in-process
        except BadRequest as exc:
            log.warning("ignoring a malformed message from the master: %s", exc.message)
            return
        for command in commands:
            try:
                self._on_command(command)
            except Exception:
                log.exception("failed to handle %s from the master", command.type)

    async def _watch_leader(self) -> None:
        """Start watching the election (zk:// masters only); errors leave plain lookups."""
        watch = discovery.LeaderWatch(self.master, self._leader_changed)
        if not await watch.start(self.connect_timeout):
            return
        if self._stopping:
            await watch.stop()
            return
        self._detector = watch

    def _leader_changed(self, address: str | None) -> None:
        """ZooKeeper names a (new) leader: drop a link to another master, start the
        back-off over and reconnect after ``uniform(0, LEADER_SPREAD)``, which spreads
        thousands of agents' registrations."""
        previous, self._leader = self._leader, address
        if address is None or self._stopping:
            return
        if address != previous:
            self.backoff.reset()
        conn = self._conn
        if conn is not None:
            if self.master_address in (None, address):
                return  # already there
            log.info("the leading master is now %s; leaving %s", address, self.master_address)
            conn.close(1001, "a new master leads")
        asyncio.get_running_loop().call_later(random.uniform(0, LEADER_SPREAD), self._wake.set)

    def _leader_not_ready(self, exc: BaseException) -> bool:
        """The master ZooKeeper names as leader answered 503: elected, not serving yet."""
        return (isinstance(exc, ws_client.HandshakeRefused) and exc.code == 503
                and self._leader is not None and self._trying == self._leader)

    async def _connect(self) -> Any:
        if discovery.is_zk(self.master) and self._detector is None:
            await self._watch_leader()
        if self._leader is not None:
            address = self._leader
        else:
            address = await resolve_master(self.master, self.connect_timeout)
        url = f"{tls.ws_scheme()}://{address}{AGENT_PATH}"
        headers = {"Authorization": f"Bearer {self.secret}"} if self.secret else {}
        host, _, port = address.rpartition(":")
        endpoint = inproc.find_endpoint(host.strip("[]"), int(port)) if port.isdigit() else None
        link = endpoint.open_link(AGENT_PATH, headers) if endpoint is not None else None
        if link is not None:  # the master runs in this process: no socket
            self.master_address = address
            return link
        for _ in range(MAX_REDIRECTS + 1):
            self._trying = urlsplit(url).netloc
            inbox = _Inbox()
            try:
                conn = await ws_client.connect(
                    url, headers, on_message=inbox, timeout=self.connect_timeout,
                    ssl_context=tls.client_context() if tls.wants_tls(url) else None,
                    max_message_size=MAX_MESSAGE_SIZE)
            except ws_client.HandshakeRefused as exc:
                location = exc.headers.get("location")
                if exc.code in (301, 302, 303, 307, 308) and location:
                    url = follow_redirect(url, location)
                    log.info("master redirected the agent to %s", url)
                    continue
                raise
            self.master_address = urlsplit(url).netloc
            conn.mesonb_inbox = inbox  # type: ignore[attr-defined]
            return conn
        raise ConnectionError(f"too many redirects from {self.master}")

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less when woken (a new leader, stop()). A wake-up that came
        while connecting is not lost: it ends this wait at once."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()


class _Inbox:
    """The master's messages on one connection, taken as the socket reads each frame (its
    ``on_message``: no queue, future and task wake-up per message); those before
    :meth:`deliver_to` wait for it. None from the socket: the connection closed."""

    def __init__(self) -> None:
        self._take: Callable[[str | bytes], None] | None = None
        self._early: list[str | bytes] = []
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def __call__(self, message: str | bytes | None) -> None:
        if message is None:
            if not self._closed.done():
                self._closed.set_result(None)
        elif self._take is not None:
            self._take(message)
        else:
            self._early.append(message)

    async def deliver_to(self, take: Callable[[str | bytes], None]) -> None:
        """Hand every message to ``take``, in order, until the connection closes."""
        early, self._early = self._early, []
        for message in early:
            take(message)
        self._take = take
        await self._closed


def _in_process(conn: object) -> bool:
    return getattr(conn, "in_process", False)


def _command(message: MasterCommand | dict) -> MasterCommand:
    """A command a master in this process handed over: as it is, or read from its JSON."""
    return message if isinstance(message, MasterCommand) else MasterCommand.from_json(message)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ws_client.HandshakeRefused):
        body = ": " + exc.body.decode("utf-8", "replace")[:200] if exc.body else ""
        return f"HTTP {exc.code}{body}"
    return f"{type(exc).__name__}: {exc}"


def _swallow_closed(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        exc = fut.exception()
        if exc is not None and not isinstance(exc, WebSocketClosedError):
            log.warning("failed to send to the master: %s", exc)
