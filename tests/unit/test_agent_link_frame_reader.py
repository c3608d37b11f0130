"""The agent link's frame reader (mesonb.master.http.agent_link.BufferedFrameReader) reads
the socket a burst at a time: a server reads the same messages, in the
same order, as with tornado's own WebSocketProtocol13, however the bytes arrive."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import os
import struct
from collections.abc import AsyncIterator

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.websocket

from mesonb.master.http import agent_link
from mesonb.testing.processes import until


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One masked client frame (RFC 6455 section 5.2)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


MESSAGES: list[str | bytes] = ["a", "", '{"type":"PONG"}', "é" * 100, "x" * 70_000,
                               b"\x00\x01binary", "fragmented message"]


def wire() -> bytes:
    """MESSAGES as frames, with a fragmented one and a PING in between."""
    out = b""
    for msg in MESSAGES:
        if msg == "fragmented message":
            out += frame(0x1, b"fragm", fin=False) + frame(0x9, b"ping!")
            out += frame(0x0, b"ented ", fin=False) + frame(0x0, b"message")
        elif isinstance(msg, bytes):
            out += frame(0x2, msg)
        else:
            out += frame(0x1, msg.encode())
    return out


@dataclasses.dataclass
class Link:
    """A WebSocket server (tornado, reading with BufferedFrameReader when ``fast``) and a
    client's raw connection to it, upgraded: what the server handed on and whether it
    closed the link."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    received: list[str | bytes] = dataclasses.field(default_factory=list)
    closed: list[bool] = dataclasses.field(default_factory=list)
    protocols: list[type] = dataclasses.field(default_factory=list)


@contextlib.asynccontextmanager
async def _link_to(fast: bool, first: bytes = b"", close_on: str | None = None,
                   max_message_size: int | None = None) -> AsyncIterator[Link]:
    """A :class:`Link` whose client sent ``first`` in the same write as its upgrade
    request (read with it, before the link starts reading frames); the server closes the
    link when a message ``close_on`` arrives."""
    seen: dict[str, list] = {"received": [], "closed": [], "protocols": []}

    class Handler(tornado.websocket.WebSocketHandler):
        def get_websocket_protocol(self):  # type: ignore[no-untyped-def]
            protocol = super().get_websocket_protocol()
            if fast:
                protocol = agent_link.BufferedFrameReader(self, False, protocol.params)
            seen["protocols"].append(type(protocol))
            return protocol

        def on_message(self, message: str | bytes) -> None:
            seen["received"].append(message)
            if message == close_on:
                self.close(1000, "done")

        def on_close(self) -> None:
            seen["closed"].append(True)

    limits = {} if max_message_size is None else {"websocket_max_message_size": max_message_size}
    server = tornado.httpserver.HTTPServer(tornado.web.Application([("/ws", Handler)], **limits))
    sock, = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server.add_sockets([sock])
    port = sock.getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode() + first)
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        yield Link(reader, writer, seen["received"], seen["closed"], seen["protocols"])
    finally:
        writer.close()
        server.stop()


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
@pytest.mark.parametrize("fast", [True, False])
async def test_same_messages_however_the_bytes_arrive(fast: bool, chunk: int) -> None:
    async with _link_to(fast) as link:
        data = wire()
        for i in range(0, len(data), chunk):
            link.writer.write(data[i:i + chunk])
            if chunk < 1 << 20 and i < 4000:
                await link.writer.drain()
                await asyncio.sleep(0)  # small pieces: many separate socket reads
        await link.writer.drain()
        await until(lambda: len(link.received) == len(MESSAGES), "all messages", timeout=20)
        assert link.received == MESSAGES
        pong = await link.reader.readexactly(7)  # the PING's answer: an unmasked PONG frame
        assert pong == bytes([0x8A, 5]) + b"ping!"
        link.writer.write(frame(0x8, struct.pack("!H", 1000)))
        assert (await link.reader.readexactly(4))[:2] == bytes([0x88, 2])  # the close echoed
    expected = agent_link.BufferedFrameReader if fast else tornado.websocket.WebSocketProtocol13
    assert link.protocols == [expected]


async def test_a_link_closed_mid_frame_is_closed() -> None:
    async with _link_to(True) as link:
        link.writer.write(frame(0x1, b"whole") + frame(0x1, b"half a frame")[:9])
        await link.writer.drain()
        await until(lambda: link.received == ["whole"], "the whole frame")
        link.writer.close()
        await until(lambda: link.closed, "on_close")
        assert link.received == ["whole"]


def _unmasked(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> bytes:
    return bytes([(0x80 if fin else 0) | rsv | opcode, len(payload)]) + payload


BAD_WIRES = {
    "reserved bits": frame(0x1, b"ok") + bytes([0x80 | 0x40 | 0x1, 0x80 | 2]) + b"\0" * 6,
    "long control frame": frame(0x1, b"ok") + frame(0x9, b"p" * 126),
    "fragmented control frame": frame(0x1, b"ok") + frame(0x9, b"p", fin=False),
    "continuation of nothing": frame(0x1, b"ok") + frame(0x0, b"more"),
    "new message inside a fragmented one": frame(0x1, b"a", fin=False) + frame(0x1, b"b"),
    "message too big": frame(0x1, b"ok") + frame(0x1, b"x" * 300),
    "fragments too big": frame(0x1, b"x" * 150, fin=False) + frame(0x0, b"y" * 150),
    "unknown opcode": frame(0x1, b"ok") + frame(0x3, b"?"),
    "unmasked frames (taken)": _unmasked(0x1, b"plain") + frame(0x1, b"ok")
    + frame(0x8, struct.pack("!H", 1000)),
    "bad utf-8": frame(0x1, b"ok") + frame(0x1, b"\xff\xfe"),
    "close with a reason": frame(0x1, b"ok") + frame(0x8, struct.pack("!H", 1001) + b"bye")
    + frame(0x1, b"after the close"),
}


async def _served(fast: bool, data: bytes) -> tuple[list[str | bytes], bytes, bool]:
    """What a server with a 256-byte message limit hands on, writes back and whether it
    closed, for ``data`` written in one piece."""
    return await _exchange(fast, b"", data, max_message_size=256)


@pytest.mark.parametrize("name", sorted(BAD_WIRES))
async def test_a_bad_frame_ends_the_link_as_tornado_ends_it(name: str) -> None:
    """Each protocol error: the same messages handed on first, the same answer written
    (a close frame, or none when tornado aborts), the link ended."""
    ours = await _served(True, BAD_WIRES[name])
    tornados = await _served(False, BAD_WIRES[name])
    assert ours == tornados


async def _exchange(fast: bool, first: bytes, then: bytes, close_on: str | None = None,
                    max_message_size: int | None = None
                    ) -> tuple[list[str | bytes], bytes, bool]:
    """A link (:func:`_link_to`) whose client sends ``then`` after its upgrade: what the
    server hands on, what it writes back (read until it closes), and whether on_close
    ran."""
    async with _link_to(fast, first, close_on, max_message_size) as link:
        link.writer.write(then)
        await link.writer.drain()
        answer = b""
        if close_on is not None:
            answer = await asyncio.wait_for(link.reader.readexactly(8), 10)  # the close frame
            link.writer.write(frame(0x8, answer[2:4]))  # answered: the close handshake ends
            await link.writer.drain()
        await until(lambda: link.closed, "on_close", timeout=10)
        answer += await asyncio.wait_for(link.reader.read(), 10)
        return link.received, answer, bool(link.closed)


async def test_frames_sent_with_the_upgrade_request_come_first() -> None:
    first = frame(0x1, b"one") + frame(0x1, b"two")
    then = frame(0x1, b"three") + frame(0x8, struct.pack("!H", 1000))
    ours = await _exchange(True, first, then)
    assert ours == await _exchange(False, first, then)
    assert ours[0] == ["one", "two", "three"]


async def test_a_link_the_server_closes_ends_with_the_close_handshake() -> None:
    then = frame(0x1, b"hello") + frame(0x1, b"bye")
    ours = await _exchange(True, b"", then, close_on="bye")
    assert ours == await _exchange(False, b"", then, close_on="bye")
    assert ours[0] == ["hello", "bye"] and ours[1][:2] == bytes([0x88, 6]) and ours[2]
