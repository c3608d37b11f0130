"""A plain connection reads at most wire.READ_SIZE bytes a recv (under glibc's mmap
threshold, so a read allocates no fresh mapping); answers larger than that, chunked or
not, arrive whole and the same as asyncio's default read size gives. The master's calls
lane, the agent's executor socket and its WebSocket client set their transports the same
way (wire.read_small)."""

from __future__ import annotations

import asyncio

import pytest

from mesonb.http import wire
from mesonb.http.client import Connection

BIG = bytes(range(256)) * (3 * wire.READ_SIZE // 256 + 7)  # several reads' worth, odd size


async def _serve(chunked: bool) -> tuple[asyncio.AbstractServer, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()
                return
            if chunked:
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for i in range(0, len(BIG), 50_000):
                    piece = BIG[i:i + 50_000]
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                writer.write(b"0\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(BIG), BIG))
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("chunked", [False, True])
async def test_large_answers_read_whole_with_the_small_read_size(chunked, monkeypatch):
    server, port = await _serve(chunked)
    try:
        small = Connection("127.0.0.1", port)
        first = await small.request("GET", "/")
        second = await small.request("GET", "/")  # the same connection, kept alive
        assert small._writer is not None
        assert small._writer.transport.max_size == wire.READ_SIZE < 128 * 1024
        # the slow path: asyncio's own read size
        monkeypatch.setattr(wire, "READ_SIZE", 256 * 1024)
        default = Connection("127.0.0.1", port)
        plain = await default.request("GET", "/")
        assert default._writer is not None and default._writer.transport.max_size == 256 * 1024
        assert first.body == second.body == plain.body == BIG
        assert first.status == plain.status == 200
        small.close()
        default.close()
    finally:
        server.close()


async def test_read_small_sets_plain_transports_and_leaves_tls_alone():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        assert writer.transport.max_size == 256 * 1024  # asyncio's own
        wire.read_small(writer.transport)
        assert writer.transport.max_size == wire.READ_SIZE

        class Tls(asyncio.Transport):  # no max_size: reads into a buffer of its own
            pass

        tls_transport = Tls()
        wire.read_small(tls_transport)
        assert not hasattr(tls_transport, "max_size")
        writer.close()
    finally:
        server.close()
