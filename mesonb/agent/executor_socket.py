"""The executor API on a local socket, for mesonb's own executors.

The agent serves ``POST /api/v1/executor`` on its HTTP port, which any Mesos executor
reaches through ``MESOS_AGENT_ENDPOINT``. mesonb's executors (command, default,
functions) are also given this socket's address in ``MESONB_AGENT_SOCKET`` and use it:
the same HTTP/1.1 requests and answers, the same credentials, checks and errors (the
functions of :mod:`.executor_api`), parsed by :mod:`mesonb.http.wire` (httptools) instead
of tornado's request machinery, which cost the agent about 150 us of CPU per call against
30 us here.

The socket is a Linux abstract Unix socket named after the agent's work directory, so a
restarted agent has the same address and executors that outlived it find it again. Where
it cannot be made (another OS, the name taken) the agent carries on without it and
executors use the HTTP port.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mesonb.http import wire
from mesonb.http.base import RECORDIO, check_json_accept, check_json_body, method_not_allowed
from mesonb.protocol.errors import ProtocolError
from mesonb.protocol.executor import BATCH_HEADER, EXECUTOR_PATH, SOCKET_ENV, ExecutorCallType

from .executor_api import EventStream, authorize, carry_out, parse_calls

if TYPE_CHECKING:
    from .surface import AgentSurface

log = logging.getLogger(__name__)
__all__ = ["SOCKET_ENV", "ExecutorSocket", "socket_name", "socket_path"]
_ACCEPTED = wire.response(202)


def socket_name(work_dir: Path) -> str:
    """The abstract socket's address for an agent work directory, ``unix:@mesonb-...``."""
    digest = hashlib.sha256(str(Path(work_dir).resolve()).encode()).hexdigest()[:20]
    return f"unix:@mesonb-agent-{digest}"


def socket_path(address: str) -> str:
    """``unix:@name`` (abstract) or ``unix:/path`` -> what ``AF_UNIX`` takes."""
    rest = address.removeprefix("unix:")
    return "\0" + rest[1:] if rest.startswith("@") else rest


class ExecutorSocket:
    """The socket server; see the module docstring."""

    def __init__(self, agent: AgentSurface) -> None:
        self.agent = agent
        self.address: str | None = None
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Connection] = set()

    async def start(self) -> str | None:
        """Serve; the address for ``MESONB_AGENT_SOCKET``, or None when not served."""
        if not sys.platform.startswith("linux"):
            return None
        address = socket_name(self.agent.config.work_dir)
        try:
            self._server = await asyncio.get_running_loop().create_unix_server(
                lambda: _Connection(self), socket_path(address))
        except OSError as exc:
            log.warning("executors will use the HTTP port: no socket %s (%s)", address, exc)
            return None
        self.address = address
        return address

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in list(self._connections):
                conn.close()
            await self._server.wait_closed()
            self._server = None


_STREAM_HEAD = wire.chunked_head(200, {"Content-Type": "application/json",
                                       "Cache-Control": "no-cache", BATCH_HEADER: "1"})


class _ChunkedSink:
    """An event stream's bytes, sent as HTTP/1.1 chunks after the 200 head (sent with the
    first events, so a SUBSCRIBE refused meanwhile still gets its 4xx)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._buffer: list[bytes] = []
        self._head = _STREAM_HEAD

    def write(self, data: bytes) -> None:
        if self._transport.is_closing():
            raise ConnectionError("the executor went away")
        self._buffer.append(data)

    def flush(self) -> None:
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        if self._transport.is_closing():
            raise ConnectionError("the executor went away")
        head, self._head = self._head, b""
        self._transport.write(head + wire.chunk(data))

    def finish(self) -> None:
        self.flush()
        self._transport.write(self._head + wire.LAST_CHUNK)
        self._transport.close()


class _Connection(asyncio.Protocol):
    """One executor connection: requests one after another (keep-alive), until one is a
    SUBSCRIBE, whose answer then streams for the life of the connection."""

    def __init__(self, server: ExecutorSocket) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # (get_running_loop asks getpid)
        self.parser = wire.RequestParser()
        self.stream: EventStream | None = None
        # Answers of this loop turn, written together at its end (call_soon), with the
        # events and the master's frame of the same turn: one wake-up of the executor
        self._answers: list[bytes] = []
        self._close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        wire.read_small(transport)
        self.loop = asyncio.get_running_loop()
        self.server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)
        if self.stream is not None:
            self.stream.mark_closed()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        elif self.transport is not None:
            self._write_answers()
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.stream is not None or self._close_after:
            return  # nothing is read from a connection that carries an event stream,
            # or that closes after this turn's answers
        try:
            requests = self.parser.feed(data)
        except ProtocolError as exc:
            self._answer_error(exc.status, exc.message, close=True)
            return
        for request in requests:
            if self.stream is not None or self.transport is None \
                    or self.transport.is_closing() or self._close_after:
                return
            self._handle(request)

    def _handle(self, request: wire.Request) -> None:
        method, headers, body = request.method, request.headers, request.body
        close = not request.keep_alive
        try:
            target = request.target
            path = target if target == EXECUTOR_PATH else (
                "/" + "/".join(p for p in target.split("?", 1)[0].split("/") if p))
            if path != EXECUTOR_PATH:
                raise ProtocolError(f"No endpoint at {path}", 404)
            if method != "POST":
                raise method_not_allowed("POST")
            executors = self.server.agent.executors
            principal = executors.authenticate(headers.get("authorization"))
            check_json_body(headers.get("content-type"))
            calls = parse_calls(body)
            authorize(principal, calls)
            if not isinstance(calls, list) and calls.type is ExecutorCallType.SUBSCRIBE:
                check_json_accept(headers.get("accept"), (RECORDIO,))
                assert self.transport is not None
                stream = EventStream(_ChunkedSink(self.transport))
                executors.subscribe(calls, stream)  # may refuse it: nothing is sent yet
                self.stream = stream
                return
            carry_out(self.server.agent, calls)
        except ProtocolError as exc:
            self._answer_error(exc.status, exc.message, close)
            return
        except Exception:
            log.exception("executor call failed")
            self._answer_error(500, "500 Internal Server Error", close=True)
            return
        self._answer(_ACCEPTED, close)

    def _answer_error(self, status: int, message: str, close: bool) -> None:
        headers = [("Content-Type", "text/plain; charset=utf-8")]
        if status == 401:
            headers.append(("WWW-Authenticate", 'Bearer realm="mesonb"'))
        self._answer(wire.response(status, headers, message.encode()), close)

    def _answer(self, data: bytes, close: bool) -> None:
        """Queue an answer for the end of this loop turn (answers keep their order)."""
        if self.transport is None or self.loop is None or self._close_after:
            return  # (nothing is answered after the answer that closes)
        if not self._answers:
            self.loop.call_soon(self._write_answers)
        self._answers.append(data)
        self._close_after = self._close_after or close

    def _write_answers(self) -> None:
        answers, self._answers = self._answers, []
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(b"".join(answers))
        if self._close_after:
            transport.close()
