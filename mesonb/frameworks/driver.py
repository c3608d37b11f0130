"""The scheduler driver every mesonb framework uses: the Mesos v1 scheduler API, client side.

It subscribes, hands events to a handler, sends calls with the stream id, acknowledges
status updates, and when the stream breaks re-subscribes with its framework id (backoff
0.25 s doubling to 15 s; at once after a 307 to a new leader). Given a ``zk://`` URL it
watches the election in ZooKeeper (:class:`mesonb.discovery.LeaderDetector`): when
ZooKeeper names another leader it leaves the old master's stream (or a connection still
opening) at once and re-subscribes to the new one without back-off, so a failover costs
the old leader's session timeout and little more, even when the old leader hangs rather
than dies. Without the watch (ZooKeeper unreachable when it started) it looks the leader
up before every reconnection instead. It uses
only the public API, exactly what a pymesos framework sees. With a master in its own
process and loop (``Cluster.local()``) the same calls and events pass in-process, without
a socket (:mod:`mesonb.http.inproc`).

A handler is any object with some of these methods (plain or ``async``)::

    on_subscribed(body)         # {"framework_id": {...}, "heartbeat_interval_seconds": ..}
    on_offers(offers)           # list of Offer dicts
    on_rescind(offer_id)        # str
    on_inverse_offers(offers)   # list of InverseOffer JSON (maintenance)
    on_rescind_inverse_offer(inverse_offer_id)  # str
    on_update(status)           # TaskStatus dict; acknowledged after this returns
    on_message(body), on_failure(body), on_heartbeat()
    on_update_operation_status(body)  # {"status": OperationStatus} of an operation with an id
    on_error(message)           # the master sent ERROR; the driver stops after this
    on_disconnected()           # the stream broke; the driver is reconnecting
    on_events_handled()         # the events of one read from the stream were all handled

Example::

    driver = SchedulerDriver("127.0.0.1:5050", {"user": "me", "name": "demo"}, handler)
    await driver.start()
    await driver.launch(offer, [task_info])
    await driver.stop(teardown=True)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from typing import Any
from urllib.parse import urlsplit

from mesonb import discovery, tls
from mesonb.http import lane
from mesonb.http.client import Connection, HTTPError, open_stream
from mesonb.protocol.jsontext import loads_lenient
from mesonb.protocol.mesos import FrameworkInfo
from mesonb.protocol.recordio import Decoder
from mesonb.protocol.scheduler import SCHEDULER_PATH, Call, CallType, Subscribe
from mesonb.security.local_secret import secret_for

from .calls_pipe import CallsPipe
from .driver_calls import ACK_DELAY as ACK_DELAY
from .driver_calls import TERMINAL_ACK_DELAY as TERMINAL_ACK_DELAY
from .driver_calls import SchedulerCalls
from .driver_calls import _acknowledge as _acknowledge  # the tests read these two here
from .driver_calls import _filters as _filters

log = logging.getLogger(__name__)
URL_SCHEMES = ("http://", "https://")


def master_url(master: str) -> str:
    """``host:port``, ``host`` (port 5050) or ``http(s)://host:port`` -> ``http(s)://host:port``
    (``https`` when given, or when this process speaks TLS: :mod:`mesonb.tls`)
    (read by :func:`mesonb.discovery.parse_master`).

    A ``zk://`` URL names no single master: resolve it with :func:`resolve_master_url`.
    """
    if discovery.is_zk(master):
        raise ValueError(f"{master!r} must be resolved to the leading master first: "
                         "await resolve_master_url(master)")
    explicit = master.strip().lower()
    secure = tls.wants_tls(explicit if explicit.startswith(URL_SCHEMES) else "")
    scheme = "https" if secure else "http"
    return f"{scheme}://{discovery.parse_master(master, schemes=URL_SCHEMES)}"


async def resolve_master_url(master: str, timeout: float = 30.0) -> str:
    """The leading master's ``http://host:port``: ``zk://`` URLs are resolved through
    ZooKeeper (:func:`mesonb.discovery.resolve_master`), anything else by
    :func:`master_url`. Raises ValueError (malformed) or TimeoutError (no leader)."""
    if discovery.is_zk(master):
        return master_url(await discovery.resolve_master(master, timeout))
    return master_url(master)


class FrameworkError(Exception):
    """The master sent ERROR on the subscription: the driver stops (as Mesos advises)."""


class SchedulerDriver(SchedulerCalls):
    """A framework's connection to the master (see the module docstring); its calls
    and acknowledgements: :class:`~.driver_calls.SchedulerCalls`."""

    def __init__(
        self,
        master: str,
        framework_info: dict[str, Any],
        handler: Any,
        *,
        secret: str | None = None,
        implicit_acknowledgements: bool = True,
        backoff_max: float = 15.0,
    ) -> None:
        self.master = master
        if discovery.is_zk(master):
            discovery.parse_zk_url(master)  # ValueError now rather than in the background
            self.url = ""  # resolved in start() and again on every reconnection
        else:
            self.url = master_url(master)
        self.framework_info = dict(framework_info)
        self.handler = handler
        self.implicit_acknowledgements = implicit_acknowledgements
        self.backoff_max = backoff_max
        secret = secret or secret_for(master)  # a local cluster of this user's: its secret
        self.headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        self.framework_id: str | None = (framework_info.get("id") or {}).get("value")
        self.stream_id: str | None = None
        self.heartbeat_interval = 15.0
        self.master_info: dict[str, Any] = {}
        self._calls = Connection.to(self.url or tls.url("127.0.0.1", 5050), self.headers,
                                    inproc=True)
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._stopping = False
        self._stream: Any = None
        self._after_events = getattr(handler, "on_events_handled", None)
        self._acks: set[asyncio.Future[Any]] = set()
        self._batching = False  # the master takes arrays of calls (mesonb, not Mesos)
        self._ack_queue: list[dict[str, Any]] = []
        self._ack_timer: asyncio.TimerHandle | None = None
        self._ack_due = 0.0  # when the acks waiting go out on their own (loop time)
        # With a zk:// master: a watch on the election, so a new leader is met at once.
        self._detector: discovery.LeaderWatch | None = None
        self._leader: str | None = None  # the host:port ZooKeeper names, None if unknown
        self._opening: asyncio.Future[Any] | None = None  # a SUBSCRIBE being sent
        self._wake = asyncio.Event()  # ends a back-off sleep: a leader was named, or stop()
        self._moved = False  # the leader changed since the last attempt: restart the back-off

    # -- life cycle ------------------------------------------------------------------
    async def start(self, timeout: float = 30.0) -> str:
        """Subscribe (and keep re-subscribing); return the framework id once subscribed."""
        if discovery.is_zk(self.master):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            await self._watch_leader(timeout)
            if self._leader is not None:
                self._use(master_url(self._leader))
            else:  # no leader yet, or no watch: wait for one
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError(f"no leading master under {self.master} "
                                       f"within {timeout:g}s")
                self._use(await resolve_master_url(self.master, left))
        self._batching = await self._master_is_mesonb()
        self._task = asyncio.create_task(self._run(), name="mesonb-scheduler-driver")
        waiter = asyncio.create_task(self._subscribed.wait())
        done, _ = await asyncio.wait({waiter, self._task}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            waiter.cancel()
            self._task.result()  # raises what stopped the driver
        if waiter not in done:
            waiter.cancel()
            raise TimeoutError(f"could not subscribe to {self.url} within {timeout:g}s")
        assert self.framework_id is not None
        return self.framework_id

    async def stop(self, teardown: bool = False) -> None:
        """Stop; with ``teardown`` the master also kills every task of the framework."""
        if teardown and self.framework_id and self.stream_id:
            try:
                await self.send(Call(type=CallType.TEARDOWN))
            except (OSError, HTTPError) as exc:
                log.warning("TEARDOWN failed: %s", exc)
        self._stopping = True
        self._wake.set()
        if self._ack_timer is not None:
            self._ack_timer.cancel()  # the agents resend what was not acknowledged
        if self._stream is not None:
            self._stream.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._detector is not None:
            detector, self._detector = self._detector, None
            await detector.stop()
        self._calls.close()
        if self._pipe is not None:
            self._pipe.close()

    def _use(self, url: str) -> None:
        """Send calls to ``url`` from now on."""
        if url != self.url:
            if self.url:
                log.info("the leading master is now %s (was %s)", url, self.url)
            self.url = url
            self._calls.close()
            self._calls = Connection.to(url, self.headers, inproc=True)
            if self._pipe is not None:
                self._pipe.close()
                self._pipe = None

    def _pipe_launches(self) -> None:
        """Launches go over a pipelined connection (:mod:`.calls_pipe`) while the master
        names a plain TCP calls lane; it opens in the background at each subscription
        (launches go the usual way until it is open, and for good if it cannot be)."""
        calls, pipe = self._calls, self._pipe
        plain = isinstance(calls, lane.LaneConnection) and not calls.secure \
            and not calls.failed
        if pipe is not None and (not plain or (pipe.host, pipe.port) != (calls.host,
                                                                          calls.port)):
            pipe.close()
            self._pipe = pipe = None
        if plain and pipe is None:
            self._pipe = pipe = CallsPipe(calls.host, calls.port, calls.default_headers)
        if pipe is not None and not pipe.ready():  # new, or its connection was lost
            self._spawn(self._open_pipe(pipe))

    async def _open_pipe(self, pipe: CallsPipe) -> None:
        try:
            await pipe.open()
        except (lane.LaneUnreachable, ConnectionError) as exc:
            log.info("launches go the usual way: %s", exc)
            if self._pipe is pipe:
                self._pipe = None
            pipe.close()

    async def _watch_leader(self, timeout: float) -> None:
        """Start watching the election; if ZooKeeper cannot be reached, leave plain lookups."""
        watch = discovery.LeaderWatch(self.master, self._leader_changed)
        if not await watch.start(timeout):
            return
        # The first report came before start() returned, so self._leader holds it already.
        if self._stopping:
            await watch.stop()
        else:
            self._detector = watch

    def _leader_changed(self, address: str | None) -> None:
        """ZooKeeper names a (new) leader, on the loop: leave another master's stream, or
        a SUBSCRIBE still waiting for it, at once, and end a back-off sleep."""
        self._leader = address
        if address is None or self._stopping:
            return
        url = master_url(address)
        if url != self.url:  # _use logs the move
            self.stream_id = None  # calls wait for the new subscription
            self._use(url)
            self._moved = True
            if self._opening is not None:
                self._opening.cancel()
            if self._stream is not None:
                self._stream.close()
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        """Back off for ``seconds``, less if ZooKeeper names a leader or stop() is called."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _find_leader(self) -> bool:
        """Before a retry: point at the leader ZooKeeper names; False if none is known."""
        if not discovery.is_zk(self.master):
            return True
        if self._detector is not None:  # the watch knows; it ends the sleep when it changes
            if self._leader is None:
                return False
            self._use(master_url(self._leader))
            return True
        try:
            self._use(await resolve_master_url(self.master, self.backoff_max))
        except (TimeoutError, OSError, ValueError) as exc:
            log.info("no leading master under %s yet (%s)", self.master, exc)
            return False
        return True

    async def _run(self) -> None:
        delay = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            if delay:
                await self._sleep(delay * random.uniform(0.5, 1.0))
                if self._stopping:
                    break
                if self._moved:  # a new leader: its refusals start the back-off over
                    delay = 0.0
                if not await self._find_leader():
                    delay = self._next_delay(delay)
                    continue
            self._wake.clear()
            self._moved = False
            url = self.url
            began = loop.time()
            try:
                await self._subscribe_once(url)
                delay = 0.0
            except HTTPError as exc:
                if exc.status == 307 and exc.headers.get("location"):
                    self._use(_redirect(url, exc.headers["location"]))
                    delay = 0.0
                    continue
                if 400 <= exc.status < 500 and exc.status != 408:
                    raise  # the master refuses this framework: do not spin
                delay = 0.0 if self.url != url else self._next_delay(delay)
                log.info("subscribe to %s failed (%s); retrying", url, exc)
            except FrameworkError as exc:
                log.warning("the master sent ERROR (%s); the driver stops", exc)
                self.stream_id = None
                self._subscribed.clear()
                raise
            except (OSError, asyncio.IncompleteReadError, ConnectionError) as exc:
                if self.url != url:
                    delay = 0.0  # ZooKeeper named another leader: go there at once
                elif self._subscribed.is_set():
                    # A stream that was up broke (e.g. the leader died): retry at once on
                    # the leader the watch names (after 0.1 s if that stream lasted under
                    # a second, so a master that drops every stream is not hammered), and
                    # start the back-off over, so every failover is met quickly.
                    if self._leader is not None and loop.time() - began >= 1.0:
                        self._use(master_url(self._leader))
                        delay = 0.0
                    else:
                        delay = 0.1
                else:
                    delay = self._next_delay(delay)
                log.info("connection to %s lost (%s); retrying", url, exc)
            if not self._stopping:
                self.stream_id = None
                self._subscribed.clear()
                await self._dispatch("on_disconnected")

    def _next_delay(self, delay: float) -> float:
        """Back-off for the next attempt: 0.25 s doubling up to ``backoff_max`` (15 s)."""
        return min(max(delay * 2, 0.25), self.backoff_max)

    async def _subscribe_once(self, url: str) -> None:
        info = dict(self.framework_info)
        if self.framework_id:
            info["id"] = {"value": self.framework_id}
        call = Call(type=CallType.SUBSCRIBE, framework_id=self.framework_id,
                    subscribe=Subscribe(framework_info=FrameworkInfo.from_json(info)))
        self._opening = opening = asyncio.ensure_future(
            open_stream(url, SCHEDULER_PATH, call.to_json(), self.headers, inproc=True))
        try:
            self._stream = stream = await opening
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # stop()
            raise ConnectionAbortedError("ZooKeeper named another leader") from None
        finally:
            self._opening = None
        if url != self.url:  # it opened as ZooKeeper named another leader
            stream.close()
            raise ConnectionAbortedError("ZooKeeper named another leader")
        self.stream_id = stream.headers.get("mesos-stream-id")
        self._calls = lane.calls_for(self._calls, stream.headers)  # a mesonb master's calls lane
        self._pipe_launches()
        decoder = Decoder()
        loop = asyncio.get_running_loop()
        last = loop.time()
        stale = False
        timer: asyncio.TimerHandle | None = None

        def watchdog() -> None:
            """Mesos's advice: a stream with no event for 5 heartbeats is dead."""
            nonlocal stale, timer
            idle, limit = loop.time() - last, self.heartbeat_interval * 5
            if idle >= limit:
                stale = True
                stream.close()
            else:
                timer = loop.call_later(limit - idle, watchdog)

        timer = loop.call_later(self.heartbeat_interval * 5, watchdog)
        try:
            async for chunk in stream.chunks:
                last = loop.time()
                if type(chunk) is list:  # a master in this process: the events themselves
                    for event in chunk:
                        await self._event(event)
                else:
                    for record in decoder.feed(chunk):
                        await self._event(loads_lenient(record))
                if self._after_events is not None:  # what the handler batched goes now
                    self._after_events()
                if timer.when() > last + self.heartbeat_interval * 5:  # SUBSCRIBED set it
                    timer.cancel()
                    timer = loop.call_later(self.heartbeat_interval * 5, watchdog)
            raise ConnectionResetError("the master closed the event stream")
        except (OSError, asyncio.IncompleteReadError, ConnectionError) as exc:
            if stale:
                raise ConnectionResetError("no heartbeat from the master") from None
            raise exc from None
        finally:
            timer.cancel()
            stream.close()

    async def _event(self, event: dict[str, Any]) -> None:
        kind = event.get("type", "UNKNOWN")
        body: Any = event.get(kind.lower())
        if kind == "UPDATE":  # the most frequent event first
            status = body["status"]
            await self._dispatch("on_update", status)
            if self.implicit_acknowledgements and status.get("uuid"):
                self._queue_ack(status)
        elif kind == "SUBSCRIBED":
            self.framework_id = body["framework_id"]["value"]
            self.heartbeat_interval = float(body.get("heartbeat_interval_seconds") or 15.0)
            self.master_info = body.get("master_info") or {}
            self._subscribed.set()
            await self._dispatch("on_subscribed", body)
        elif kind == "OFFERS":
            await self._dispatch("on_offers", body.get("offers", []))
        elif kind == "RESCIND":
            await self._dispatch("on_rescind", body["offer_id"]["value"])
        elif kind == "INVERSE_OFFERS":  # maintenance: answer with ACCEPT/DECLINE_INVERSE_OFFERS
            await self._dispatch("on_inverse_offers", body.get("inverse_offers", []))
        elif kind == "RESCIND_INVERSE_OFFER":
            await self._dispatch("on_rescind_inverse_offer", body["inverse_offer_id"]["value"])
        elif kind == "ERROR":
            message = body.get("message", "")
            await self._dispatch("on_error", message)
            # Mesos: a scheduler that gets ERROR should abort (e.g. another scheduler took
            # over its framework id); re-subscribing would only take the id back.
            raise FrameworkError(message)
        elif kind == "HEARTBEAT":
            await self._dispatch("on_heartbeat")
        elif kind in ("MESSAGE", "FAILURE"):
            await self._dispatch(f"on_{kind.lower()}", body)
        elif kind == "UPDATE_OPERATION_STATUS":  # {"status": OperationStatus}
            await self._dispatch("on_update_operation_status", body)
        else:
            log.debug("ignoring event %s", kind)

    async def _dispatch(self, name: str, *args: Any) -> None:
        method = getattr(self.handler, name, None)
        if method is None:
            return
        try:
            result = method(*args)
            if result is not None and inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("framework handler %s failed", name)

    async def _master_is_mesonb(self) -> bool:
        try:
            answer = await self._calls.request("GET", "/version")
            return answer.status == 200 and "mesonb_version" in (answer.json() or {})
        except (OSError, ValueError, ConnectionError):
            return False


def _redirect(url: str, location: str) -> str:
    """``url``'s scheme with the master a 307's ``Location`` names."""
    return f"{urlsplit(url).scheme}://{discovery.redirected_master(location)}"

