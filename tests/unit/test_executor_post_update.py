"""ExecutorDriver.post_update: an update queued without a task of its own, against an agent
that takes batches of calls (mesonb's extension), is the update ``update()`` sends: kept
until ACKNOWLEDGED, sent in order with the calls of its loop turn, forgotten (and logged)
when the agent refuses it."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import tornado.web
from test_executor_driver import SUBSCRIBED, FakeAgent, ack, launch, run
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from mesonb.executor.driver import ExecutorDriver, ExecutorHandler
from mesonb.protocol import recordio
from mesonb.protocol.executor import BATCH_HEADER, ExecutorCall, ExecutorCallType
from mesonb.protocol.states import Source, TaskState


class BatchingAgent(FakeAgent):
    """A FakeAgent that announces batches and takes JSON arrays of calls (each recorded);
    it answers 400 to a batch holding an update of a task named in ``refuse``."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse_tasks: set[str] = set()
        self.posts: list[int] = []  # calls per POST

    def start(self) -> None:
        agent = self

        class Handler(tornado.web.RequestHandler):
            async def post(self) -> None:
                data = json.loads(self.request.body)
                calls = [ExecutorCall.from_json(c, "Call") for c in
                         (data if isinstance(data, list) else [data])]
                agent.posts.append(len(calls))
                if any(c.update is not None and c.update.status.task_id in agent.refuse_tasks
                       for c in calls):
                    self.set_status(400)
                    self.finish("refused")
                    agent.changed.set()
                    return
                agent.calls.extend(calls)
                agent.changed.set()
                if calls[0].type is not ExecutorCallType.SUBSCRIBE:
                    self.set_status(202)
                    return
                self.set_header("Content-Type", "application/json")
                self.set_header(BATCH_HEADER, "1")
                self.flush()
                while (event := await agent.events.get()) is not None:
                    self.write(recordio.encode_json(event))
                    await self.flush()

        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self.server = HTTPServer(tornado.web.Application([("/api/v1/executor", Handler)]))
        self.server.add_sockets(sockets)


class PostsOnLaunch(ExecutorHandler):
    """Posts a terminal update for each launched task, in the launch's turn."""

    def launch(self, driver: ExecutorDriver, task: Any) -> None:
        driver.post_update(task.task_id, TaskState.TASK_FINISHED, data=task.task_id.encode())
        driver.post_update(task.task_id + "-b", TaskState.TASK_FAILED, message="boom")


def test_posted_updates_go_in_one_batch_and_wait_for_their_acks() -> None:
    async def body(agent: BatchingAgent) -> None:
        driver = ExecutorDriver(PostsOnLaunch(), env=agent.env())
        runner = asyncio.ensure_future(driver.run())
        await agent.until(lambda: agent.of_type(ExecutorCallType.SUBSCRIBE))
        await agent.events.put(SUBSCRIBED)
        await agent.events.put(launch("t1"))
        done, failed = await agent.until(
            lambda: len(agent.of_type(ExecutorCallType.UPDATE)) == 2
            and agent.of_type(ExecutorCallType.UPDATE))
        assert agent.posts[-1] == 2  # both in one POST, in the order posted
        assert done.update.status.task_id == "t1"
        assert done.update.status.state is TaskState.TASK_FINISHED
        assert done.update.status.data == b"t1"
        assert done.update.status.source is Source.SOURCE_EXECUTOR
        assert done.update.status.executor_id == "ex"
        assert failed.update.status.message == "boom"
        assert list(driver.unacknowledged_updates) == [done.update.status.uuid,
                                                       failed.update.status.uuid]
        await agent.events.put(ack(done))
        await agent.events.put(ack(failed))
        assert await driver.wait_acknowledged(timeout=5)
        assert not driver.unacknowledged_tasks  # t1's terminal update was acknowledged
        await agent.events.put({"type": "SHUTDOWN"})
        await asyncio.wait_for(runner, 5)

    run(body, BatchingAgent)


def test_a_refused_posted_update_is_forgotten_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    async def body(agent: BatchingAgent) -> None:
        agent.refuse_tasks = {"t1", "t1-b"}
        driver = ExecutorDriver(PostsOnLaunch(), env=agent.env())
        runner = asyncio.ensure_future(driver.run())
        await agent.until(lambda: agent.of_type(ExecutorCallType.SUBSCRIBE))
        await agent.events.put(SUBSCRIBED)
        await agent.events.put(launch("t1"))
        # the batch is refused, then each call of it on its own: 1 + 2 POSTs after SUBSCRIBE
        await agent.until(lambda: len(agent.posts) >= 4)
        assert await driver.wait_acknowledged(timeout=5)  # nothing left to wait for
        assert not driver.unacknowledged_updates
        await agent.events.put({"type": "SHUTDOWN"})
        await asyncio.wait_for(runner, 5)

    with caplog.at_level(logging.ERROR, logger="mesonb.executor.driver"):
        run(body, BatchingAgent)
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 2 and "TASK_FINISHED of task t1 " in refused[0]
