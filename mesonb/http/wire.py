"""HTTP/1.1 on the wire, in one place, for mesonb's own HTTP code.

tornado serves the daemons' HTTP ports. Beside it, three hot paths speak HTTP/1.1 on
plain asyncio: the client of the Mesos APIs (:mod:`mesonb.http.client`), the executors'
client of their agent (:mod:`mesonb.executor._http`) and the agent's executor socket
(:mod:`mesonb.agent.executor_socket`). They all parse with httptools (llhttp, Node.js's
parser, in C) and write their messages with the functions here.

httptools was picked by measurement over h11 and the hand-written parsers it replaces:
parsing an executor's UPDATE request took 1.6 us with httptools, 1.9 us by hand and 23 us
with h11; a ``202 Accepted`` answer 0.5, 0.7 and 26 us. It imports in 3 ms, which
executors, started for every task, can afford.

Reading answers (client side)::

    reader = ResponseReader(stream_reader)
    head = await reader.head()            # status, reason, headers (lower-case names)
    async for piece in reader.chunks():   # one piece per HTTP chunk of a chunked body
        ...

Reading requests (server side, from a Protocol's ``data_received``)::

    parser = RequestParser()
    for request in parser.feed(data):     # ProtocolError (4xx) for a bad request
        ...
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

import httptools

from mesonb.protocol.errors import BadRequest, ProtocolError

MAX_HEAD = 64 * 1024  # bytes of request line/status line and headers
MAX_BODY = 64 * 1024 * 1024
READ_SIZE = 64 * 1024
"""Bytes asked of the kernel per read of a connection: under glibc's mmap threshold
(128 KiB). asyncio's socket transports ask for 256 KiB a read: a buffer that size is
mapped, shrunk and unmapped again for each message of a few hundred bytes (a TLB shootdown
in a process with threads), ~12 us a read here against ~2 us for one from the heap."""
LAST_CHUNK = b"0\r\n\r\n"


_REASONS = {int(status): status.phrase for status in HTTPStatus}


def read_small(transport: asyncio.BaseTransport) -> None:
    """Make ``transport`` (a plain socket transport of asyncio) read at most
    :data:`READ_SIZE` bytes a time. A TLS transport reads into a buffer of its own, kept:
    it is left as it is."""
    if getattr(transport, "max_size", 0) > READ_SIZE:
        transport.max_size = READ_SIZE  # type: ignore[attr-defined]


def reason(status: int) -> str:
    """The reason phrase of ``status`` (``"Accepted"``), or ``"Error"`` if unknown."""
    return _REASONS.get(status, "Error")


def _header_lines(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return "".join(f"{name}: {value}\r\n" for name, value in items)


def request(method: str, target: str, host: str, headers: Mapping[str, str],
            body: bytes = b"") -> bytes:
    """A whole request; ``Content-Length`` is added for a body, a POST or a PUT."""
    length = (f"Content-Length: {len(body)}\r\n"
              if body or method in ("POST", "PUT") else "")
    return (f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{length}"
            f"{_header_lines(headers)}\r\n").encode("latin-1") + body


def response(status: int, headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
             body: bytes = b"") -> bytes:
    """A whole answer with ``Content-Length``."""
    return (f"HTTP/1.1 {status} {reason(status)}\r\n{_header_lines(headers)}"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body


def chunked_head(status: int, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> bytes:
    """The head of an answer whose body follows in chunks (:func:`chunk`, :data:`LAST_CHUNK`)."""
    return (f"HTTP/1.1 {status} {reason(status)}\r\nTransfer-Encoding: chunked\r\n"
            f"{_header_lines(headers)}\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (``data`` must not be empty)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


# ---- answers, read by a client ------------------------------------------------------------


@dataclass
class Head:
    """An answer's status line and headers (names in lower case)."""

    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)


class _Answer:
    """One answer as httptools reports it."""

    __slots__ = ("chunk", "chunked", "complete", "headers", "headers_done", "keep_alive",
                 "pieces", "reason", "status")

    def __init__(self) -> None:
        self.status = 0
        self.reason = ""
        self.headers: dict[str, str] = {}
        self.headers_done = self.complete = self.chunked = self.keep_alive = False
        self.pieces: list[bytes] = []  # body data ready to hand out
        self.chunk: list[bytes] = []  # the HTTP chunk being read


class _Answers:
    """httptools callbacks: the answers of a connection, in the order they come."""

    __slots__ = ("parser", "queue")

    def __init__(self) -> None:
        self.parser: httptools.HttpResponseParser | None = None
        self.queue: deque[_Answer] = deque()

    def on_message_begin(self) -> None:
        self.queue.append(_Answer())

    def on_status(self, status: bytes) -> None:
        self.queue[-1].reason += status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.queue[-1].headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        answer = self.queue[-1]
        assert self.parser is not None
        answer.status = self.parser.get_status_code()
        answer.headers_done = True
        answer.chunked = "chunked" in answer.headers.get("transfer-encoding", "").lower()

    def on_body(self, data: bytes) -> None:
        answer = self.queue[-1]
        (answer.chunk if answer.chunked else answer.pieces).append(data)

    def on_chunk_complete(self) -> None:
        answer = self.queue[-1]
        if answer.chunk:
            answer.pieces.append(b"".join(answer.chunk))
            answer.chunk.clear()

    def on_message_complete(self) -> None:
        answer = self.queue[-1]
        assert self.parser is not None
        answer.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it after this
        answer.complete = True


class ResponseReader:
    """Answers read off an ``asyncio.StreamReader``, one after another (keep-alive).

    :meth:`head` reads the status line and headers, then :meth:`chunks` (or :meth:`body`)
    the body: for a chunked body, one piece per HTTP chunk, whole; otherwise the data as
    it arrives. ``received`` counts the bytes read since the previous answer ended (0:
    the server sent nothing, e.g. it had closed an idle connection).
    """

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._answers = _Answers()
        self._parser = httptools.HttpResponseParser(self._answers)
        self._answers.parser = self._parser
        self._current: _Answer | None = None
        self._eof = False
        self.received = 0

    async def _feed(self) -> bool:
        """Read once and parse; False at end of stream."""
        data = await self._reader.read(READ_SIZE)
        if not data:
            self._eof = True
            return False
        self.received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise ConnectionError(f"malformed HTTP answer: {exc}") from None
        return True

    async def head(self) -> Head:
        """The next answer's status and headers."""
        queue = self._answers.queue
        if self._current is not None:  # the previous answer is done with
            if queue and queue[0] is self._current:
                queue.popleft()
            self._current = None
            # (bytes of the next answer may have come with this one's: count them as one)
            self.received = 1 if queue else 0
        while not (queue and queue[0].headers_done):
            if not await self._feed():
                if self.received:
                    raise ConnectionError("connection closed inside an answer's head")
                raise ConnectionResetError("connection closed before a response")
            if not (queue and queue[0].headers_done) and self.received > MAX_HEAD:
                raise ConnectionError("response headers too large")
        answer = self._current = queue[0]
        return Head(answer.status, answer.reason, answer.headers)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body after :meth:`head`: whole HTTP chunks, or data as it arrives."""
        answer = self._current
        assert answer is not None, "head() first"
        while True:
            if answer.pieces:
                pieces, answer.pieces = answer.pieces, []
                for piece in pieces:
                    yield piece
            if answer.complete:
                return
            if not await self._feed():
                if answer.chunked or "content-length" in answer.headers:
                    raise ConnectionResetError("connection closed inside an answer's body")
                answer.complete = True  # a body that ends with the connection

    async def body(self) -> bytes:
        """The whole body after :meth:`head`."""
        return b"".join([piece async for piece in self.chunks()])

    @property
    def keep_alive(self) -> bool:
        """The connection can carry another request after this answer."""
        answer = self._current
        return (not self._eof and answer is not None and answer.complete
                and answer.keep_alive)


# ---- requests, read by a server -------------------------------------------------------------


@dataclass
class Request:
    """One request: method, target, headers (lower-case names) and the whole body."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


class _Incoming:
    __slots__ = ("body", "done", "headers", "headers_done", "max_body", "parser", "target")

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.parser: httptools.HttpRequestParser | None = None
        self.done: list[Request] = []
        self.begin()

    def begin(self) -> None:
        self.target = ""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.headers_done = False

    def on_message_begin(self) -> None:
        self.begin()

    def on_url(self, url: bytes) -> None:
        self.target += url.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.headers_done = True
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            raise ProtocolError("Chunked request bodies are not supported", 411)
        length = self.headers.get("content-length", "0")
        if not length.isdigit():
            raise BadRequest("Malformed Content-Length")
        if int(length) > self.max_body:
            raise ProtocolError(f"Request body of {length} bytes is not accepted", 413)

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self) -> None:
        assert self.parser is not None
        # (llhttp forgets keep-alive once the message is complete: read it here)
        self.done.append(Request(self.parser.get_method().decode("latin-1"), self.target,
                                 self.headers, b"".join(self.body),
                                 self.parser.should_keep_alive()))


class RequestParser:
    """Requests fed in as they arrive on a connection (keep-alive, pipelined or not).

    :meth:`feed` returns the requests completed by ``data``; a bad request raises
    :class:`~mesonb.protocol.errors.ProtocolError` with its status: 400 for a malformed
    request line or header, 411 for a chunked body, 413 for a body over ``max_body``, 431
    for a head over ``max_head``. The connection is useless after an error.
    """

    def __init__(self, max_head: int = MAX_HEAD, max_body: int = MAX_BODY) -> None:
        self._incoming = _Incoming(max_body)
        self._parser = httptools.HttpRequestParser(self._incoming)
        self._incoming.parser = self._parser
        self._max_head = max_head
        self._head_bytes = 0

    def feed(self, data: bytes) -> list[Request]:
        incoming = self._incoming
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, ProtocolError):
                raise cause from None
            raise
        except httptools.HttpParserError as exc:
            raise BadRequest(f"Malformed request line or header: {exc}") from None
        if not incoming.headers_done:
            self._head_bytes += len(data)
            if self._head_bytes > self._max_head:
                raise ProtocolError("Request headers too large", 431)
        else:
            self._head_bytes = 0
        if not incoming.done:
            return []
        done, incoming.done = incoming.done, []
        return done
