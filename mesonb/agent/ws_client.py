"""A lean RFC 6455 WebSocket client for the agent's link to the master.

tornado's client costs the agent a quarter of its CPU per call when calls come one at a
time: it re-registers the socket with the selector for every frame it reads and starts
a task for every frame it writes. :func:`connect` opens the same connection (the same
``GET`` upgrade with the same headers, TLS through the context it is given) on a plain
:class:`asyncio.Protocol`: frames are read in ``data_received`` as they come and written
straight to the transport.

What it does of RFC 6455: the opening handshake with ``Sec-WebSocket-Accept`` checked;
every frame it sends masked with a fresh key from the OS's random source; text and
binary messages, fragmented or not, up to ``max_message_size``; a ping answered with a
pong; the close handshake either side starts (after :meth:`WebSocket.close` the server
has ``CLOSE_WAIT`` seconds to close the connection). A frame that breaks the protocol
(masked by the server, reserved bits, a control frame too long or fragmented, a
continuation with nothing to continue) fails the connection with close code 1002;
text that is not UTF-8 with 1007; a message too large with 1009. No extensions are
offered, so none can be in use.

Example::

    ws = await connect("ws://127.0.0.1:5050/mesonb/v1/agent", {}, on_message=print)
    ws.send(b'{"type":"PONG"}')
    ws.close(1000, "done")
    await ws.wait_closed()
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import ssl
import struct
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from mesonb.http import wire

log = logging.getLogger(__name__)

ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLOSE_WAIT = 5.0  # seconds the server has to close the connection after our close frame
MAX_HEADER_BYTES = 64 * 1024
MAX_ERROR_BODY = 64 * 1024
TEXT, BINARY, CONTINUATION = 0x1, 0x2, 0x0
CLOSE, PING, PONG = 0x8, 0x9, 0xA
_KEYS = 4096  # random bytes read from the OS at a time, for 1,024 masking keys

OnMessage = Callable[[bytes | str | None], None]


class HandshakeRefused(Exception):
    """The server answered the upgrade with ``code`` (not 101): a redirect, 401, 503..."""

    def __init__(self, code: int, headers: dict[str, str], body: bytes) -> None:
        super().__init__(f"HTTP {code}")
        self.code = code
        self.headers = headers  # names in lower case
        self.body = body


class ProtocolViolation(Exception):
    """The server's answer or frames break RFC 6455."""


class _MaskKeys:
    """Masking keys: 4 bytes at a time out of a block read from ``os.urandom``."""

    def __init__(self) -> None:
        self._block = b""
        self._at = 0

    def next(self) -> bytes:
        if self._at >= len(self._block):
            self._block, self._at = os.urandom(_KEYS), 0
        key = self._block[self._at:self._at + 4]
        self._at += 4
        return key


_keys = _MaskKeys()


def _mask_in_python(key: bytes, data: bytes) -> bytes:
    """``data`` XOR ``key`` repeated (RFC 6455 5.3), as one big-integer XOR."""
    n = len(data)
    if not n:
        return b""
    repeated = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        n, "little")


try:  # tornado's C function, where it was built (20x faster on a 64 KiB frame)
    from tornado.speedups import websocket_mask as mask
except ImportError:  # pragma: no cover
    mask = _mask_in_python  # type: ignore[assignment]


def encode_frame(opcode: int, payload: bytes, key: bytes | None = None) -> bytes:
    """One final, masked client frame (``key``: the masking key, else a fresh one)."""
    key = _keys.next() if key is None else key
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + key + mask(key, payload)


def accept_for(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server answers ``key`` with."""
    return base64.b64encode(hashlib.sha1(key.encode() + ACCEPT_GUID).digest()).decode()


class WebSocket(asyncio.Protocol):
    """One client connection, after (and during) its opening handshake."""

    def __init__(self, request: bytes, key: str, on_message: OnMessage,
                 max_message_size: int) -> None:
        self._request = request
        self._accept = accept_for(key)
        self._on_message = on_message
        self._max = max_message_size
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._upgraded = False
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self._fragment_size = 0
        self._close_sent = False
        self._reading = True  # until the server's close frame, or a frame that fails us
        self._close_timer: asyncio.TimerHandle | None = None
        self.close_code: int | None = None  # the code of the server's close frame
        self.close_reason: str | None = None

    # -- the public face -------------------------------------------------------------
    @property
    def closing(self) -> bool:
        """True once either side closed or began to: nothing more can be sent."""
        return self._close_sent or self._closed.done()

    def send(self, payload: bytes | str, binary: bool = False) -> bool:
        """One message in one frame (text unless ``binary``); False when closing."""
        if self._transport is None or self.closing:
            return False
        data = payload.encode() if isinstance(payload, str) else payload
        self._transport.write(encode_frame(BINARY if binary else TEXT, data))
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake; the server closes the connection, or we do after
        ``CLOSE_WAIT`` seconds."""
        if self._transport is None or self.closing:
            return
        self._send_close(code, reason)
        self._close_timer = asyncio.get_running_loop().call_later(
            CLOSE_WAIT, self._transport.abort)

    async def wait_closed(self) -> None:
        """Until the connection is closed."""
        await asyncio.shield(self._closed)

    # -- asyncio.Protocol ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        wire.read_small(transport)
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        if not self._opened.done():
            self._opened.set_exception(self._refusal() or ConnectionError(
                f"connection closed during the WebSocket handshake ({exc or 'EOF'})"))
        if not self._closed.done():
            self._closed.set_result(None)
            if self._upgraded:
                self._on_message(None)

    def data_received(self, data: bytes) -> None:
        if self._upgraded:
            if not self._reading:
                return
            if self._buf:
                self._buf += data
                self._read_frames(self._buf)
            else:  # the usual case: the frame(s) came whole, no copy into the buffer
                self._read_frames(data)
            return
        self._buf += data
        if self._opened.done():
            return
        if self._status is not None:  # a refusal's body
            self._read_refusal_body()
        else:
            self._read_handshake()

    def eof_received(self) -> bool | None:
        return False  # close the transport: connection_lost follows

    # -- the handshake ---------------------------------------------------------------
    _status: int | None = None
    _headers: dict[str, str]
    _body_length: int | None = None

    def _read_handshake(self) -> None:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEADER_BYTES:
                self._fail_handshake(ProtocolViolation("the handshake's headers are too long"))
            return
        head = bytes(self._buf[:end]).decode("latin-1")
        del self._buf[:end + 4]
        status_line, *lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            self._fail_handshake(ProtocolViolation(f"not an HTTP answer: {status_line!r}"))
            return
        headers: dict[str, str] = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if sep:
                name = name.strip().lower()
                value = value.strip()
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
        code = int(parts[1])
        if code != 101:
            self._status, self._headers = code, headers
            length = headers.get("content-length", "")
            self._body_length = int(length) if length.isdigit() else None
            self._read_refusal_body()
            return
        connection = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        if (headers.get("upgrade", "").lower() != "websocket" or "upgrade" not in connection
                or headers.get("sec-websocket-accept") != self._accept):
            self._fail_handshake(ProtocolViolation(
                "the server's 101 does not accept our WebSocket key"))
            return
        if headers.get("sec-websocket-extensions") or headers.get("sec-websocket-protocol"):
            self._fail_handshake(ProtocolViolation(
                "the server chose an extension or subprotocol we did not offer"))
            return
        self._upgraded = True
        self._opened.set_result(None)
        if self._buf:  # frames right behind the 101
            data, self._buf = bytes(self._buf), bytearray()
            self._read_frames(data)

    def _read_refusal_body(self) -> None:
        chunked = "chunked" in self._headers.get("transfer-encoding", "").lower()
        if self._body_length is not None and len(self._buf) >= self._body_length:
            self._refuse(bytes(self._buf[:self._body_length]))
        elif chunked and self._buf.endswith(b"0\r\n\r\n"):
            self._refuse(_unchunk(bytes(self._buf)))
        elif len(self._buf) > MAX_ERROR_BODY:
            self._refuse(bytes(self._buf[:MAX_ERROR_BODY]))
        # else: wait for more, or for the connection to close (connection_lost)

    def _refusal(self) -> HandshakeRefused | None:
        if self._status is None:
            return None
        body = bytes(self._buf)
        if "chunked" in self._headers.get("transfer-encoding", "").lower():
            body = _unchunk(body)
        return HandshakeRefused(self._status, self._headers, body)

    def _refuse(self, body: bytes) -> None:
        assert self._status is not None
        self._fail_handshake(HandshakeRefused(self._status, self._headers, body))

    def _fail_handshake(self, exc: Exception) -> None:
        if not self._opened.done():
            self._opened.set_exception(exc)
        if self._transport is not None:
            self._transport.close()

    # -- frames ----------------------------------------------------------------------
    def _read_frames(self, data: bytes | bytearray) -> None:
        """Take every whole frame in ``data``; keep the rest for the next read."""
        at, end = 0, len(data)
        while end - at >= 2 and self._reading:
            b0, b1 = data[at], data[at + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if end - at < 4:
                    break
                length = (data[at + 2] << 8) | data[at + 3]
                head = 4
            elif length == 127:
                if end - at < 10:
                    break
                length = int.from_bytes(data[at + 2:at + 10], "big")
                head = 10
            if b1 & 0x80 or b0 & 0x70:
                self._fail(1002, "a masked frame or reserved bits from the server")
                return
            opcode = b0 & 0x0F
            if opcode >= CLOSE and (length > 125 or not b0 & 0x80):
                self._fail(1002, "a fragmented or long control frame")
                return
            if length > self._max:
                self._fail(1009, "message too big")
                return
            if end - at < head + length:
                break
            payload = bytes(data[at + head:at + head + length])
            at += head + length
            self._frame(b0 & 0x80, opcode, payload)
        if not self._reading:
            return
        if at == end:
            if self._buf:
                self._buf = bytearray()
        elif data is self._buf:
            del self._buf[:at]
        else:
            self._buf = bytearray(data[at:])

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode in (TEXT, BINARY):
            if self._fragments:
                self._fail(1002, "a new message inside a fragmented one")
            elif fin:
                self._deliver(opcode, payload)
            else:
                self._fragment_opcode, self._fragments = opcode, [payload]
                self._fragment_size = len(payload)
        elif opcode == CONTINUATION:
            if not self._fragments:
                self._fail(1002, "a continuation frame with nothing to continue")
                return
            self._fragment_size += len(payload)
            if self._fragment_size > self._max:
                self._fail(1009, "message too big")
                return
            self._fragments.append(payload)
            if fin:
                message, self._fragments = b"".join(self._fragments), []
                self._deliver(self._fragment_opcode, message)
        elif opcode == PING:
            if self._transport is not None and not self.closing:
                self._transport.write(encode_frame(PONG, payload))
        elif opcode == PONG:
            pass
        elif opcode == CLOSE:
            self._close_received(payload)
        else:
            self._fail(1002, f"unknown opcode {opcode}")

    def _deliver(self, opcode: int, payload: bytes) -> None:
        if opcode == TEXT and not payload.isascii():
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(1007, "text that is not UTF-8")
                return
        try:
            self._on_message(payload)
        except Exception:
            log.exception("failed to take a WebSocket message")

    def _close_received(self, payload: bytes) -> None:
        self._reading = False  # nothing after a close frame is read (RFC 6455 5.5.1)
        if len(payload) >= 2:
            self.close_code = int.from_bytes(payload[:2], "big")
            self.close_reason = payload[2:].decode("utf-8", "replace")
        if not self._close_sent:  # the server began: answer with its code
            self._send_close(self.close_code if len(payload) >= 2 else None, "")
        assert self._transport is not None
        self._transport.close()  # after what is buffered; connection_lost follows

    def _send_close(self, code: int | None, reason: str) -> None:
        assert self._transport is not None
        self._close_sent = True
        body = b"" if code is None else code.to_bytes(2, "big") + reason.encode()[:123]
        self._transport.write(encode_frame(CLOSE, body))

    def _fail(self, code: int, why: str) -> None:
        log.warning("closing the WebSocket to the master: %s", why)
        self._reading = False
        if not self._close_sent:
            self._send_close(code, why)
        assert self._transport is not None
        self._transport.close()


def _unchunk(body: bytes) -> bytes:
    out, at = bytearray(), 0
    while True:
        line_end = body.find(b"\r\n", at)
        if line_end < 0:
            return bytes(out)
        try:
            size = int(body[at:line_end].split(b";")[0], 16)
        except ValueError:
            return bytes(out)
        if size == 0:
            return bytes(out)
        out += body[line_end + 2:line_end + 2 + size]
        at = line_end + 2 + size + 2


async def connect(url: str, headers: Mapping[str, str], *, on_message: OnMessage,
                  ssl_context: ssl.SSLContext | None = None, timeout: float = 10.0,
                  max_message_size: int = 64 * 1024 * 1024) -> WebSocket:
    """Open a WebSocket to ``url`` (``ws://`` or ``wss://``, the latter through
    ``ssl_context``) sending ``headers`` with the upgrade. ``on_message`` gets every
    message (bytes for a text message, its UTF-8 checked; None once the connection
    closed). Raises :class:`HandshakeRefused` when the server answers other than 101,
    :class:`ProtocolViolation`, OSError or TimeoutError (``timeout``: for the whole
    opening)."""
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname
    if parts.scheme not in ("ws", "wss") or not host:
        raise ValueError(f"not a WebSocket URL: {url}")
    if secure and ssl_context is None:
        raise ValueError(f"{url} needs an SSL context")
    port = parts.port or (443 if secure else 80)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
             f"Host: {parts.netloc}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    loop = asyncio.get_running_loop()

    async def open_() -> WebSocket:
        _, protocol = await loop.create_connection(
            lambda: WebSocket(request, key, on_message, max_message_size),
            host, port, ssl=ssl_context if secure else None)
        try:
            await protocol._opened
        except BaseException:
            if protocol._transport is not None:
                protocol._transport.abort()
            raise
        return protocol

    return await asyncio.wait_for(open_(), timeout)
