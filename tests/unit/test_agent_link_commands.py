"""The agent link encodes a RUN_TASK's ExecutorInfo once (mesonb.master.http.agent_link.
command_json): the agent reads the same JSON, keys in the same order, as ``to_json()``."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from mesonb.master.http.agent_link import command_json
from mesonb.protocol.agent import MasterCommand, MasterCommandType, RunTask
from mesonb.protocol.jsontext import dumpb
from mesonb.protocol.mesos import ExecutorInfo, FrameworkInfo, TaskInfo

EXECUTOR = {"executor_id": {"value": "functions"}, "type": "CUSTOM",
            "framework_id": {"value": "F1"},
            "command": {"value": "python -m x", "shell": True,
                        "environment": {"variables": [{"name": "A", "value": "1"}]}},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
            "name": "fn", "data": base64.b64encode(b"\x00exec").decode()}
TASK = {"name": "call-1", "task_id": {"value": "T1"}, "agent_id": {"value": "A1"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
        "executor": EXECUTOR, "data": base64.b64encode(b"payload\xff").decode(),
        "labels": {"labels": [{"key": "k", "value": "v"}]}}
FRAMEWORK = {"name": "functions", "user": "me", "id": {"value": "F1"}, "roles": ["*"],
             "capabilities": [{"type": "MULTI_ROLE"}]}


def run_task(task: dict[str, Any], share: bool = True, **run_extra: Any) -> MasterCommand:
    info = TaskInfo.from_json(copy.deepcopy(task), "task")
    executor = info.executor if share else (
        ExecutorInfo.from_json(copy.deepcopy(EXECUTOR), "executor") if info.executor else None)
    run = RunTask(framework_info=FrameworkInfo.from_json(dict(FRAMEWORK), "framework"),
                  task=info, executor=executor)
    run.extra.update(run_extra)
    return MasterCommand(type=MasterCommandType.RUN_TASK, run_task=run)


CASES = {
    "executor": run_task(TASK),
    "executor first of the rest": run_task({k: v for k, v in TASK.items()
                                            if k not in ("resources",)}),
    "executor last": run_task({k: v for k, v in TASK.items()
                               if k in ("name", "task_id", "agent_id", "resources",
                                        "executor")}),
    "task extra": run_task({**TASK, "zz_unknown": {"a": 1}, "container": {"type": "MESOS"}}),
    "not shared": run_task(TASK, share=False),
    "command task": run_task({**{k: v for k, v in TASK.items() if k != "executor"},
                              "command": {"value": "true"}}),
    "run extra": run_task(TASK, later={"x": 1}),
}


CASES["task extra named executor"] = run_task(TASK)
CASES["task extra named executor"].run_task.task.extra["executor"] = {"other": 1}
FAST = ["executor", "executor first of the rest", "executor last", "task extra"]


@pytest.mark.parametrize("name", list(CASES))
def test_same_json_and_key_order_as_to_json(name: str) -> None:
    command = CASES[name]
    before = dumpb(command.to_json())
    assert dumpb(command_json(command)) == before  # same bytes: same keys, same order
    assert dumpb(command.to_json()) == before  # the command itself is left as it was
    run = command_json(command).get("run_task", {})
    if name in FAST:  # encoded once, one dict in both places
        assert run["executor"] is run["task"]["executor"]


def test_other_commands_and_dicts() -> None:
    ack = MasterCommand(type=MasterCommandType.PING)
    assert command_json(ack) == ack.to_json()
    as_json = {"type": "PING"}
    assert command_json(as_json) is as_json
