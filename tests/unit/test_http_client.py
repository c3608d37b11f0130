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
