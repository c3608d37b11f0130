"""The agent's book of executors and tasks: what it caches and what it keeps."""

from __future__ import annotations

from pathlib import Path

from mesonb.agent.book import MAX_COMPLETED_TASKS, Executor, Task
from mesonb.protocol.mesos import ExecutorInfo, TaskInfo


def executor_info(cpus: float) -> ExecutorInfo:
    return ExecutorInfo.from_json({"executor_id": {"value": "e"}, "resources": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}}]})


def new_executor() -> Executor:
    return Executor(info=executor_info(0.5), framework_id="f", container_id="c",
                    directory=Path("."), token="t")


def test_an_executors_resources_follow_its_info() -> None:
    executor = new_executor()
    assert executor.resources.get("cpus") == 0.5
    assert executor.resources is executor.resources  # parsed once
    executor.info = executor_info(0.25)
    assert executor.resources.get("cpus") == 0.25


def test_an_executor_keeps_its_last_completed_tasks_oldest_first() -> None:
    executor = new_executor()
    for i in range(MAX_COMPLETED_TASKS + 5):
        info = TaskInfo.from_json({"name": "t", "task_id": {"value": f"t{i}"},
                                   "agent_id": {"value": "a"}})
        executor.completed.append(Task(info=info, framework_id="f", executor_id="e"))
    ids = [t.task_id for t in executor.completed]
    assert len(ids) == MAX_COMPLETED_TASKS
    assert ids[0] == "t5" and ids[-1] == f"t{MAX_COMPLETED_TASKS + 4}"
