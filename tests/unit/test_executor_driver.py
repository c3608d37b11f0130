"""The executor driver against a scripted agent endpoint on a loopback port."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from mesonb.executor.driver import ExecutorDriver, ExecutorHandler, parse_duration
from mesonb.protocol import recordio
from mesonb.protocol.executor import ExecutorCall, ExecutorCallType
from mesonb.protocol.mesos import TaskInfo
from mesonb.protocol.states import Source, TaskState


class FakeAgent:
    """Answers /api/v1/executor: SUBSCRIBE streams what the test puts in ``events``."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.calls: list[ExecutorCall] = []
        self.headers: list[dict[str, str]] = []
        self.events: asyncio.Queue[dict | None] = asyncio.Queue()
        self.changed = asyncio.Event()
        self.port = 0
        self.server: HTTPServer | None = None

    def start(self) -> None:
        agent = self

        class Handler(tornado.web.RequestHandler):
            async def post(self) -> None:
                call = ExecutorCall.parse(self.request.body)
                agent.calls.append(call)
                agent.headers.append(dict(self.request.headers))
                agent.changed.set()
                if call.type is not ExecutorCallType.SUBSCRIBE:
                    self.set_status(202)
                    return
                if agent.refuse:
                    self.set_status(400)
                    self.finish("Executor is not known to this agent")
                    return
                self.set_header("Content-Type", "application/json")
                self.flush()
                while (event := await agent.events.get()) is not None:
                    self.write(recordio.encode_json(event))
                    await self.flush()

        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self.server = HTTPServer(tornado.web.Application([("/api/v1/executor", Handler)]))
        self.server.add_sockets(sockets)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.stop()
        await self.server.close_all_connections()

    def of_type(self, kind: ExecutorCallType) -> list[ExecutorCall]:
        return [c for c in self.calls if c.type is kind]

    async def until(self, predicate: Any, timeout: float = 10.0) -> Any:
        async def wait() -> Any:
            while not (value := predicate()):
                self.changed.clear()
                await self.changed.wait()
            return value
        return await asyncio.wait_for(wait(), timeout)

    def env(self, checkpoint: bool = False) -> dict[str, str]:
        return {"MESOS_AGENT_ENDPOINT": f"127.0.0.1:{self.port}", "MESOS_FRAMEWORK_ID": "fw",
                "MESOS_EXECUTOR_ID": "ex", "MESOS_EXECUTOR_AUTHENTICATION_TOKEN": "tok",
                "MESOS_CHECKPOINT": "1" if checkpoint else "0",
                "MESOS_RECOVERY_TIMEOUT": "10secs", "MESOS_SUBSCRIPTION_BACKOFF_MAX": "50ms",
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "1secs", "MESOS_SANDBOX": "/tmp"}


SUBSCRIBED = {"type": "SUBSCRIBED", "subscribed": {
    "executor_info": {"executor_id": {"value": "ex"}},
    "framework_info": {"user": "u", "name": "f", "id": {"value": "fw"}},
    "agent_info": {"hostname": "h"}, "container_id": {"value": "c"}}}


def launch(task_id: str) -> dict:
    return {"type": "LAUNCH", "launch": {"task": {
        "name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": "a"}}}}


def ack(call: ExecutorCall) -> dict:
    status = call.update.status
    return {"type": "ACKNOWLEDGED", "acknowledged": json.loads(json.dumps({
        "task_id": {"value": status.task_id}, "uuid": status.to_json()["uuid"]}))}


class Recorder(ExecutorHandler):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def subscribed(self, driver: ExecutorDriver, event: Any) -> None:
        self.seen.append("subscribed")

    async def launch(self, driver: ExecutorDriver, task: TaskInfo) -> None:
        self.seen.append(f"launch:{task.task_id}")
        await driver.update(task.task_id, TaskState.TASK_RUNNING)

    def acknowledged(self, driver: ExecutorDriver, task_id: str, uuid: bytes) -> None:
        self.seen.append(f"ack:{task_id}")

    def error(self, driver: ExecutorDriver, message: str) -> None:
        self.seen.append(f"error:{message}")

    def disconnected(self, driver: ExecutorDriver) -> None:
        self.seen.append("disconnected")

    async def shutdown(self, driver: ExecutorDriver) -> None:
        self.seen.append("shutdown")


def run(body: Any, agent_class: type[FakeAgent] | None = None, **agent_kwargs: Any) -> None:
    """Run ``body(agent)`` against a started fake agent (``agent_class``, FakeAgent by
    default), stopped at the end; 20 s at most."""
    async def main() -> None:
        agent = (agent_class or FakeAgent)(**agent_kwargs)
        agent.start()
        try:
            await asyncio.wait_for(body(agent), 20)
        finally:
            await agent.stop()

    asyncio.run(main())


def test_updates_get_uuids_and_acks_clear_them() -> None:
    async def body(agent: FakeAgent) -> None:
        handler = Recorder()
        driver = ExecutorDriver(handler, env=agent.env())
        runner = asyncio.ensure_future(driver.run())
        await agent.until(lambda: agent.of_type(ExecutorCallType.SUBSCRIBE))
        assert agent.headers[0]["Authorization"] == "Bearer tok"
        await agent.events.put(SUBSCRIBED)
        await agent.events.put(launch("t1"))
        (update,) = await agent.until(lambda: agent.of_type(ExecutorCallType.UPDATE))
        status = update.update.status
        assert status.state is TaskState.TASK_RUNNING
        assert status.source is Source.SOURCE_EXECUTOR
        assert len(status.uuid) == 16
        assert list(driver.unacknowledged_updates) == [status.uuid]
        assert list(driver.unacknowledged_tasks) == ["t1"]
        assert driver.framework_info.id == "fw"
        await agent.events.put(ack(update))
        assert await driver.wait_acknowledged(timeout=5)
        assert list(driver.unacknowledged_tasks) == ["t1"]  # not terminal yet
        uuid2 = await driver.update("t1", TaskState.TASK_FINISHED)
        assert uuid2 != status.uuid
        finished = agent.of_type(ExecutorCallType.UPDATE)[-1]
        await agent.events.put(ack(finished))
        assert await driver.wait_acknowledged(timeout=5)
        assert not driver.unacknowledged_tasks
        await agent.events.put({"type": "HEARTBEAT"})
        await agent.events.put({"type": "SHUTDOWN"})
        await asyncio.wait_for(runner, 5)
        assert handler.seen == ["subscribed", "launch:t1", "ack:t1", "ack:t1", "shutdown"]

    run(body)


def test_checkpointing_executor_resubscribes_with_what_is_unacknowledged() -> None:
    async def body(agent: FakeAgent) -> None:
        handler = Recorder()
        driver = ExecutorDriver(handler, env=agent.env(checkpoint=True))
        runner = asyncio.ensure_future(driver.run())
        await agent.until(lambda: agent.of_type(ExecutorCallType.SUBSCRIBE))
        await agent.events.put(SUBSCRIBED)
        await agent.events.put(launch("t1"))
        (update,) = await agent.until(lambda: agent.of_type(ExecutorCallType.UPDATE))
        await agent.events.put(None)  # the agent goes away (stream ends)
        await agent.until(lambda: len(agent.of_type(ExecutorCallType.SUBSCRIBE)) == 2)
        again = agent.of_type(ExecutorCallType.SUBSCRIBE)[1].subscribe
        assert [t.task_id for t in again.unacknowledged_tasks] == ["t1"]
        (resent,) = again.unacknowledged_updates
        assert resent["status"]["uuid"] == update.update.status.to_json()["uuid"]
        assert "disconnected" in handler.seen
        driver.stop()
        await asyncio.wait_for(runner, 5)

    run(body)


def test_non_checkpointing_executor_exits_when_the_agent_goes() -> None:
    async def body(agent: FakeAgent) -> None:
        handler = Recorder()
        driver = ExecutorDriver(handler, env=agent.env(checkpoint=False))
        runner = asyncio.ensure_future(driver.run())
        await agent.until(lambda: agent.of_type(ExecutorCallType.SUBSCRIBE))
        await agent.events.put(SUBSCRIBED)
        await agent.events.put(None)
        await asyncio.wait_for(runner, 5)
        assert handler.seen == ["subscribed", "disconnected"]
        assert len(agent.of_type(ExecutorCallType.SUBSCRIBE)) == 1

    run(body)


def test_refused_subscription_ends_the_driver() -> None:
    async def body(agent: FakeAgent) -> None:
        handler = Recorder()
        await asyncio.wait_for(ExecutorDriver(handler, env=agent.env()).run(), 5)
        assert handler.seen == ["error:HTTP 400: Executor is not known to this agent"]

    run(body, refuse=True)


def test_configuration_from_the_environment() -> None:
    with pytest.raises(ValueError, match="MESOS_AGENT_ENDPOINT"):
        ExecutorDriver(ExecutorHandler(), env={"MESOS_FRAMEWORK_ID": "f",
                                                "MESOS_EXECUTOR_ID": "e"})
    driver = ExecutorDriver(ExecutorHandler(), env={
        "MESOS_AGENT_ENDPOINT": "127.0.0.1:1", "MESOS_FRAMEWORK_ID": "f",
        "MESOS_EXECUTOR_ID": "e", "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "7secs",
        "MESOS_CHECKPOINT": "1", "MESOS_RECOVERY_TIMEOUT": "15mins"})
    assert driver.shutdown_grace_period == 7.0
    assert driver.checkpoint is True
    assert driver.recovery_timeout == 900.0
    assert driver.token is None


@pytest.mark.parametrize(("text", "seconds"), [
    ("5secs", 5.0), ("15mins", 900.0), ("500ms", 0.5), ("2.5secs", 2.5), ("1hrs", 3600.0),
    ("3", 3.0), (None, 9.0), ("junk", 9.0)])
def test_parse_duration(text: str | None, seconds: float) -> None:
    assert parse_duration(text, 9.0) == seconds


def test_update_uuids_are_what_uuid4_makes() -> None:
    from mesonb.executor.driver import new_uuid

    seen = set()
    for _ in range(2000):
        raw = new_uuid()
        # uuid4() is UUID(bytes=urandom(16), version=4): it leaves these bytes as they are
        assert uuid.UUID(bytes=raw, version=4).bytes == raw
        assert uuid.UUID(bytes=raw).version == 4 and uuid.UUID(bytes=raw).variant == uuid.RFC_4122
        seen.add(raw)
    assert len(seen) == 2000
