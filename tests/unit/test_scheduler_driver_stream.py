"""The scheduler driver's event stream: a master that falls silent is left and rejoined."""

from __future__ import annotations

import asyncio
import json

import tornado.web

from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol import recordio


class SilentMaster(tornado.web.RequestHandler):
    """SUBSCRIBED with a short heartbeat interval, then nothing, until the client leaves."""

    subscribes: list[float] = []

    async def post(self) -> None:
        SilentMaster.subscribes.append(asyncio.get_running_loop().time())
        self.set_header("Mesos-Stream-Id", f"s{len(SilentMaster.subscribes)}")
        self.write(recordio.encode_json({"type": "SUBSCRIBED", "subscribed": {
            "framework_id": {"value": "fw"}, "heartbeat_interval_seconds": 0.05}}))
        await self.flush()
        self._gone = asyncio.Event()
        await self._gone.wait()

    def on_connection_close(self) -> None:
        self._gone.set()


class Version(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(json.dumps({"version": "1.11.0"}))


async def test_a_stream_without_heartbeats_is_dropped_and_resubscribed():
    SilentMaster.subscribes = []
    app = tornado.web.Application([("/api/v1/scheduler", SilentMaster), ("/version", Version)])
    server = app.listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    disconnects = []

    class Handler:
        def on_disconnected(self):
            disconnects.append(asyncio.get_running_loop().time())

    driver = SchedulerDriver(f"127.0.0.1:{port}", {"user": "u", "name": "n"}, Handler())
    try:
        assert await driver.start(timeout=5) == "fw"
        deadline = asyncio.get_running_loop().time() + 10
        while len(SilentMaster.subscribes) < 3:
            assert asyncio.get_running_loop().time() < deadline, SilentMaster.subscribes
            await asyncio.sleep(0.01)
        # 5 heartbeat intervals (0.25 s) of silence, then a re-subscription
        assert SilentMaster.subscribes[1] - SilentMaster.subscribes[0] >= 0.25
        assert disconnects
    finally:
        await driver.stop()
        server.stop()



class BatchMaster(tornado.web.RequestHandler):
    """SUBSCRIBED, then three MESSAGE events in one chunk of the stream."""

    async def post(self) -> None:
        self.set_header("Mesos-Stream-Id", "s1")
        self.write(recordio.encode_json({"type": "SUBSCRIBED", "subscribed": {
            "framework_id": {"value": "fw"}, "heartbeat_interval_seconds": 15}}))
        await self.flush()
        self.write(b"".join(recordio.encode_json({"type": "MESSAGE", "message": {
            "agent_id": {"value": "a"}, "executor_id": {"value": "e"}, "data": f"{i}"}})
            for i in range(3)))
        await self.flush()
        self._gone = asyncio.Event()
        await self._gone.wait()

    def on_connection_close(self) -> None:
        self._gone.set()


async def test_on_events_handled_follows_the_events_of_each_chunk():
    app = tornado.web.Application([("/api/v1/scheduler", BatchMaster), ("/version", Version)])
    server = app.listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    seen: list[str] = []

    class Handler:
        def on_subscribed(self, body):
            seen.append("subscribed")

        def on_message(self, body):
            seen.append(body["data"])

        def on_events_handled(self):
            seen.append("handled")

    driver = SchedulerDriver(f"127.0.0.1:{port}", {"user": "u", "name": "n"}, Handler())
    try:
        await driver.start(timeout=5)
        deadline = asyncio.get_running_loop().time() + 10
        while len(seen) < 6:
            assert asyncio.get_running_loop().time() < deadline, seen
            await asyncio.sleep(0.01)
        assert seen == ["subscribed", "handled", "0", "1", "2", "handled"]
    finally:
        await driver.stop()
        server.stop()
