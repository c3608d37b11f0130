"""When a container's limits are written as tasks come and go (Containerizer.update):
raised at once for a task that starts, lowered when ends settle, a task alone gets
its own limits unless two like it would have had those applied (a burst going between
one call and two writes nothing), and a small task after a big one gets its own."""

from __future__ import annotations

import itertools
import types
from pathlib import Path

from mesonb.agent.book import Executor, Task
from mesonb.agent.containers import Containerizer
from mesonb.agent.isolation import ContainerizerConfig, Limits
from mesonb.agent.isolation.base import Handle
from mesonb.protocol.mesos import ExecutorInfo, TaskInfo
from mesonb.protocol.states import TaskState

_ids = itertools.count()


class RecordingIsolator:
    def __init__(self) -> None:
        self.writes: list[Limits] = []

    def update(self, handle: Handle, limits: Limits) -> None:
        self.writes.append(limits)
        handle.limits = handle.limits.raised_to(limits)


def task(cpus: float) -> Task:
    info = TaskInfo.from_json({
        "name": "t", "task_id": {"value": f"t{next(_ids)}"}, "agent_id": {"value": "a"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]})
    return Task(info=info, framework_id="f", executor_id="e", state=TaskState.TASK_RUNNING)


def setup() -> tuple[Containerizer, Executor, RecordingIsolator]:
    containerizer = Containerizer.__new__(Containerizer)  # no isolation backend: none used
    containerizer.config = ContainerizerConfig(cgroups_enable_cfs=True)
    containerizer._peaks, containerizer._most, containerizer._settling = {}, {}, set()
    executor = Executor(info=ExecutorInfo.from_json({"executor_id": {"value": "e"}}),
                        framework_id="f", container_id="c", directory=Path("."), token="t")
    isolator = RecordingIsolator()
    handle = Handle("c", containerizer.limits(executor))
    executor.container = types.SimpleNamespace(  # type: ignore[assignment]
        handle=handle, running=True, isolator=isolator)
    return containerizer, executor, isolator


def start(c: Containerizer, executor: Executor, t: Task) -> None:
    executor.launched[t.task_id] = t
    c.update(executor)


def end(executor: Executor, t: Task) -> None:
    t.state = TaskState.TASK_FINISHED
    del executor.launched[t.task_id]


def applied(executor: Executor) -> Limits:
    assert executor.container is not None and executor.container.handle is not None
    return executor.container.handle.limits


def test_a_burst_between_one_call_and_two_writes_nothing_after_its_peak() -> None:
    c, executor, isolator = setup()
    first = task(0.2)
    start(c, executor, first)  # alone: its own limits, at once
    assert applied(executor) == c.limits(executor)
    second = task(0.2)
    start(c, executor, second)  # raised at once
    assert applied(executor) == c.limits(executor)
    two = applied(executor)
    writes = len(isolator.writes)
    for _ in range(20):  # one ends, one starts alone, another joins it
        end(executor, first)
        end(executor, second)
        first, second = task(0.2), task(0.2)
        start(c, executor, first)
        start(c, executor, second)
    assert len(isolator.writes) == writes and applied(executor) == two
    end(executor, second)
    c.update(executor, settled=True)  # ends settle: the one left gets its own
    assert applied(executor).cpus_cap == c.limits(executor).cpus_cap < two.cpus_cap  # type: ignore[operator]


def test_a_small_task_after_a_big_one_gets_its_own_limits_at_once() -> None:
    c, executor, _ = setup()
    big = task(1.0)
    start(c, executor, big)
    assert applied(executor).cpus_cap == 1.1  # the executor's 0.1 on top
    end(executor, big)
    small = task(0.1)
    start(c, executor, small)
    assert applied(executor).cpus_cap == c.limits(executor).cpus_cap == 0.2
    assert applied(executor).cpus == 0.1


def test_a_task_alone_keeps_the_limits_of_as_many_like_it_as_ran_at_once() -> None:
    c, executor, isolator = setup()
    running = [task(0.2) for _ in range(4)]
    for t in running:
        start(c, executor, t)
    four = applied(executor)
    assert four == c.limits(executor)
    writes = len(isolator.writes)
    for _ in range(10):  # down to one and up to four again: nothing to write
        for t in running:
            end(executor, t)
        running = [task(0.2) for _ in range(4)]
        for t in running:
            start(c, executor, t)
    assert len(isolator.writes) == writes and applied(executor) == four
    for t in running[1:]:
        end(executor, t)
    c.update(executor, settled=True)  # ends settle: the one left gets its own
    assert applied(executor).cpus_cap == c.limits(executor).cpus_cap
    assert len(isolator.writes) == writes + 1
