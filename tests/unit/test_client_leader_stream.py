"""client.leader.open_master_stream: a streaming call reaches the leader past standbys."""

from __future__ import annotations

import asyncio

import pytest
import tornado.web

from mesonb.client.leader import open_master_stream
from mesonb.http.client import HTTPError
from mesonb.protocol import recordio


def _serve(handler: type[tornado.web.RequestHandler]) -> tuple[str, object]:
    server = tornado.web.Application([("/api/v1", handler)]).listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    return f"127.0.0.1:{port}", server


async def test_a_standby_redirects_the_stream_to_the_leader() -> None:
    gone = asyncio.Event()

    class Leader(tornado.web.RequestHandler):
        async def post(self) -> None:
            self.write(recordio.encode_json({"type": "SUBSCRIBED"}))
            await self.flush()
            await gone.wait()

        def on_connection_close(self) -> None:
            gone.set()

    leader, leader_server = _serve(Leader)

    class Standby(tornado.web.RequestHandler):
        def post(self) -> None:
            self.set_status(307)
            self.set_header("Location", f"//{leader}/api/v1")

    class Refuses(tornado.web.RequestHandler):
        def post(self) -> None:
            self.set_status(401)

    class Loops(tornado.web.RequestHandler):
        def post(self) -> None:
            self.set_status(307)
            self.set_header("Location", f"//{self.request.host}/api/v1")

    standby, standby_server = _serve(Standby)
    refuses, refuses_server = _serve(Refuses)
    loops, loops_server = _serve(Loops)
    try:
        stream, url = await open_master_stream(standby, "/api/v1", {"type": "SUBSCRIBE"})
        try:
            assert url == f"http://{leader}"
            records = list(recordio.Decoder().feed_json(await anext(stream.chunks)))
            assert records == [{"type": "SUBSCRIBED"}]
        finally:
            stream.close()
        with pytest.raises(HTTPError) as info:
            await open_master_stream(refuses, "/api/v1", {"type": "SUBSCRIBE"})
        assert info.value.status == 401
        with pytest.raises(ConnectionError, match="too many redirects"):
            await open_master_stream(loops, "/api/v1", {"type": "SUBSCRIBE"})
    finally:
        for server in (leader_server, standby_server, refuses_server, loops_server):
            server.stop()  # type: ignore[attr-defined]
