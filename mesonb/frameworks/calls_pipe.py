"""A scheduler driver's launches on a mesonb master's calls lane, pipelined, with the
answers nobody waits on at once read together, later, without a wake-up each.

The functions framework's launches (an ACCEPT each, answered ``202`` with no body) are
its most frequent calls, and the placement that sends one has nothing to do with the
``202``. On :class:`~mesonb.http.client.Connection` each request waits for its answer
before the next may go, so the client's loop woke up for every ``202``. Here a request
goes out at once (HTTP/1.1 pipelining: the lane answers in order), and while every request
in flight was sent ``lazy`` the socket is not read: those answers are read together, with
the next request that is awaited (:meth:`CallsPipe.drain` first), or :data:`READ_AFTER`
after the first of them at the latest (one wake-up for a burst's launches). Every answer is
still read and checked (the caller gets each, and raises
:class:`~mesonb.http.client.HTTPError` for an error as before). The driver sends its
launches here and its other calls the usual way, after :meth:`CallsPipe.drain`, so the
master meets the calls in the order they were made.

Plain TCP only (the driver keeps its :class:`~mesonb.http.lane.LaneConnection` over TLS,
and when the lane cannot be reached: :class:`~mesonb.http.lane.LaneUnreachable`). A
connection the master closed (idle, or after an answer with ``Connection: close``) costs
the requests written on it one new attempt each, on a new connection, as
:meth:`Connection.request` retries a stale one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mesonb.http import wire
from mesonb.http.client import HTTPError, Response
from mesonb.http.lane import CONNECT_TIMEOUT, LaneUnreachable
from mesonb.protocol.jsontext import dumpb

log = logging.getLogger(__name__)
READ_AFTER = 0.05  # seconds: the latest a lazily sent call's answer is read
_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


@dataclass(eq=False)
class _Sent:
    """A request written, its answer to come."""

    data: bytes
    answer: asyncio.Future[Response]
    lazy: bool  # nobody waits on the answer at once: the socket may be left unread
    tries: int = 1


class CallsPipe:
    """Pipelined calls to ``host:port`` (a calls lane); see the module docstring."""

    def __init__(self, host: str, port: int, headers: Mapping[str, str]) -> None:
        self.host, self.port = host, port
        self.default_headers = {**headers, **_JSON_HEADERS}
        self._writer: asyncio.StreamWriter | None = None
        self._answers: wire.ResponseReader | None = None
        self._sent: deque[_Sent] = deque()
        self._lock = asyncio.Lock()  # orders the writes while a connection opens
        self._reader: asyncio.Task[None] | None = None
        self._held: Any = None  # the transport left unread (only lazy answers to come)
        self._read_later: asyncio.TimerHandle | None = None
        self.closed = False

    async def post_json(self, path: str, payload: Any,
                        headers: Mapping[str, str]) -> Response:
        """POST ``payload`` as JSON; the answer, or HTTPError unless it is 2xx (as
        :meth:`Connection.post_json`). LaneUnreachable when no connection could be
        opened (nothing was sent)."""
        sent = self._request(path, payload, headers, lazy=False)
        async with self._lock:  # no wait unless a connection is being opened
            if self._writer is None or self._writer.is_closing():
                await self._connect()
            self._send(sent)
        response = await sent.answer
        if response.status >= 300:
            raise HTTPError(response.status, response.body, response.headers)
        return response

    async def open(self) -> None:
        """Open the connection (LaneUnreachable if it cannot be)."""
        async with self._lock:
            if self._writer is None or self._writer.is_closing():
                await self._connect()

    def pending(self) -> bool:
        """Whether answers are still to come."""
        return bool(self._sent)

    async def drain(self) -> None:
        """Read every answer to come and wait for the last (so the calls sent so far were
        carried out before what the caller sends next, by any way)."""
        if self._sent:
            last = self._sent[-1].answer
            self.read_answers()
            await asyncio.wait([last])

    def ready(self) -> bool:
        """Whether :meth:`send_now` can write at once (a connection open, none opening)."""
        return self._writer is not None and not self._writer.is_closing() and \
            not self._lock.locked() and not getattr(self._lock, "_waiters", None)

    def send_now(self, path: str, payload: Any,
                 headers: Mapping[str, str]) -> asyncio.Future[Response]:
        """POST ``payload`` as JSON now (:meth:`ready` first), its answer read lazily
        (see the module docstring): the future of the answer, whatever its status."""
        sent = self._request(path, payload, headers, lazy=True)
        self._send(sent)
        return sent.answer

    def _request(self, path: str, payload: Any, headers: Mapping[str, str],
                 lazy: bool) -> _Sent:
        data = wire.request("POST", path, f"{self.host}:{self.port}",
                            {**self.default_headers, **headers}, dumpb(payload))
        return _Sent(data, asyncio.get_running_loop().create_future(), lazy)

    def read_answers(self) -> None:
        """Read the answers to come now, lazy ones too."""
        for sent in self._sent:
            sent.lazy = False
        self._release()

    def close(self) -> None:
        """Close the connection; the answers still to come fail with ConnectionError."""
        self.closed = True
        self._drop_connection()
        self._fail(ConnectionError("the calls connection was closed"))

    # -- the connection ---------------------------------------------------------------
    async def _connect(self) -> None:
        if self.closed:
            raise ConnectionError("the calls connection was closed")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise LaneUnreachable(f"{self.host}:{self.port}: {exc}") from exc
        wire.read_small(writer.transport)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writer, self._answers = writer, wire.ResponseReader(reader)

    def _send(self, sent: _Sent) -> None:
        assert self._writer is not None
        self._sent.append(sent)
        self._writer.write(sent.data)
        if not sent.lazy:
            self._release()
        elif self._held is None and all(s.lazy for s in self._sent):
            self._hold()
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read())

    def _hold(self) -> None:
        """Leave the socket unread: only lazy answers are to come."""
        assert self._writer is not None
        transport: Any = self._writer.transport
        if not transport.is_reading():  # paused by its reader (a full buffer): leave it
            return
        transport.pause_reading()
        self._held = transport
        self._read_later = asyncio.get_running_loop().call_later(READ_AFTER,
                                                                  self.read_answers)

    def _release(self) -> None:
        transport, self._held = self._held, None
        if self._read_later is not None:
            self._read_later.cancel()
            self._read_later = None
        if transport is not None:
            transport.resume_reading()

    async def _read(self) -> None:
        """Read the answers in order, each to its request."""
        try:
            while self._sent:
                answers = self._answers
                assert answers is not None
                try:
                    head = await answers.head()
                    body = await answers.body()
                except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
                    await self._again(exc)
                    continue
                sent = self._sent.popleft()
                if not sent.answer.done():
                    sent.answer.set_result(Response(head.status, head.headers, body))
                if not answers.keep_alive and self._sent:  # the rest were not read there
                    await self._again(ConnectionResetError("the master closed the calls "
                                                           "connection"))
                elif not answers.keep_alive:
                    self._drop_connection()
        finally:
            self._reader = None

    async def _again(self, exc: BaseException) -> None:
        """The connection broke (or was closed) with answers to come: the requests get one
        new attempt each on a new connection, in order; those tried twice fail."""
        self._drop_connection()
        again = [s for s in self._sent if s.tries == 1 and not s.answer.done()]
        failed = [s for s in self._sent if s not in again]
        self._sent.clear()
        for sent in failed:
            if not sent.answer.done():
                sent.answer.set_exception(ConnectionResetError(str(exc) or type(exc).__name__))
        if not again:
            return
        async with self._lock:
            try:
                await self._connect()
            except (LaneUnreachable, ConnectionError) as err:
                for sent in again:
                    if not sent.answer.done():
                        sent.answer.set_exception(ConnectionResetError(str(err)))
                return
            for sent in again:
                sent.tries += 1
                sent.lazy = False  # a retry is read at once
                self._sent.append(sent)
                assert self._writer is not None
                self._writer.write(sent.data)

    def _drop_connection(self) -> None:
        self._release()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self._writer = self._answers = None

    def _fail(self, exc: BaseException) -> None:
        while self._sent:
            sent = self._sent.popleft()
            if not sent.answer.done():
                sent.answer.set_exception(exc)
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
