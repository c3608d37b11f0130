"""The agent's WebSocket client (mesonb.agent.ws_client) against tornado's server, the
master's side of the link: what the server reads of our masked frames, what we read of
its frames (large, fragmented, split across reads), ping and pong, both close handshakes,
and a refused or wrong opening handshake."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import pytest
import tornado.web
import tornado.websocket

from mesonb.agent import ws_client
from mesonb.agent.ws_client import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    HandshakeRefused,
    ProtocolViolation,
    WebSocket,
    accept_for,
    connect,
    encode_frame,
)

BIG = 200 * 1024  # > 64 KiB: the 8-byte length form


class Server:
    """A tornado WebSocket endpoint that records what it reads and pongs it gets, and can
    ping, send and close on demand."""

    def __init__(self, secret: str | None = None) -> None:
        self.received: list[str | bytes] = []
        self.pongs: list[bytes] = []
        self.handlers: list[tornado.websocket.WebSocketHandler] = []
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.changed = asyncio.Event()
        server = self

        class Handler(tornado.websocket.WebSocketHandler):
            def prepare(self) -> None:
                if secret and self.request.headers.get("Authorization") != f"Bearer {secret}":
                    raise tornado.web.HTTPError(401, reason="no secret")

            def open(self) -> None:
                server.handlers.append(self)

            def on_message(self, message: str | bytes) -> None:
                server.received.append(message)
                server.changed.set()

            def on_pong(self, data: bytes) -> None:
                server.pongs.append(data)
                server.changed.set()

            def on_close(self) -> None:
                server.close_code, server.close_reason = self.close_code, self.close_reason
                server.closed.set()

        app = tornado.web.Application([("/ws", Handler)], websocket_max_message_size=1 << 24)
        self.http = app.listen(0, "127.0.0.1")
        port = next(iter(self.http._sockets.values())).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/ws"

    async def until(self, predicate, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def server():
    s = Server()
    yield s
    s.http.stop()


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes | str | None] = []
        self.event = asyncio.Event()

    def __call__(self, message: bytes | str | None) -> None:
        self.messages.append(message)
        self.event.set()

    async def until(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                self.event.clear()
                await self.event.wait()


def test_masking_and_lengths_as_rfc_6455_writes_them() -> None:
    key = b"\x01\x02\x03\x04"
    assert ws_client._mask_in_python(key, b"\x00" * 6) == b"\x01\x02\x03\x04\x01\x02"
    for n in (0, 1, 5, 125, 126, 65535, 65536, BIG):
        data = os.urandom(n)
        assert ws_client._mask_in_python(key, data) == ws_client.mask(key, data)
        framed = encode_frame(TEXT, data, key)
        assert framed[0] == 0x81 and framed[1] & 0x80  # final text frame, masked
        head = 2 if n < 126 else 4 if n < 65536 else 10
        length = framed[1] & 0x7F
        assert length == (n if n < 126 else 126 if n < 65536 else 127)
        assert framed[head:head + 4] == key
        assert ws_client._mask_in_python(key, framed[head + 4:]) == data
    # the RFC's example key and answer (section 1.3)
    assert accept_for("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_masking_keys_change() -> None:
    keys = {ws_client._keys.next() for _ in range(2000)}
    assert len(keys) > 1900 and all(len(k) == 4 for k in keys)


async def test_the_server_reads_our_frames_small_and_large(server: Server) -> None:
    inbox = Inbox()
    ws = await connect(server.url, {}, on_message=inbox)
    big = os.urandom(BIG // 2).hex()  # text of 200 KiB
    assert ws.send(b'{"type":"PONG"}') and ws.send(big) and ws.send(b"\x00\xff", binary=True)
    await server.until(lambda: len(server.received) == 3)
    assert server.received == ['{"type":"PONG"}', big, b"\x00\xff"]
    ws.close()
    await ws.wait_closed()


async def test_we_read_the_servers_frames_small_and_large(server: Server) -> None:
    inbox = Inbox()
    ws = await connect(server.url, {}, on_message=inbox)
    await server.until(lambda: len(server.handlers) == 1)
    big = "é" * (BIG // 2)  # 200 KiB of UTF-8 that is not ASCII
    for text in ("one", big, "x" * 70000):
        server.handlers[0].write_message(text)
    server.handlers[0].write_message(b"\x01\x02", binary=True)
    await inbox.until(4)
    assert inbox.messages == [b"one", big.encode(), b"x" * 70000, b"\x01\x02"]
    ws.close()
    await ws.wait_closed()


async def test_a_ping_is_answered_with_a_pong(server: Server) -> None:
    ws = await connect(server.url, {}, on_message=Inbox())
    await server.until(lambda: len(server.handlers) == 1)
    server.handlers[0].ping(b"are you there")
    await server.until(lambda: server.pongs == [b"are you there"])
    ws.close()
    await ws.wait_closed()


async def test_our_close_handshake(server: Server) -> None:
    inbox = Inbox()
    ws = await connect(server.url, {}, on_message=inbox)
    ws.close(1001, "agent stopping")
    assert ws.closing and not ws.send(b"late")
    await asyncio.wait_for(ws.wait_closed(), 5)  # the server answered and closed
    await asyncio.wait_for(server.closed.wait(), 5)
    assert (server.close_code, server.close_reason) == (1001, "agent stopping")
    assert inbox.messages == [None]


async def test_the_servers_close_handshake(server: Server) -> None:
    inbox = Inbox()
    ws = await connect(server.url, {}, on_message=inbox)
    await server.until(lambda: len(server.handlers) == 1)
    server.handlers[0].write_message("last words")
    server.handlers[0].close(4000, "a new master leads")
    await asyncio.wait_for(ws.wait_closed(), 5)
    assert inbox.messages == [b"last words", None]
    assert (ws.close_code, ws.close_reason) == (4000, "a new master leads")
    await asyncio.wait_for(server.closed.wait(), 5)
    assert server.close_code == 4000  # our answer echoed its code


async def test_the_secret_goes_with_the_upgrade_and_a_refusal_says_why() -> None:
    server = Server(secret="s3cret")
    try:
        with pytest.raises(HandshakeRefused) as refused:
            await connect(server.url, {}, on_message=Inbox())
        assert refused.value.code == 401 and b"no secret" in refused.value.body
        ws = await connect(server.url, {"Authorization": "Bearer s3cret"}, on_message=Inbox())
        ws.close()
        await ws.wait_closed()
    finally:
        server.http.stop()


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        return struct.pack("!BB", first, n) + payload
    if n < 65536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


def unmasked(frames: bytes) -> list[tuple[int, bytes]]:
    """Our frames as (opcode, payload), each checked to be final and masked."""
    out, at = [], 0
    while at < len(frames):
        b0, b1 = frames[at], frames[at + 1]
        assert b0 & 0x80 and b1 & 0x80
        n, head = b1 & 0x7F, 2
        if n == 126:
            n, head = struct.unpack("!H", frames[at + 2:at + 4])[0], 4
        elif n == 127:
            n, head = struct.unpack("!Q", frames[at + 2:at + 10])[0], 10
        key = bytes(frames[at + head:at + head + 4])
        out.append((b0 & 0x0F, ws_client.mask(key, bytes(frames[at + head + 4:at + head + 4 + n]))))
        at += head + 4 + n
    return out


async def opened(inbox: Inbox, max_size: int = 1 << 20) -> tuple[WebSocket, FakeTransport]:
    key = base64.b64encode(os.urandom(16)).decode()
    ws = WebSocket(b"GET / HTTP/1.1\r\n\r\n", key, inbox, max_size)
    transport = FakeTransport()
    ws.connection_made(transport)
    transport.written.clear()
    ws.data_received(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                      f"{accept_for(key)}\r\n\r\n").encode())
    await ws._opened
    return ws, transport


async def test_fragments_and_control_frames_between_them_byte_by_byte() -> None:
    inbox = Inbox()
    ws, transport = await opened(inbox)
    big = os.urandom(BIG)
    stream = (server_frame(TEXT, b"hel", fin=False) + server_frame(PING, b"p1")
              + server_frame(CONTINUATION, b"lo ", fin=False)
              + server_frame(CONTINUATION, "wörld".encode())
              + server_frame(BINARY, big[:70000], fin=False)
              + server_frame(CONTINUATION, big[70000:])
              + server_frame(PONG, b"") + server_frame(TEXT, b"after"))
    for i in range(0, 200):  # the start a byte at a time, then in uneven pieces
        ws.data_received(stream[i:i + 1])
    at = 200
    while at < len(stream):
        ws.data_received(stream[at:at + 9973])
        at += 9973
    assert inbox.messages == ["hello wörld".encode(), big, b"after"]
    assert unmasked(transport.written) == [(PONG, b"p1")]


async def test_nothing_after_the_servers_close_frame_is_read() -> None:
    inbox = Inbox()
    ws, transport = await opened(inbox)
    ws.data_received(server_frame(TEXT, b"before") + server_frame(CLOSE, b"\x03\xe8bye")
                     + server_frame(TEXT, b"after"))
    ws.data_received(server_frame(TEXT, b"later"))
    assert inbox.messages == [b"before"]
    assert unmasked(transport.written) == [(CLOSE, b"\x03\xe8")]  # its code echoed
    assert transport.closed and (ws.close_code, ws.close_reason) == (1000, "bye")
    ws.connection_lost(None)
    assert inbox.messages == [b"before", None]


async def test_frames_that_break_the_protocol_fail_the_connection() -> None:
    cases = [
        (struct.pack("!BB", 0x81, 0x80 | 1) + b"\x00\x00\x00\x00x", 1002),  # masked
        (struct.pack("!BB", 0xC1, 1) + b"x", 1002),  # a reserved bit
        (server_frame(CONTINUATION, b"x"), 1002),  # nothing to continue
        (server_frame(TEXT, b"a", fin=False) + server_frame(TEXT, b"b"), 1002),
        (server_frame(PING, b"x", fin=False), 1002),  # a fragmented control frame
        (server_frame(PING, b"x" * 126), 1002),  # a long one
        (server_frame(TEXT, b"\xff\xfe"), 1007),  # not UTF-8
        (server_frame(BINARY, b"x" * 2048), 1009),  # over max_size
        (server_frame(0x3, b""), 1002),  # a reserved opcode
    ]
    for data, code in cases:
        inbox = Inbox()
        ws, transport = await opened(inbox, max_size=1024)
        ws.data_received(data)
        (opcode, payload), = unmasked(transport.written)
        assert opcode == CLOSE and int.from_bytes(payload[:2], "big") == code, data
        assert transport.closed and inbox.messages == [] and not ws.send(b"x")


async def test_a_wrong_accept_key_is_refused() -> None:
    ws = WebSocket(b"GET / HTTP/1.1\r\n\r\n", "a2V5a2V5a2V5a2V5a2V5aw==", Inbox(), 1024)
    transport = FakeTransport()
    ws.connection_made(transport)
    ws.data_received(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: bm9wZQ==\r\n\r\n")
    with pytest.raises(ProtocolViolation):
        await ws._opened
    assert transport.closed


async def test_a_refusal_read_to_its_end_chunked() -> None:
    ws = WebSocket(b"GET / HTTP/1.1\r\n\r\n", "a2V5a2V5a2V5a2V5a2V5aw==", Inbox(), 1024)
    ws.connection_made(FakeTransport())
    ws.data_received(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: //other:5050/x\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    assert not ws._opened.done()
    ws.data_received(b"0\r\n\r\n")
    with pytest.raises(HandshakeRefused) as refused:
        await ws._opened
    assert refused.value.code == 307 and refused.value.headers["location"] == "//other:5050/x"
    assert refused.value.body == b"hello"


async def test_wss_verifies_the_server_and_presents_a_client_certificate(tmp_path) -> None:
    """wss:// through the context mesonb.tls gives clients: the server's certificate is
    checked against the CA (and its name), and a server that requires a client
    certificate gets one; a client that does not trust the CA is refused."""
    import ssl

    from mesonb import tls
    from mesonb.security.certs import make_bundle

    bundle = make_bundle(tmp_path / "tls")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(str(bundle.cert), str(bundle.key))
    server_ctx.load_verify_locations(cafile=str(bundle.ca))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    seen: list[str] = []
    got = asyncio.Event()

    class Handler(tornado.websocket.WebSocketHandler):
        def on_message(self, message: str | bytes) -> None:
            seen.append(str(message))
            got.set()

    app = tornado.web.Application([("/ws", Handler)])
    server = app.listen(0, "127.0.0.1", ssl_options=server_ctx)
    port = next(iter(server._sockets.values())).getsockname()[1]
    url = f"wss://127.0.0.1:{port}/ws"
    previous = tls.configure(tls.TlsSettings(ca=bundle.ca, cert=bundle.client_cert,
                                             key=bundle.client_key), export=False)
    try:
        ws = await connect(url, {}, on_message=Inbox(), ssl_context=tls.client_context())
        ws.send(b"over tls")
        await asyncio.wait_for(got.wait(), 5)
        assert seen == ["over tls"]
        ws.close()
        await ws.wait_closed()
        with pytest.raises(ssl.SSLError):  # the system's CAs do not know this one
            await connect(url, {}, on_message=Inbox(), ssl_context=ssl.create_default_context())
    finally:
        tls.configure(previous, export=False)
        server.stop()
