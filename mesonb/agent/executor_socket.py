"""The executor API on a local socket, for mesonb's own executors.

The agent serves ``POST /api/v1/executor`` on its HTTP port, which any Mesos executor
reaches through ``MESOS_AGENT_ENDPOINT``. mesonb's executors (command, default,
functions) are also given this socket's address in ``MESONB_AGENT_SOCKET`` and use it:
the same HTTP/1.1 requests and answers, the same credentials, checks and errors (the
functions of :mod:`.executor_api`), behind a small parser instead of tornado's request
machinery, which cost the agent about 150 us of CPU per call against 30 us here.

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

from mesonb.http.base import RECORDIO, check_json_accept, check_json_body, method_not_allowed
from mesonb.protocol.errors import BadRequest, ProtocolError
from mesonb.protocol.executor import BATCH_HEADER, EXECUTOR_PATH, SOCKET_ENV, ExecutorCallType

from .executor_api import EventStream, authorize, carry_out, parse_calls

if TYPE_CHECKING:
    from .agent import Agent

log = logging.getLogger(__name__)
__all__ = ["SOCKET_ENV", "ExecutorSocket", "socket_name", "socket_path"]
MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            406: "Not Acceptable", 411: "Length Required", 413: "Payload Too Large",
            415: "Unsupported Media Type", 431: "Request Header Fields Too Large",
            500: "Internal Server Error", 503: "Service Unavailable"}
_ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"


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

    def __init__(self, agent: Agent) -> None:
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


_STREAM_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n"
                + BATCH_HEADER.encode() + b": 1\r\n\r\n")


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
        self._transport.write(b"%s%x\r\n%s\r\n" % (head, len(data), data))

    def finish(self) -> None:
        self.flush()
        self._transport.write(self._head + b"0\r\n\r\n")
        self._transport.close()


class _Connection(asyncio.Protocol):
    """One executor connection: requests one after another (keep-alive), until one is a
    SUBSCRIBE, whose answer then streams for the life of the connection."""

    def __init__(self, server: ExecutorSocket) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.stream: EventStream | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)
        if self.stream is not None:
            self.stream.mark_closed()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        elif self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.stream is not None:
            return  # nothing is read from a connection that carries an event stream
        self.buffer += data
        while self.stream is None and self.transport is not None \
                and not self.transport.is_closing():
            try:
                request = self._next_request()
            except ProtocolError as exc:
                self._answer_error(exc.status, exc.message, close=True)
                return
            if request is None:
                return
            self._handle(*request)

    def _next_request(self) -> tuple[str, str, dict[str, str], bytes] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                raise ProtocolError("Request headers too large", 431)
            return None
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest(f"Malformed request line {lines[0][:80]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise BadRequest(f"Malformed header line {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise ProtocolError("Chunked request bodies are not supported", 411)
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise BadRequest("Malformed Content-Length") from None
        if length < 0 or length > MAX_BODY:
            raise ProtocolError(f"Request body of {length} bytes is not accepted", 413)
        if len(self.buffer) < end + 4 + length:
            return None
        body = bytes(self.buffer[end + 4:end + 4 + length])
        del self.buffer[:end + 4 + length]
        return parts[0], parts[1], headers, body

    def _handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        close = headers.get("connection", "").lower() == "close"
        try:
            path = "/" + "/".join(p for p in target.split("?", 1)[0].split("/") if p)
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
        assert self.transport is not None
        self.transport.write(_ACCEPTED)
        if close:
            self.transport.close()

    def _answer_error(self, status: int, message: str, close: bool) -> None:
        if self.transport is None:
            return
        text = message.encode()
        extra = b'WWW-Authenticate: Bearer realm="mesonb"\r\n' if status == 401 else b""
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n%sContent-Length: "
            b"%d\r\n\r\n%s" % (status, _REASONS.get(status, "Error").encode(), extra,
                               len(text), text))
        if close:
            self.transport.close()
