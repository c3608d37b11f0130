"""The executor's keep-alive HTTP client (mesonb.executor._http.Connection)."""

from __future__ import annotations

import asyncio

import pytest

from mesonb.executor import _http


async def _server(close_after: int) -> tuple[asyncio.AbstractServer, list[int]]:
    """Answers each POST 202 (or 400 for a body ``bad``); closes a connection after
    ``close_after`` answers. Records the number of connections in ``seen``."""
    seen: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(1)
        for _ in range(close_after):
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            body = await reader.readexactly(length)
            if body == b"bad":
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n\r\nnope")
            else:
                writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, seen


def test_connection_is_reused_and_reopened_after_the_server_closes_it() -> None:
    async def main() -> None:
        server, seen = await _server(close_after=3)
        port = server.sockets[0].getsockname()[1]
        conn = _http.Connection(f"127.0.0.1:{port}")
        try:
            for _ in range(3):
                response, data = await conn.post_and_read("/x", b"{}", {})
                assert response.status == 202 and data == b""
            assert len(seen) == 1  # one connection for three calls
            await asyncio.sleep(0.05)  # the server has closed it meanwhile
            response, _ = await conn.post_and_read("/x", b"{}", {})
            assert response.status == 202 and len(seen) == 2
            with pytest.raises(_http.HTTPError) as err:
                await conn.post_and_read("/x", b"bad", {})
            assert err.value.status == 400 and err.value.body == "nope"
            response, _ = await conn.post_and_read("/x", b"{}", {})
            assert response.status == 202
        finally:
            conn.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())
