"""The executors' HTTP/1.1 client of their agent, on asyncio streams.

Executors start often and should start fast, so the driver uses no HTTP client library:
it needs exactly two things, a POST answered with a small body (on a keep-alive
:class:`Connection`) and a POST answered with a long-lived chunked stream (:func:`post`).
Messages are parsed and written by :mod:`mesonb.http.wire` (httptools), which imports in a
few milliseconds. No TLS yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httptools

from mesonb import tls
from mesonb.http import wire

MAX_HEADER_BYTES = wire.MAX_HEAD
READ_SIZE = wire.READ_SIZE


class HTTPError(Exception):
    """A non-2xx answer: ``status`` and the body's text."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {body}".rstrip(": "))
        self.status = status
        self.reason = reason
        self.body = body


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    answer: wire.ResponseReader | None = field(default=None, repr=False)
    writer: asyncio.StreamWriter | None = field(default=None, repr=False)

    async def body(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (one piece per chunk when ``Transfer-Encoding: chunked``)."""
        assert self.answer is not None
        return self.answer.chunks()

    def close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
            self.writer = None


def _no_delay(writer: asyncio.StreamWriter) -> None:
    """Small calls go out at once (no Nagle wait for the previous one's ACK)."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _open(endpoint: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to ``host:port``, or to a Unix socket ``unix:/path``/``unix:@name``
    (``@``: Linux's abstract namespace)."""
    if endpoint.startswith("unix:"):
        rest = endpoint[5:]
        reader, writer = await asyncio.open_unix_connection(
            "\0" + rest[1:] if rest.startswith("@") else rest)
        wire.read_small(writer.transport)
        return reader, writer
    host, port = split_endpoint(endpoint)
    options: dict[str, Any] = {}
    if tls.enabled():  # the agent's HTTP port speaks TLS as the whole cluster does
        options = {"ssl": tls.client_context(), "server_hostname": host}
    reader, writer = await asyncio.open_connection(host, port, **options)
    _no_delay(writer)
    wire.read_small(writer.transport)
    return reader, writer


def _host_header(endpoint: str) -> str:
    if endpoint.startswith("unix:"):
        return "localhost"
    host, port = split_endpoint(endpoint)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``"127.0.0.1:5051"`` or ``"[::1]:5051"`` -> ``(host, port)``."""
    if endpoint.startswith("["):
        host, _, rest = endpoint[1:].partition("]")
        return host, int(rest.lstrip(":"))
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"bad agent endpoint {endpoint!r}: expected HOST:PORT")
    return host, int(port)


async def post(
    endpoint: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float = 10.0,
) -> Response:
    """POST and read the status line and headers; the caller reads the body.

    Raises OSError/asyncio.TimeoutError on connection problems; never raises HTTPError.
    """
    reader, writer = await asyncio.wait_for(_open(endpoint), timeout)
    answer = wire.ResponseReader(reader)
    try:
        headers = {**headers, "Connection": "close"}
        writer.write(wire.request("POST", path, _host_header(endpoint), headers, body))
        await writer.drain()
        head = await asyncio.wait_for(answer.head(), timeout)
    except BaseException:
        writer.close()
        raise
    return Response(head.status, head.reason, head.headers, answer=answer, writer=writer)


async def post_and_read(
    endpoint: str, path: str, body: bytes, headers: Mapping[str, str], timeout: float = 10.0
) -> Response:
    """POST, read the whole answer, and raise HTTPError unless it is 2xx."""
    response = await post(endpoint, path, body, headers, timeout)
    try:
        data = await asyncio.wait_for(response.body(), timeout)
    finally:
        response.close()
    if not 200 <= response.status < 300:
        raise HTTPError(response.status, response.reason, data.decode("utf-8", "replace"))
    return response


class Connection:
    """One keep-alive HTTP/1.1 connection to ``endpoint`` for request/answer calls (not
    for streams): requests go one at a time, the connection is opened on first use and
    again after the server closes it. A request on a reused connection that fails before
    any byte of the answer arrived (the server closed it while idle) is retried once on
    a fresh connection."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._hostport = _host_header(endpoint)
        self._answers: wire.ResponseReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self._answers = self._writer = None

    async def post_and_read(self, path: str, body: bytes, headers: Mapping[str, str],
                            timeout: float = 10.0) -> tuple[Response, bytes]:
        """POST and read the whole answer; HTTPError unless it is 2xx."""
        async with self._lock:
            try:
                async with asyncio.timeout(timeout):
                    return await self._exchange(path, body, headers)
            except BaseException:
                self.close()
                raise

    async def _exchange(self, path: str, body: bytes,
                        headers: Mapping[str, str]) -> tuple[Response, bytes]:
        request = wire.request("POST", path, self._hostport, headers, body)
        for attempt in (0, 1):
            reused = self._writer is not None
            if self._writer is None:
                reader, self._writer = await _open(self.endpoint)
                self._answers = wire.ResponseReader(reader)
            answers, writer = self._answers, self._writer
            assert answers is not None and writer is not None
            try:
                writer.write(request)
                await writer.drain()
                head = await answers.head()
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                self.close()
                if reused and attempt == 0 and not answers.received:
                    continue
                raise ConnectionError(f"connection to {self.endpoint} lost: {exc}") from None
            break
        assert answers is not None
        response = Response(head.status, head.reason, head.headers, answer=answers)
        data = await answers.body()
        if not answers.keep_alive:
            self.close()
        if not 200 <= response.status < 300:
            raise HTTPError(response.status, response.reason, data.decode("utf-8", "replace"))
        return response, data


class _Answers:
    """httptools callbacks: the answers completed by the data fed so far."""

    __slots__ = ("body", "done", "parser", "reason")

    def __init__(self) -> None:
        self.parser: httptools.HttpResponseParser | None = None
        self.reason, self.body = "", bytearray()
        self.done: list[tuple[int, str, bytes, bool]] = []  # status, reason, body, keep-alive

    def on_message_begin(self) -> None:
        self.reason, self.body = "", bytearray()

    def on_status(self, status: bytes) -> None:
        self.reason += status.decode("latin-1")

    def on_body(self, data: bytes) -> None:
        self.body += data

    def on_message_complete(self) -> None:
        assert self.parser is not None  # (llhttp forgets keep-alive after this)
        self.done.append((self.parser.get_status_code(), self.reason, bytes(self.body),
                          self.parser.should_keep_alive()))


async def _connect_socket(endpoint: str) -> socket.socket:
    """A non-blocking socket connected to ``endpoint`` (as :func:`_open`, without TLS)."""
    loop = asyncio.get_running_loop()
    if endpoint.startswith("unix:"):
        rest = endpoint[5:]
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address: Any = "\0" + rest[1:] if rest.startswith("@") else rest
    else:
        host, port = split_endpoint(endpoint)
        family, kind, proto, _, address = (await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM))[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


class LazyConnection:
    """A keep-alive HTTP/1.1 connection whose answers are read when the owner asks:
    :meth:`read` takes what has arrived without waiting (the owner calls it when it is
    awake anyway), :meth:`watch` has them read as soon as they arrive. An answer nobody
    waits for then costs the process no wake-up of its own. Requests may follow one
    another before their answers (HTTP/1.1 pipelining); answers come in their order.

    ``answered(status, reason, body)`` gets each answer; ``failed(exc, resend)`` a broken
    connection (the requests without answers are lost), ``resend`` True when they may go
    again on a fresh one: the server closed a connection used before without a byte of
    answer since they went (it closed it idle). Not for TLS (see :func:`tls_free`)."""

    def __init__(self, endpoint: str, answered: Callable[[int, str, bytes], None],
                 failed: Callable[[BaseException, bool], None]) -> None:
        self.endpoint = endpoint
        self.host = _host_header(endpoint)
        self._answered, self._failed = answered, failed
        self._sock: socket.socket | None = None
        self._answers = _Answers()
        self._parser = httptools.HttpResponseParser(self._answers)
        self._answers.parser = self._parser
        self._unsent = b""
        self._watching = False
        self._exchanges = 0  # answers read on this connection
        self.pending = 0  # requests sent without their answers yet
        self._reused = False  # the first of those went on a connection used before
        self._received = 0  # bytes read since it went

    @property
    def connected(self) -> bool:
        return self._sock is not None

    async def connect(self) -> None:
        self.close()
        self._sock = await _connect_socket(self.endpoint)
        self._answers = _Answers()
        self._parser = httptools.HttpResponseParser(self._answers)
        self._answers.parser = self._parser
        self._exchanges = self.pending = 0

    def send(self, request: bytes) -> None:
        """Write ``request`` (after those before it, answered or not)."""
        assert self._sock is not None
        if not self.pending:
            self._reused, self._received = self._exchanges > 0, 0
        self.pending += 1
        if self._unsent:  # what is left of earlier requests goes first
            self._unsent += request
            return
        try:
            sent = self._sock.send(request)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._broken(ConnectionError(f"connection to {self.endpoint} lost: {exc}"))
            return
        if sent < len(request):
            self._unsent = request[sent:]
            asyncio.get_running_loop().add_writer(self._sock.fileno(), self._write_more)

    def _write_more(self) -> None:
        assert self._sock is not None
        try:
            sent = self._sock.send(self._unsent)
        except BlockingIOError:
            return
        except OSError as exc:
            self._broken(ConnectionError(f"connection to {self.endpoint} lost: {exc}"))
            return
        self._unsent = self._unsent[sent:]
        if not self._unsent:
            asyncio.get_running_loop().remove_writer(self._sock.fileno())

    def watch(self, on: bool) -> None:
        """Read answers as soon as they arrive (``on``), or only when :meth:`read`."""
        if on == self._watching or self._sock is None:
            return
        loop = asyncio.get_running_loop()
        if on:
            loop.add_reader(self._sock.fileno(), self.read)
        else:
            loop.remove_reader(self._sock.fileno())
        self._watching = on

    def read(self) -> None:
        """Take the answers that have arrived, without waiting; ``answered`` for each."""
        while self._sock is not None and self.pending:
            try:
                data = self._sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._broken(ConnectionError(f"connection to {self.endpoint} lost: {exc}"))
                return
            if not data:
                self._broken(ConnectionResetError(
                    f"connection to {self.endpoint} closed before a response"
                    if not self._received else "connection closed inside an answer"))
                return
            self._received += len(data)
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserError as exc:
                self._broken(ConnectionError(f"malformed HTTP answer: {exc}"))
                return
            done, self._answers.done = self._answers.done, []
            for status, reason, body, keep_alive in done:
                self.pending -= 1
                self._exchanges += 1
                self._reused = False  # alive: what follows was not sent on an idle one
                left = self.pending
                if not keep_alive:
                    self.close()
                self._answered(status, reason, body)
                if not keep_alive:
                    if left:
                        self._failed(ConnectionError("the agent closed the connection"), False)
                    return

    def _broken(self, exc: BaseException) -> None:
        resend = self._reused and not self._received
        self.close()
        self._failed(exc, resend)

    def close(self) -> None:
        self.pending = 0
        if self._sock is None:
            return
        with contextlib.suppress(Exception):
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._sock.fileno())
            loop.remove_writer(self._sock.fileno())
        self._sock.close()
        self._sock, self._watching, self._unsent = None, False, b""


def tls_free(endpoint: str) -> bool:
    """Does ``endpoint`` speak plain HTTP (a Unix socket, or TCP with TLS off)?"""
    return endpoint.startswith("unix:") or not tls.enabled()
