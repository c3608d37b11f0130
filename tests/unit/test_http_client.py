"""mesonb's small HTTP client (mesonb.http.client) against a real tornado server."""

from __future__ import annotations

import asyncio

import tornado.web

from mesonb.http.client import Connection


class SlowAnswer(tornado.web.RequestHandler):
    """Answers its first request after a long pause, later ones at once."""

    calls = 0

    async def get(self) -> None:
        SlowAnswer.calls += 1
        if SlowAnswer.calls == 1:
            await asyncio.sleep(1.0)
            self.write("first")
        else:
            self.write("second")


async def test_a_request_cancelled_half_way_does_not_leave_its_answer_to_the_next():
    app = tornado.web.Application([("/x", SlowAnswer)])
    server = app.listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    conn = Connection("127.0.0.1", port)
    try:
        try:
            async with asyncio.timeout(0.2):
                await conn.request("GET", "/x")
        except TimeoutError:
            pass
        answer = await conn.request("GET", "/x")
        assert answer.body == b"second"
    finally:
        conn.close()
        server.stop()


class NeverAnswers(tornado.web.RequestHandler):
    """Holds every request open; counts the connections closed by the client."""

    arrived = closed = 0

    async def post(self) -> None:
        NeverAnswers.arrived += 1
        self._gone = asyncio.Event()
        await self._gone.wait()

    def on_connection_close(self) -> None:
        NeverAnswers.closed += 1
        self._gone.set()


async def test_a_stream_cancelled_before_the_answer_closes_its_connection():
    from mesonb.http.client import open_stream

    app = tornado.web.Application([("/s", NeverAnswers)])
    server = app.listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    try:
        waiting = asyncio.ensure_future(open_stream(f"http://127.0.0.1:{port}", "/s", {}))
        deadline = asyncio.get_running_loop().time() + 5
        while NeverAnswers.arrived == 0:
            assert asyncio.get_running_loop().time() < deadline, "the request never came"
            await asyncio.sleep(0.01)
        waiting.cancel()
        while NeverAnswers.closed == 0:
            assert asyncio.get_running_loop().time() < deadline, "the socket stayed open"
            await asyncio.sleep(0.01)
    finally:
        server.stop()
