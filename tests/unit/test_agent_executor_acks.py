"""ACKNOWLEDGED events to executors: sent lazily, and longer so when nothing waits on them.

An executor exits once its last task's terminal update is acknowledged, so that ACK
goes at the stream's LAZY pace (2 ms). Any other (the executor has live tasks) waits up
to ACK_RIDE_DELAY to ride with the next event: in a burst of short calls on one
long-lived executor that is the next LAUNCH, one write and one wake-up rather than two."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from test_agent_executor_side import Side, until

from mesonb.agent import executor_api, executor_io
from mesonb.agent.executor_api import EventStream
from mesonb.protocol.executor import ExecutorAcknowledged, ExecutorEvent, ExecutorEventType
from mesonb.protocol.states import TaskState


class Sink:
    """Bytes written to an executor's connection, by flush."""

    def __init__(self) -> None:
        self.buffer: list[bytes] = []
        self.flushes: list[list[str]] = []  # the event types each flush sent

    def write(self, data: bytes) -> None:
        self.buffer.append(data)

    def flush(self) -> None:
        types = [b'"type":"%s"' % t.value.encode() for t in ExecutorEventType]
        self.flushes.append([t.value for d in self.buffer for t, m in
                             zip(ExecutorEventType, types, strict=True) if m in d])
        self.buffer = []

    def finish(self) -> None:
        self.flush()


def ack(task: str) -> ExecutorEvent:
    return ExecutorEvent(type=ExecutorEventType.ACKNOWLEDGED, acknowledged=ExecutorAcknowledged(
        task_id=task, uuid=b"0123456789abcdef"))


async def test_an_acknowledged_given_a_longer_delay_rides_with_the_next_event() -> None:
    sink = Sink()
    stream = EventStream(sink)
    stream.send(ack("t1"), executor_io.ACK_RIDE_DELAY)
    await asyncio.sleep(executor_api.LAZY_DELAY * 4)  # well past the LAZY pace
    assert sink.flushes == []
    stream.send(ExecutorEvent(type=ExecutorEventType.HEARTBEAT))  # LAZY too: no flush yet
    stream.send(ExecutorEvent(type=ExecutorEventType.KILL, kill=None))
    await until(lambda: sink.flushes)
    # One flush: the event that could not wait first, then those that waited.
    assert sink.flushes == [["KILL", "ACKNOWLEDGED", "HEARTBEAT"]]


async def test_a_lazy_event_with_a_shorter_delay_brings_the_flush_forward() -> None:
    sink = Sink()
    stream = EventStream(sink)
    loop = asyncio.get_running_loop()
    start = loop.time()
    stream.send(ack("t1"), 10.0)
    stream.send(ack("t2"))  # the stream's own LAZY_DELAY
    await until(lambda: sink.flushes, timeout=5.0)
    assert loop.time() - start < 5.0
    assert sink.flushes == [["ACKNOWLEDGED", "ACKNOWLEDGED"]]


@pytest.fixture
async def side(tmp_path: Path) -> Any:
    s = Side(tmp_path)
    yield s
    await s.stop()


async def test_the_ack_an_executor_may_exit_on_is_not_held_back(side: Side) -> None:
    executor = side.run("t1")
    await until(lambda: executor.container is not None)
    stream = side.subscribe(executor)
    side.update(executor, "t1", TaskState.TASK_RUNNING)
    assert stream.types()[-1] == "ACKNOWLEDGED"
    assert stream.delays[-1] == executor_io.ACK_RIDE_DELAY  # its task lives on
    side.update(executor, "t1", TaskState.TASK_FINISHED)
    assert stream.types()[-1] == "ACKNOWLEDGED"
    assert stream.delays[-1] is None  # its last task ended: it exits on this one


async def test_a_reused_executors_acks_ride_even_with_no_task_live(side: Side) -> None:
    """An executor that completed a task and lived on (mesonb's functions executor runs
    every call of a framework) does not exit on an ACKNOWLEDGED: it may wait."""
    executor = side.run("t1")
    await until(lambda: executor.container is not None)
    stream = side.subscribe(executor)
    side.update(executor, "t1", TaskState.TASK_FINISHED)
    assert stream.delays[-1] is None
    side.executors.lifecycle.stream_closed(executor.framework_id, "t1")  # acknowledged
    assert [t.task_id for t in executor.completed] == ["t1"]
    side.executors.io.send(executor, ack("t2"))
    assert stream.types()[-1] == "ACKNOWLEDGED"
    assert stream.delays[-1] == executor_io.ACK_RIDE_DELAY
