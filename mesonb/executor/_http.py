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
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from mesonb import tls
from mesonb.http import wire

MAX_HEADER_BYTES = wire.MAX_HEAD
READ_SIZE = 64 * 1024


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


def _small_reads(writer: asyncio.StreamWriter) -> None:
    """Read at most :data:`READ_SIZE` bytes a time. asyncio's transport asks for 256 KiB
    a read: a buffer that size is mapped, shrunk and unmapped again (three system calls
    and a page fault) for each event or answer of a few hundred bytes; one of 64 KiB
    comes from the heap."""
    if getattr(writer.transport, "max_size", 0) > READ_SIZE:
        writer.transport.max_size = READ_SIZE  # type: ignore[attr-defined]


async def _open(endpoint: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to ``host:port``, or to a Unix socket ``unix:/path``/``unix:@name``
    (``@``: Linux's abstract namespace)."""
    if endpoint.startswith("unix:"):
        rest = endpoint[5:]
        reader, writer = await asyncio.open_unix_connection(
            "\0" + rest[1:] if rest.startswith("@") else rest)
        _small_reads(writer)
        return reader, writer
    host, port = split_endpoint(endpoint)
    options: dict[str, Any] = {}
    if tls.enabled():  # the agent's HTTP port speaks TLS as the whole cluster does
        options = {"ssl": tls.client_context(), "server_hostname": host}
    reader, writer = await asyncio.open_connection(host, port, **options)
    _no_delay(writer)
    _small_reads(writer)
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
