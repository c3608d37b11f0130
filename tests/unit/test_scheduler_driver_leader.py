"""The scheduler driver moves to the master ZooKeeper names at once (no ZooKeeper here:
the watch's callback, ``_leader_changed``, is called directly, as LeaderDetector would)."""

from __future__ import annotations

import asyncio
import json

import tornado.web

from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol import recordio
from mesonb.testing.frameworks import Recorder


class FakeMaster:
    """SUBSCRIBED, then silence until the client leaves; with ``hang`` set, a SUBSCRIBE
    is never answered (a master that froze after accepting the connection)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hang = False
        self.subscribes = 0
        self.open_streams = 0
        master = self

        class Scheduler(tornado.web.RequestHandler):
            async def post(self) -> None:
                master.subscribes += 1
                self._gone = asyncio.Event()
                if master.hang:
                    await self._gone.wait()
                    return
                master.open_streams += 1
                self.set_header("Mesos-Stream-Id", f"{master.name}-{master.subscribes}")
                self.write(recordio.encode_json({"type": "SUBSCRIBED", "subscribed": {
                    "framework_id": {"value": "fw"}, "heartbeat_interval_seconds": 60,
                    "master_info": {"id": master.name}}}))
                await self.flush()
                await self._gone.wait()
                master.open_streams -= 1

            def on_connection_close(self) -> None:
                self._gone.set()

        class Version(tornado.web.RequestHandler):
            def get(self) -> None:
                self.write(json.dumps({"version": "1.11.0"}))

        app = tornado.web.Application([("/api/v1/scheduler", Scheduler), ("/version", Version)])
        self.server = app.listen(0, "127.0.0.1")
        port = next(iter(self.server._sockets.values())).getsockname()[1]
        self.address = f"127.0.0.1:{port}"


async def until(condition, timeout: float, what: str) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not condition():
        assert loop.time() - start < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)
    return loop.time() - start


async def test_a_new_leader_ends_the_old_stream_and_is_subscribed_at_once():
    a, b = FakeMaster("a"), FakeMaster("b")
    seen = Recorder()
    driver = SchedulerDriver(a.address, {"user": "u", "name": "n"}, seen)
    try:
        await driver.start(timeout=5)
        assert seen.masters == ["a"] and a.open_streams == 1
        driver._leader_changed(b.address)  # what the watch calls on the loop
        assert driver.stream_id is None and driver.url == f"http://{b.address}"
        took = await until(lambda: seen.masters == ["a", "b"], 2, "a subscription with b")
        assert took < 0.5  # no back-off
        await until(lambda: a.open_streams == 0, 2, "a's stream closed")
        assert driver.stream_id == "b-1"
        driver._leader_changed(b.address)  # the same leader again: nothing happens
        await asyncio.sleep(0.05)
        assert seen.masters == ["a", "b"] and b.subscribes == 1
    finally:
        await driver.stop()
        a.server.stop()
        b.server.stop()


async def test_a_subscribe_hanging_on_the_old_leader_is_abandoned_for_the_new_one():
    a, b = FakeMaster("a"), FakeMaster("b")
    seen = Recorder()
    driver = SchedulerDriver(a.address, {"user": "u", "name": "n"}, seen)
    try:
        await driver.start(timeout=5)
        a.hang = True  # a freezes: the stream breaks and the next SUBSCRIBE hangs
        driver._stream.close()
        await until(lambda: a.subscribes == 2, 2, "a second SUBSCRIBE to a")
        assert driver._opening is not None
        driver._leader_changed(b.address)
        took = await until(lambda: seen.masters == ["a", "b"], 2, "a subscription with b")
        assert took < 0.5
    finally:
        await driver.stop()
        a.server.stop()
        b.server.stop()


async def test_stop_while_a_subscribe_hangs_stops_the_driver():
    a = FakeMaster("a")
    driver = SchedulerDriver(a.address, {"user": "u", "name": "n"}, Recorder())
    try:
        await driver.start(timeout=5)
        a.hang = True
        driver._stream.close()
        await until(lambda: a.subscribes == 2, 2, "a second SUBSCRIBE to a")
        await asyncio.wait_for(driver.stop(), 2)
        assert driver._task is not None and driver._task.done()
    finally:
        await driver.stop()
        a.server.stop()
