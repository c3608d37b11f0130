"""A small asyncio HTTP/1.1 client with keep-alive, for the Mesos APIs.

Framework and executor drivers send many small calls (one ACKNOWLEDGE per status update),
so each call reuses one open connection instead of paying for a new one; the SUBSCRIBE
call keeps its own connection and yields the chunked body as it arrives. Given
``inproc=True`` (the drivers do), a daemon running in this process on this loop (an
embedded cluster) answers without a socket (:mod:`mesonb.http.inproc`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mesonb import tls
from mesonb.protocol.jsontext import dumpb, loads_lenient, reads_back

from . import wire
from .inproc import Channel, find_endpoint

_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
"""The headers of a JSON call (shared: requests read them, never change them)."""


class HTTPError(Exception):
    """A non-2xx answer; ``status`` and ``body`` hold what the server said."""

    def __init__(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        text = body.decode(errors="replace").strip()
        super().__init__(f"HTTP {status}: {text}" if text else f"HTTP {status}")
        self.status = status
        self.body = body
        self.headers = headers


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return loads_lenient(self.body) if self.body else None


class Connection:
    """One keep-alive connection to ``host:port``; requests on it run one at a time.

    ``secure``: speak TLS, verifying the server with :func:`mesonb.tls.client_context`
    (None: as this process does, :func:`mesonb.tls.enabled`)."""

    def __init__(self, host: str, port: int, headers: Mapping[str, str] | None = None,
                 *, inproc: bool = False, secure: bool | None = None) -> None:
        self.host, self.port = host, port
        self.inproc = inproc
        self.secure = tls.enabled() if secure is None else secure
        self.default_headers = dict(headers or {})
        self._answers: wire.ResponseReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def to(cls, url: str, headers: Mapping[str, str] | None = None, *,
           inproc: bool = False) -> Connection:
        secure = tls.wants_tls(url)
        parts = urlsplit(url if "//" in url else f"//{url}")
        return cls(parts.hostname or "127.0.0.1", parts.port or (443 if secure else 80),
                   headers, inproc=inproc, secure=secure)

    async def _open(self) -> tuple[wire.ResponseReader, asyncio.StreamWriter]:
        if self._writer is None or self._writer.is_closing():
            options: dict[str, Any] = {}
            if self.secure:
                options = {"ssl": tls.client_context(), "server_hostname": self.host}
            reader, self._writer = await asyncio.open_connection(self.host, self.port,
                                                                 **options)
            self._answers = wire.ResponseReader(reader)
            wire.read_small(self._writer.transport)
            sock = self._writer.get_extra_info("socket")
            if sock is not None:
                import socket

                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert self._answers is not None
        return self._answers, self._writer

    def _encode(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        return wire.request(method, path, f"{self.host}:{self.port}",
                            {**self.default_headers, **headers}, body)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Response:
        """Send one request and read the whole answer (retries once on a stale connection)."""
        endpoint = find_endpoint(self.host, self.port) if self.inproc else None
        if endpoint is not None:
            answer = endpoint.request(method, path, body, {**self.default_headers,
                                                           **(headers or {})})
            if answer is not None:
                return Response(answer.status, answer.headers, answer.body)
        async with self._lock:
            for attempt in (1, 2):
                answers, writer = await self._open()
                try:
                    writer.write(self._encode(method, path, body, headers or {}))
                    await writer.drain()
                    head = await answers.head()
                    data = await answers.body()
                except (ConnectionError, asyncio.IncompleteReadError):
                    self.close()
                    if attempt == 2:
                        raise
                    continue
                except BaseException:
                    # Cancelled or timed out half-way: what is left of the answer would be
                    # read as the next request's. Drop the connection.
                    self.close()
                    raise
                if not answers.keep_alive:
                    self.close()
                return Response(head.status, head.headers, data)
        raise AssertionError("unreachable")

    async def post_json(
        self, path: str, payload: Any, headers: Mapping[str, str] | None = None
    ) -> Response:
        """POST ``payload`` as JSON; HTTPError unless the answer is 2xx.

        In-process (:mod:`.inproc`), a payload that reads back as itself
        (:func:`~mesonb.protocol.jsontext.reads_back`) is handed over as the object, not
        as its text: the caller must not change it afterwards (mesonb's drivers build
        each call's payload for that call), and the receiver treats it as read-only."""
        merged = {**_JSON_HEADERS, **headers} if headers else _JSON_HEADERS
        endpoint = find_endpoint(self.host, self.port) if self.inproc else None
        answer = None
        if endpoint is not None and reads_back(payload):
            answer = endpoint.request_json("POST", path, payload,
                                           {**self.default_headers, **merged})
        if answer is not None:
            response = Response(answer.status, answer.headers, answer.body)
        else:
            response = await self.request("POST", path, dumpb(payload), merged)
        if response.status >= 300:
            raise HTTPError(response.status, response.body, response.headers)
        return response

    def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self._answers = self._writer = None


@dataclass
class Stream:
    """An open streaming answer (e.g. SUBSCRIBE): its headers and its body chunks."""

    status: int
    headers: dict[str, str]
    chunks: AsyncIterator[bytes]
    closer: Callable[[], None]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.closer()


async def open_stream(url: str, path: str, payload: Any,
                      headers: Mapping[str, str] | None = None, *,
                      inproc: bool = False) -> Stream:
    """POST ``payload`` and return the chunked answer as a stream (own connection)."""
    conn = Connection.to(url, headers, inproc=inproc)
    body = dumpb(payload)
    request_headers = {"Content-Type": "application/json", "Accept": "application/json",
                       "Connection": "close"}
    endpoint = find_endpoint(conn.host, conn.port) if conn.inproc else None
    if endpoint is not None:
        channel = Channel()
        answer = endpoint.open_stream(path, body, {**conn.default_headers, **request_headers},
                                      channel)
        if answer is not None:
            if answer.status != 200:
                raise HTTPError(answer.status, answer.body, answer.headers)
            return Stream(answer.status, answer.headers, channel.items(), channel.hang_up)
    answers, writer = await conn._open()
    try:
        writer.write(conn._encode("POST", path, body, request_headers))
        await writer.drain()
        head = await answers.head()
        if head.status != 200:
            data = await answers.body()
            raise HTTPError(head.status, data, head.headers)
    except BaseException:  # refused, or cancelled while the master has not answered
        writer.close()
        raise
    if head.headers.get("transfer-encoding", "").lower() != "chunked":
        writer.close()
        raise ConnectionError("streaming answer is not chunked")
    return Stream(head.status, head.headers, answers.chunks(), writer.close)
