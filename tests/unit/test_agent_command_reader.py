"""CommandReader reads the master's frames exactly as load_commands does (the same
commands, the same JSON when written again, the same errors), while decoding each
distinct FrameworkInfo and ExecutorInfo of RUN_TASK once."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest

from mesonb.agent.command_reader import CommandReader
from mesonb.protocol.agent import load_commands
from mesonb.protocol.errors import BadRequest

FRAMEWORK = {"user": "root", "name": "mesonb-functions", "id": {"value": "fw-0001"},
             "failover_timeout": 3600.0, "checkpoint": False, "hostname": "vm",
             "capabilities": [{"type": "GPU_RESOURCES"}]}
EXECUTOR = {"executor_id": {"value": "functions-1"}, "type": "CUSTOM",
            "command": {"environment": {"variables": [{"name": "P", "value": "/x"}]},
                        "shell": False, "value": "/bin/python",
                        "arguments": ["/bin/python", "-m", "mesonb.x"]},
            "name": "mesonb functions executor"}


def run_task(n: int, *, executor: bool = True, framework: dict | None = None,
             task_extra: dict | None = None, executor_json: Any = None) -> dict:
    task = {"name": "noop", "task_id": {"value": f"noop-{n}"}, "agent_id": {"value": "S1"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.2},
                           "role": "*"}],
            "data": "gAWVrgIAAAAAAACM"}
    info = EXECUTOR if executor_json is None else executor_json
    if executor:
        task["executor"] = info
    else:
        task["command"] = {"value": "true"}
    task.update(task_extra or {})
    body: dict = {"framework_info": framework or FRAMEWORK, "task": task}
    if executor:
        body["executor"] = info
    return {"type": "RUN_TASK", "run_task": body}


ACK = {"type": "ACKNOWLEDGE", "acknowledge": {"framework_id": {"value": "fw-0001"},
                                              "task_id": {"value": "noop-1"},
                                              "uuid": "F7d1BJLORTa9HunXvU7Hkw=="}}


def same(frame: Any, reader: CommandReader) -> list:
    """What the reader reads of ``frame``, checked against load_commands."""
    text = json.dumps(frame).encode()
    fast, slow = reader(text), load_commands(text)
    assert fast == slow
    # dataclass == skips ``extra`` and reads 1 == 1.0 == True: compare the JSON bytes too
    assert [orjson.dumps(c.to_json()) for c in fast] == [orjson.dumps(c.to_json()) for c in slow]
    for f, s in zip(fast, slow, strict=True):
        assert type(f) is type(s) and repr(f) == repr(s)
    return fast


def test_the_same_commands_as_load_commands_and_parts_decoded_once() -> None:
    reader = CommandReader()
    first = same([ACK, run_task(1)], reader)[1].run_task
    second = same(run_task(2), reader)[0].run_task
    assert first is not None and second is not None
    assert second.framework_info is first.framework_info
    assert second.executor is first.executor is first.task.executor is second.task.executor
    assert second.task is not first.task and second.task.task_id == "noop-2"
    command_task = same(run_task(3, executor=False), reader)[0].run_task
    assert command_task is not None and command_task.executor is None
    assert command_task.task.executor is None


@pytest.mark.parametrize("variant", [
    # numbers that Python calls equal but JSON does not: each its own object
    dict(framework={**FRAMEWORK, "failover_timeout": 3600}),
    dict(framework={**FRAMEWORK, "checkpoint": 0}),  # refused: not a boolean
    dict(framework={**FRAMEWORK, "checkpoint": True}),
    dict(framework={**FRAMEWORK, "unknown_field": {"kept": [1, 2]}}),  # extra
    dict(task_extra={"health_check": {"type": "COMMAND"}}),
    dict(task_extra={"executor": None}),
    dict(task_extra={"resources": [{"name": "cpus", "type": "SCALAR",
                                    "scalar": {"value": -1}}]}),  # refused
    dict(executor_json={**EXECUTOR, "resources": [
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 32.0}}]}),
    dict(executor_json={**EXECUTOR, "type": "NOT_A_TYPE"}),  # refused
    dict(executor_json="not an object"),  # refused
    dict(framework={"name": "no user"}),  # refused
    dict(framework={**FRAMEWORK, "failover_timeout": 10**30}),  # past orjson's integers
])
def test_variants_read_or_refused_alike(variant: dict) -> None:
    reader = CommandReader()
    same(run_task(1), reader)  # something kept first, to be told apart from
    frame = run_task(2, **variant)
    try:
        expected = load_commands(json.dumps(frame))
    except BadRequest as exc:
        with pytest.raises(BadRequest) as refused:
            reader(json.dumps(frame))
        assert refused.value.message == exc.message
        return
    assert expected
    same(frame, reader)
    same(frame, reader)  # and again, from what was kept


def test_odd_shapes_go_through_the_ordinary_decoder() -> None:
    reader = CommandReader()
    for frame in ([run_task(1), {"type": "RUN_TASK"}],
                  {**run_task(1), "extra": 1},
                  {"type": "RUN_TASK", "run_task": {**run_task(1)["run_task"], "more": 2}},
                  {"type": "RUN_TASK", "run_task": None},
                  [1], "text", {"type": "NOT_A_COMMAND"}):
        try:
            load_commands(json.dumps(frame))
        except BadRequest as exc:
            with pytest.raises(BadRequest) as refused:
                reader(json.dumps(frame))
            assert refused.value.message == exc.message
            continue
        same(frame, reader)


def test_what_is_kept_is_bounded() -> None:
    reader = CommandReader(keep=4)
    for n in range(20):
        framework = copy.deepcopy(FRAMEWORK)
        framework["id"]["value"] = f"fw-{n}"
        same(run_task(n, framework=framework), reader)
    assert len(reader._decoded) == 4
