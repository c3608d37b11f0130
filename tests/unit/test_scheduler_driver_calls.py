"""The scheduler driver's calls are typed protocol messages; on the wire they are the
Mesos v1 JSON they always were (a master that records what it is sent)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
import tornado.web

from mesonb.frameworks import driver as driver_module
from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol import recordio
from mesonb.protocol.errors import BadRequest
from mesonb.protocol.mesos import Operation
from mesonb.testing.frameworks import Recorder


class RecordingMaster:
    """SUBSCRIBED on the stream, 202 for every other call, whose JSON it keeps."""

    def __init__(self, version: dict[str, str] | None = None) -> None:
        self.calls: list[Any] = []
        master = self
        answer = version or {"version": "1.11.0"}

        class Scheduler(tornado.web.RequestHandler):
            async def post(self) -> None:
                call = json.loads(self.request.body)
                if isinstance(call, dict) and call.get("type") == "SUBSCRIBE":
                    master.subscribe = call
                    self._gone = asyncio.Event()
                    self.set_header("Mesos-Stream-Id", "stream-1")
                    self.write(recordio.encode_json({"type": "SUBSCRIBED", "subscribed": {
                        "framework_id": {"value": "fw"}, "heartbeat_interval_seconds": 60}}))
                    await self.flush()
                    await self._gone.wait()
                    return
                assert self.request.headers["Mesos-Stream-Id"] == "stream-1"
                master.calls.append(call)
                self.set_status(202)

            def on_connection_close(self) -> None:
                if hasattr(self, "_gone"):
                    self._gone.set()

        class Version(tornado.web.RequestHandler):
            def get(self) -> None:
                self.write(json.dumps(answer))

        app = tornado.web.Application([("/api/v1/scheduler", Scheduler), ("/version", Version)])
        self.server = app.listen(0, "127.0.0.1")
        port = next(iter(self.server._sockets.values())).getsockname()[1]
        self.address = f"127.0.0.1:{port}"


async def test_every_call_goes_out_as_the_mesos_json_it_always_was() -> None:
    master = RecordingMaster()
    driver = SchedulerDriver(master.address, {"user": "u", "name": "calls"}, Recorder())
    fid = {"value": "fw"}
    task = {"name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": "a1"},
            "command": {"value": "true", "shell": True},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5},
                           "role": "*"}]}
    uuid = base64.b64encode(b"0123456789abcdef").decode()
    try:
        assert await driver.start(timeout=10) == "fw"
        # (the typed FrameworkInfo writes the proto's defaults out)
        assert master.subscribe == {"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "u", "name": "calls", "failover_timeout": 0.0, "checkpoint": False}}}
        await driver.launch(["o1"], [task], refuse_seconds=5)
        await driver.decline(["o2", "o3"])
        await driver.kill("t1", "a1", grace_seconds=1.5)
        await driver.acknowledge({"agent_id": {"value": "a1"}, "task_id": {"value": "t1"},
                                  "uuid": uuid, "state": "TASK_RUNNING"})
        await driver.reconcile([("t1", "a1"), ("t2", None)])
        await driver.message("a1", "e1", b"hi")
        await driver.shutdown_executor("a1", "e1")
        await driver.revive(["r"])
        await driver.suppress()
        assert master.calls == [
            {"type": "ACCEPT", "framework_id": fid, "accept": {
                "offer_ids": [{"value": "o1"}],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
                "filters": {"refuse_seconds": 5}}},
            {"type": "DECLINE", "framework_id": fid, "decline": {
                "offer_ids": [{"value": "o2"}, {"value": "o3"}]}},
            {"type": "KILL", "framework_id": fid, "kill": {
                "task_id": {"value": "t1"}, "agent_id": {"value": "a1"},
                "kill_policy": {"grace_period": {"nanoseconds": 1_500_000_000}}}},
            {"type": "ACKNOWLEDGE", "framework_id": fid, "acknowledge": {
                "agent_id": {"value": "a1"}, "task_id": {"value": "t1"}, "uuid": uuid}},
            {"type": "RECONCILE", "framework_id": fid, "reconcile": {"tasks": [
                {"task_id": {"value": "t1"}, "agent_id": {"value": "a1"}},
                {"task_id": {"value": "t2"}}]}},
            {"type": "MESSAGE", "framework_id": fid, "message": {
                "agent_id": {"value": "a1"}, "executor_id": {"value": "e1"},
                "data": base64.b64encode(b"hi").decode()}},
            {"type": "SHUTDOWN", "framework_id": fid, "shutdown": {
                "executor_id": {"value": "e1"}, "agent_id": {"value": "a1"}}},
            {"type": "REVIVE", "framework_id": fid, "revive": {"roles": ["r"]}},
            # no roles: every role (an empty list is not written out)
            {"type": "SUPPRESS", "framework_id": fid, "suppress": {}},
        ]
        # Typed operations are written out by the protocol's codec.
        operation = Operation.from_json({"type": "LAUNCH", "launch": {"task_infos": [task]}})
        await driver.accept(["o4"], [operation])
        assert master.calls[-1]["accept"]["operations"] == [operation.to_json()]
        sent = len(master.calls)
        with pytest.raises(BadRequest):  # read into a typed Call before anything is sent
            await driver.call("KILL", {"task_id": "not an ID object"})
        assert len(master.calls) == sent
    finally:
        await driver.stop()
        master.server.stop()


async def test_waiting_acknowledgements_ride_with_the_next_accept() -> None:
    """Against a mesonb master (it takes arrays of calls) the acknowledgements waiting go
    out in the same request as an ACCEPT made meanwhile: one request, not two."""
    master = RecordingMaster({"version": "1.11.0", "mesonb_version": "0"})
    driver = SchedulerDriver(master.address, {"user": "u", "name": "acks"}, Recorder())
    uuid = base64.b64encode(b"0123456789abcdef").decode()
    status = {"agent_id": {"value": "a1"}, "task_id": {"value": "t1"}, "uuid": uuid,
              "state": "TASK_FINISHED"}
    ack = {"type": "ACKNOWLEDGE", "framework_id": {"value": "fw"}, "acknowledge": {
        "agent_id": {"value": "a1"}, "task_id": {"value": "t1"}, "uuid": uuid}}
    try:
        assert await driver.start(timeout=10) == "fw"
        driver._queue_ack(status)  # what an UPDATE event does
        await driver.launch(["o1"], [])
        assert len(master.calls) == 1
        (batch,) = master.calls
        assert [c["type"] for c in batch] == ["ACKNOWLEDGE", "ACCEPT"] and batch[0] == ack
        driver._queue_ack(status)  # nothing to ride with: sent on its own, soon
        for _ in range(200):
            if len(master.calls) == 2:
                break
            await asyncio.sleep(0.01)
        assert master.calls[1] == [ack]
        await asyncio.sleep(0.05)
        assert len(master.calls) == 2  # and only once
    finally:
        await driver.stop()
        master.server.stop()


def status(task: str, state: str) -> dict[str, Any]:
    """A status update of ``task`` in ``state``, as the driver acknowledges it."""
    return {"agent_id": {"value": "a1"}, "task_id": {"value": task}, "state": state,
            "uuid": base64.b64encode(task.encode().ljust(16, b"-")).decode()}


async def test_a_terminal_updates_acknowledgement_waits_longer_for_a_call_to_ride_with() -> None:
    """A terminal update's acknowledgement holds nothing up at the agent, so it waits
    TERMINAL_ACK_DELAY (not ACK_DELAY) for the next ACCEPT: in a burst of short tasks
    the acknowledgements then cost no request of their own. A non-terminal update's
    (the agent holds the task's next update until it) still goes within ACK_DELAY and
    takes the terminal ones waiting with it."""
    master = RecordingMaster({"version": "1.11.0", "mesonb_version": "0"})
    driver = SchedulerDriver(master.address, {"user": "u", "name": "acks"}, Recorder())

    try:
        assert await driver.start(timeout=10) == "fw"
        loop = asyncio.get_running_loop()
        driver._queue_ack(status("t1", "TASK_FINISHED"))
        driver._queue_ack(status("t2", "TASK_FAILED"))
        assert driver._ack_due - loop.time() > driver_module.ACK_DELAY * 5
        await asyncio.sleep(driver_module.ACK_DELAY * 5)  # long past ACK_DELAY
        assert master.calls == []
        await driver.launch(["o1"], [])
        (batch,) = master.calls
        assert [(c["type"], c.get("acknowledge", {}).get("task_id")) for c in batch] == [
            ("ACKNOWLEDGE", {"value": "t1"}), ("ACKNOWLEDGE", {"value": "t2"}),
            ("ACCEPT", None)]

        # A terminal ack waiting, then a RUNNING one: both go out at ACK_DELAY's pace.
        driver._queue_ack(status("t3", "TASK_FINISHED"))
        started = loop.time()
        driver._queue_ack(status("t4", "TASK_RUNNING"))
        assert driver._ack_due - started <= driver_module.ACK_DELAY + 0.001
        for _ in range(200):
            if len(master.calls) == 2:
                break
            await asyncio.sleep(0.005)
        assert [c["acknowledge"]["task_id"]["value"] for c in master.calls[1]] == ["t3", "t4"]
        # And an ack left alone still goes out on its own, soon.
        driver._queue_ack(status("t5", "TASK_FINISHED"))
        for _ in range(200):
            if len(master.calls) == 3:
                break
            await asyncio.sleep(0.005)
        assert [c["acknowledge"]["task_id"]["value"] for c in master.calls[2]] == ["t5"]
    finally:
        await driver.stop()
        master.server.stop()


async def test_a_terminal_ack_after_a_running_one_keeps_the_earlier_due_time() -> None:
    """A terminal update's ack queued while a timer runs reads no clock: that timer is
    due no later than its own would be; both go out together at the earlier time."""
    master = RecordingMaster({"version": "1.11.0", "mesonb_version": "0"})
    driver = SchedulerDriver(master.address, {"user": "u", "name": "acks"}, Recorder())

    try:
        assert await driver.start(timeout=10) == "fw"
        loop = asyncio.get_running_loop()
        started = loop.time()
        driver._queue_ack(status("r1", "TASK_RUNNING"))
        due = driver._ack_due
        assert due - started <= driver_module.ACK_DELAY + 0.001
        driver._queue_ack(status("f1", "TASK_FINISHED"))
        driver._queue_ack(status("f2", "TASK_FINISHED"))
        assert driver._ack_due == due
        for _ in range(200):
            if master.calls:
                break
            await asyncio.sleep(0.005)
        assert [c["acknowledge"]["task_id"]["value"] for c in master.calls[0]] == [
            "r1", "f1", "f2"]
    finally:
        await driver.stop()
        master.server.stop()
