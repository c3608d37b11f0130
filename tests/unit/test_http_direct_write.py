"""write_now (mesonb.http.direct_write) and the agent link's server_frame: the bytes a peer
reads are those of tornado's own IOStream.write and WebSocket _write_frame, in the same
order, when the socket takes them whole, in part, or not at all."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import pytest
import tornado.iostream
import tornado.websocket

from mesonb.http.direct_write import write_now
from mesonb.master.http.agent_link import TEXT_OPCODE, server_frame


async def _read_all(sock: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    out = bytearray()
    while len(out) < n:
        out += await loop.sock_recv(sock, 1 << 20)
    return bytes(out)


@pytest.mark.parametrize("sizes", [[10, 20, 30], [3_000_000, 5, 7, 1_000_000, 9], [1] * 50])
async def test_the_peer_reads_every_write_in_order(sizes: list[int]) -> None:
    """Small writes go straight to the socket; a write larger than the kernel takes
    leaves its rest with the IOStream, and the writes after it queue behind it."""
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    stream = tornado.iostream.IOStream(ours)
    try:
        pieces = [os.urandom(n) for n in sizes]
        for i, piece in enumerate(pieces):
            if i % 3 == 2:
                stream.write(piece)  # tornado's own writes mix in, in order
            else:
                assert write_now(stream, piece)
        got = await asyncio.wait_for(_read_all(theirs, sum(sizes)), 30)
        assert got == b"".join(pieces)
    finally:
        stream.close()
        theirs.close()


async def test_a_closed_stream_takes_nothing() -> None:
    ours, theirs = socket.socketpair()
    stream = tornado.iostream.IOStream(ours)
    stream.close()
    theirs.close()
    assert write_now(stream, b"x") is False


async def test_a_peer_gone_is_reported_as_tornado_reports_it() -> None:
    """A socket error: the write goes on to IOStream.write, which closes the stream."""
    ours, theirs = socket.socketpair()
    stream = tornado.iostream.IOStream(ours)
    theirs.close()
    closed = asyncio.Event()
    stream.set_close_callback(closed.set)
    write_now(stream, b"x" * 100)
    write_now(stream, b"y" * 100)
    await asyncio.wait_for(closed.wait(), 10)
    assert stream.closed()


class _Capture:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_server_frame_is_tornados_text_frame(n: int) -> None:
    protocol = tornado.websocket.WebSocketProtocol13.__new__(
        tornado.websocket.WebSocketProtocol13)
    protocol.mask_outgoing = False
    protocol._wire_bytes_out = 0
    capture = _Capture()
    protocol.stream = capture  # type: ignore[assignment]
    data = os.urandom(n)
    protocol._write_frame(True, TEXT_OPCODE, data)
    assert server_frame(data) == capture.written[0]
