"""The functions executor's TASK_RUNNING updates: sent for calls still running
RUNNING_AFTER seconds after their launch (one timer serves them all), never for calls
done sooner, and always before the call's terminal update."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import cloudpickle

from mesonb.frameworks.functions import executor as executor_mod
from mesonb.frameworks.functions.executor import FunctionsExecutor
from mesonb.frameworks.functions.protocol import Call, Outcome, Running
from mesonb.frameworks.functions.worker import Pool
from mesonb.protocol.mesos import TaskInfo
from mesonb.protocol.states import TaskState
from mesonb.testing.processes import until


class Recorder:
    """The driver's update calls, in order: (task_id, state, data)."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, TaskState, bytes | None]] = []

    def post_update(self, task_id: str, state: TaskState, *, message: str | None = None,
                    data: bytes | None = None) -> None:
        self.updates.append((task_id, state, data))

    async def update(self, task_id: str, state: TaskState, **kw: Any) -> bytes:
        self.updates.append((task_id, state, kw.get("data")))
        return b""

    def states(self, task_id: str) -> list[TaskState]:
        return [s for t, s, _ in self.updates if t == task_id]


def task(task_id: str, seconds: float) -> TaskInfo:
    payload = Call(call=cloudpickle.dumps((time.sleep, (seconds,), {}))).encode()
    return TaskInfo(name=task_id, task_id=task_id, agent_id="a", data=payload)


async def test_running_only_for_calls_still_running_and_before_their_end(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(executor_mod, "RUNNING_AFTER", 0.3)
    pool = Pool.prefork(3, str(tmp_path))
    handler = FunctionsExecutor(pool)
    driver = Recorder()
    try:
        for task_id, seconds in (("quick", 0.0), ("slow", 1.0), ("slow2", 1.2)):
            assert handler.launch(driver, task(task_id, seconds)) is None  # type: ignore[arg-type]
        await until(lambda: driver.states("quick") == [TaskState.TASK_FINISHED], timeout=10)
        await until(lambda: len(driver.states("slow")) == 2 and len(driver.states("slow2")) == 2,
                    timeout=10)
        await asyncio.sleep(0.4)  # past any timer left behind
        assert driver.states("quick") == [TaskState.TASK_FINISHED]
        for slow in ("slow", "slow2"):
            assert driver.states(slow) == [TaskState.TASK_RUNNING, TaskState.TASK_FINISHED]
            running = next(d for t, s, d in driver.updates
                           if t == slow and s is TaskState.TASK_RUNNING)
            assert running is not None and Running.decode(running).stdout is not None
            done = next(d for t, s, d in driver.updates
                        if t == slow and s is TaskState.TASK_FINISHED)
            assert done is not None and Outcome.decode(done).ok
        # a later call still gets its own RUNNING update (the timer is armed again)
        handler.launch(driver, task("later", 0.8))  # type: ignore[arg-type]
        await until(lambda: driver.states("later") == [TaskState.TASK_RUNNING,
                                                        TaskState.TASK_FINISHED], timeout=10)
        assert not handler._running_due
    finally:
        pool.close()
