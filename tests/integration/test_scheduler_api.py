"""The v1 scheduler API over real HTTP, against a master daemon in this test's event loop.

The agent side is a WebSocket peer speaking the agent protocol (protocol/agent.py), so
these tests exercise the real master's HTTP layer and stream handling end to end. Tests
that drive the master with mesonb's SchedulerDriver run twice: over HTTP, and in-process
(the driver and the master share this loop, mesonb.http.inproc), which must behave the
same.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest
import tornado.websocket

from mesonb.config import MasterConfig
from mesonb.frameworks.driver import SchedulerDriver
from mesonb.http.client import Connection, HTTPError, open_stream
from mesonb.master.daemon import MasterDaemon
from mesonb.protocol.agent import AGENT_PATH
from mesonb.protocol.recordio import Decoder
from mesonb.protocol.resources import Resources
from mesonb.testing.frameworks import Recorder

pytestmark = pytest.mark.slow


class PeerAgent:
    """An agent peer: registers, records master commands, sends status updates."""

    def __init__(self, conn: tornado.websocket.WebSocketClientConnection):
        self.conn = conn
        self.commands: list[dict] = []
        self.agent_id = ""
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, daemon: MasterDaemon, resources: str = "cpus:2;mem:1024") -> PeerAgent:
        conn = await tornado.websocket.websocket_connect(f"ws://{daemon.address}{AGENT_PATH}")
        peer = cls(conn)
        await conn.write_message(json.dumps({"type": "REGISTER", "register": {
            "version": "1.11.0",
            "agent_info": {"hostname": "peer", "port": 5051,
                           "resources": Resources.parse(resources).to_json()}}}))
        registered = await peer.next("REGISTERED")
        peer.agent_id = registered["registered"]["agent_id"]["value"]
        return peer

    async def _read(self) -> None:
        while True:
            message = await self.conn.read_message()
            if message is None:
                return
            frame = json.loads(message)  # one message, or an array of several
            self.commands.extend(frame if isinstance(frame, list) else [frame])

    async def next(self, kind: str, timeout: float = 5.0) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for i, command in enumerate(self.commands):
                if command["type"] == kind:
                    return self.commands.pop(i)
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"no {kind} from the master; got {self.commands}")
            await asyncio.sleep(0.005)

    async def update(self, framework_id: str, task_id: str, state: str) -> str:
        status_uuid = base64.b64encode(uuid.uuid4().bytes).decode()
        await self.conn.write_message(json.dumps({"type": "STATUS_UPDATE", "status_update": {
            "framework_id": {"value": framework_id},
            "status": {"task_id": {"value": task_id}, "state": state, "uuid": status_uuid,
                       "source": "SOURCE_EXECUTOR"}}}))
        return status_uuid

    def close(self) -> None:
        self.conn.close()
        self._reader.cancel()


@pytest.fixture
async def master(tmp_path):
    daemon = MasterDaemon(MasterConfig(port=0, work_dir=tmp_path, allocation_interval=0.2))
    await daemon.start()
    yield daemon
    await daemon.stop()


@pytest.fixture(params=["http", "lane", "inproc"])
def transport(request, monkeypatch):
    """How the driver reaches the master (over HTTP only, with its other calls on the
    master's calls lane, or in-process); asserts afterwards that it really went that way."""
    from mesonb.http import lane
    from mesonb.master.http import inproc as master_inproc
    from mesonb.master.http import scheduler_lane
    from mesonb.master.http.scheduler import SchedulerHandler

    monkeypatch.setenv("MESONB_INPROC", "1" if request.param == "inproc" else "0")
    seen = {"http": 0, "inproc": 0, "lane": 0}
    http_post, inproc_request = SchedulerHandler.post, master_inproc.MasterEndpoint.request
    inproc_json = master_inproc.MasterEndpoint.request_json
    lane_call = scheduler_lane._Connection._carry_out
    if request.param == "http":  # the driver ignores the lane the master names
        monkeypatch.setattr(lane, "calls_for", lambda current, headers: current)

    def counted_lane_call(self, *args, **kwargs):
        seen["lane"] += 1
        return lane_call(self, *args, **kwargs)

    monkeypatch.setattr(scheduler_lane._Connection, "_carry_out", counted_lane_call)

    async def counted_post(self):
        seen["http"] += 1
        return await http_post(self)

    def counted_request(self, *args, **kwargs):
        seen["inproc"] += 1
        return inproc_request(self, *args, **kwargs)

    monkeypatch.setattr(SchedulerHandler, "post", counted_post)
    def counted_json(self, *args, **kwargs):
        seen["inproc"] += 1
        return inproc_json(self, *args, **kwargs)

    monkeypatch.setattr(master_inproc.MasterEndpoint, "request", counted_request)
    monkeypatch.setattr(master_inproc.MasterEndpoint, "request_json", counted_json)
    yield request.param
    if request.param == "inproc":
        assert seen["inproc"] > 0, "the driver's calls should have stayed in-process"
    else:
        assert seen["inproc"] == 0 and seen["http"] > 0, seen
        assert (seen["lane"] > 0) == (request.param == "lane"), seen


def call_headers(stream_id: str | None = None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if stream_id:
        headers["Mesos-Stream-Id"] = stream_id
    return headers


async def test_subscribe_is_a_chunked_recordio_stream_with_a_stream_id(master):
    stream = await open_stream(master.url, "/api/v1/scheduler", {
        "type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "raw"}}})
    try:
        assert stream.headers["transfer-encoding"] == "chunked"
        assert len(stream.headers["mesos-stream-id"]) <= 128
        decoder = Decoder()
        records = []
        while not records:
            records.extend(decoder.feed_json(await anext(stream.chunks)))
        assert records[0]["type"] == "SUBSCRIBED"
    finally:
        stream.close()


@pytest.mark.parametrize(
    ("headers", "body", "status", "text"),
    [
        ({}, b"{}", 400, "Content-Type"),
        ({"Content-Type": "application/x-protobuf"}, b"", 415, "not supported"),
        ({"Content-Type": "text/plain"}, b"{}", 415, "application/json"),
        ({"Content-Type": "application/json", "Accept": "text/html"}, b"{}", 406, "Accept"),
        ({"Content-Type": "application/json"}, b"{oops", 400, "invalid JSON"),
        ({"Content-Type": "application/json"}, b'{"type":"DECLINE","framework_id":{"value":"x"},'
         b'"decline":{"offer_ids":[]}}', 400, "Framework cannot be found"),
        ({"Content-Type": "application/json", "Mesos-Stream-Id": "s"},
         b'{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}',
         400, "should not include"),
    ],
)
async def test_malformed_calls_get_4xx_with_a_message_and_the_master_keeps_serving(
    master, headers, body, status, text
):
    conn = Connection.to(master.url)
    response = await conn.request("POST", "/api/v1/scheduler", body, headers)
    assert response.status == status
    assert text in response.body.decode()
    assert (await conn.request("GET", "/health")).status == 200
    conn.close()


async def test_get_is_not_allowed_and_version_is_served(master):
    conn = Connection.to(master.url)
    assert (await conn.request("GET", "/api/v1/scheduler")).status == 405
    version = (await conn.request("GET", "/version")).json()
    assert version["version"] >= "1.0.0"
    redirect = await conn.request("GET", "/master/redirect")
    assert redirect.status == 307
    assert redirect.headers["location"] == f"//{master.address}"
    conn.close()


async def test_driver_launches_acknowledges_and_sees_terminal_updates(master, transport):
    agent = await PeerAgent.connect(master)
    handler = Recorder()
    driver = SchedulerDriver(master.address, {"user": "u", "name": "driver-test"}, handler)
    framework_id = await driver.start()
    try:
        offer = await asyncio.wait_for(handler.offers.get(), 5)
        task = {"name": "t", "task_id": {"value": "t1"}, "agent_id": offer["agent_id"],
                "command": {"value": "true"},
                "resources": Resources.parse("cpus:1;mem:64").to_json()}
        await driver.launch([offer["id"]["value"]], [task])
        run = await agent.next("RUN_TASK")
        assert run["run_task"]["task"]["task_id"]["value"] == "t1"
        sent = await agent.update(framework_id, "t1", "TASK_RUNNING")
        status = await asyncio.wait_for(handler.updates.get(), 5)
        assert status["state"] == "TASK_RUNNING" and status["uuid"] == sent
        ack = await agent.next("ACKNOWLEDGE")
        assert ack["acknowledge"]["uuid"] == sent
        await agent.update(framework_id, "t1", "TASK_FINISHED")
        assert (await asyncio.wait_for(handler.updates.get(), 5))["state"] == "TASK_FINISHED"
        await agent.next("ACKNOWLEDGE")
        await driver.kill("t1")
        lost = await asyncio.wait_for(handler.updates.get(), 5)
        assert lost["reason"] == "REASON_RECONCILIATION"
    finally:
        await driver.stop(teardown=True)
        agent.close()
    book = master.master.book
    assert framework_id in book.completed_frameworks


async def test_second_subscription_takes_over_and_the_first_gets_error(master, transport):
    first = await open_stream(master.url, "/api/v1/scheduler", {
        "type": "SUBSCRIBE",
        "subscribe": {"framework_info": {"user": "u", "name": "n", "failover_timeout": 60}}})
    decoder = Decoder()
    events = []
    while not events:
        events.extend(decoder.feed_json(await anext(first.chunks)))
    framework_id = events[0]["subscribed"]["framework_id"]["value"]
    handler = Recorder()
    driver = SchedulerDriver(master.address, {"user": "u", "name": "n", "failover_timeout": 60,
                                              "id": {"value": framework_id}}, handler)
    assert await driver.start() == framework_id
    try:
        with pytest.raises(StopAsyncIteration):
            while True:
                for event in decoder.feed_json(await anext(first.chunks)):
                    events.append(event)
        assert events[-1] == {"type": "ERROR", "error": {"message": "Framework failed over"}}
    finally:
        first.close()
        await driver.stop(teardown=True)


async def test_calls_with_a_stale_stream_id_are_refused(master, transport):
    handler = Recorder()
    driver = SchedulerDriver(master.address, {"user": "u", "name": "n"}, handler)
    await driver.start()
    try:
        driver.stream_id = "stale"
        with pytest.raises(HTTPError) as info:
            await driver.revive()
        assert info.value.status == 400 and b"stream ID" in info.value.body
    finally:
        await driver.stop()


async def test_a_batch_of_calls_is_validated_whole_then_carried_out(master, transport):
    agent = await PeerAgent.connect(master)
    handler = Recorder()
    driver = SchedulerDriver(master.address, {"user": "u", "name": "batch"}, handler)
    framework_id = await driver.start()
    assert driver._batching, "the driver should see a mesonb master and batch its acks"
    conn = Connection.to(master.url)
    headers = call_headers(driver.stream_id)
    fid = {"value": framework_id}
    try:
        bad = json.dumps([{"type": "REVIVE", "framework_id": fid},
                          {"type": "SUBSCRIBE", "subscribe": {}}]).encode()
        answer = await conn.request("POST", "/api/v1/scheduler", bad, headers)
        assert answer.status == 400 and b"call 1 of the batch" in answer.body
        assert (await conn.request("POST", "/api/v1/scheduler", b"[]", headers)).status == 400
        offer = await asyncio.wait_for(handler.offers.get(), 5)
        tasks = [{"name": t, "task_id": {"value": t}, "agent_id": offer["agent_id"],
                  "command": {"value": "true"},
                  "resources": Resources.parse("cpus:0.5;mem:32").to_json()} for t in "ab"]
        await driver.launch([offer["id"]["value"]], tasks)
        await agent.next("RUN_TASK")
        await agent.next("RUN_TASK")
        sent = {await agent.update(framework_id, t, "TASK_RUNNING") for t in "ab"}
        acked = {(await agent.next("ACKNOWLEDGE"))["acknowledge"]["uuid"] for _ in "ab"}
        assert acked == sent
        counters = master.master.counters
        assert counters["messages_acknowledge"] == 2
        batch = json.dumps([{"type": "KILL", "framework_id": fid,
                             "kill": {"task_id": {"value": t}}} for t in "ab"]).encode()
        assert (await conn.request("POST", "/api/v1/scheduler", batch, headers)).status == 202
        kills = {(await agent.next("KILL_TASK"))["kill_task"]["task_id"]["value"] for _ in "ab"}
        assert kills == {"a", "b"}
    finally:
        conn.close()
        await driver.stop(teardown=True)
        agent.close()


async def test_a_removed_framework_resubscribing_gets_error_on_a_chunked_stream(master):
    stream = await open_stream(master.url, "/api/v1/scheduler", {
        "type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "gone"}}})
    decoder = Decoder()
    events = []
    while not events:
        events.extend(decoder.feed_json(await anext(stream.chunks)))
    framework_id = events[0]["subscribed"]["framework_id"]["value"]
    stream.close()  # failover_timeout 0: the master removes the framework
    deadline = asyncio.get_running_loop().time() + 5
    while framework_id not in master.master.book.completed_frameworks:
        assert asyncio.get_running_loop().time() < deadline, "framework was not removed"
        await asyncio.sleep(0.01)
    again = await open_stream(master.url, "/api/v1/scheduler", {
        "type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "u", "name": "gone", "id": {"value": framework_id}}}})
    records = []
    async for chunk in again.chunks:
        records.extend(decoder.feed_json(chunk))
    assert records == [{"type": "ERROR", "error": {
        "message": f"Framework {framework_id} has been removed"}}]


async def test_event_streams_send_each_event_at_once(master):
    """A SUBSCRIBE stream's socket has Nagle's algorithm off: a second small event is not
    held back waiting for the client's (delayed, up to 40 ms) ACK of the first."""
    import socket

    stream = await open_stream(master.url, "/api/v1/scheduler", {
        "type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n"}}})
    try:
        await anext(stream.chunks)  # SUBSCRIBED: the stream is open on the master's side
        streams = [c.stream for c in master._server._connections]
        assert streams, "the master should hold the stream's connection"
        assert all(s.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                   for s in streams if s.socket is not None)
    finally:
        stream.close()
