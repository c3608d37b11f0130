"""The executor driver parses a LAUNCH's ExecutorInfo once per executor: what it reads
must equal a full parse of every event, whatever the executor JSON of each."""

from __future__ import annotations

import copy

import orjson

from mesonb.executor.driver import ExecutorDriver, ExecutorHandler
from mesonb.protocol.executor import ExecutorEvent

ENV = {"MESOS_AGENT_ENDPOINT": "127.0.0.1:1", "MESOS_FRAMEWORK_ID": "fw",
       "MESOS_EXECUTOR_ID": "functions-1"}


def launch(task_id: str, executor: dict | None, data: str = "eA==") -> dict:
    task = {"name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": "a1"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.2}}],
            "data": data}
    if executor is not None:
        task["executor"] = executor
    else:
        task["command"] = {"value": "true"}
    return {"type": "LAUNCH", "launch": {"task": task}}


EXECUTOR = {"executor_id": {"value": "functions-1"}, "framework_id": {"value": "fw"},
            "type": "CUSTOM", "name": "mesonb functions executor",
            "command": {"shell": False, "value": "/usr/bin/python3",
                        "arguments": ["python3", "-m", "x"],
                        "environment": {"variables": [{"name": "A", "value": "1"}]}}}


def test_launch_events_read_as_a_full_parse_reads_them() -> None:
    driver = ExecutorDriver(ExecutorHandler(), env=ENV)
    other = copy.deepcopy(EXECUTOR)
    other["command"]["environment"]["variables"][0]["value"] = "2"
    events = [launch("t1", EXECUTOR), launch("t2", EXECUTOR, "eQ=="), launch("t3", other),
              launch("t4", None), launch("t5", other), launch("t6", EXECUTOR),
              {"type": "HEARTBEAT"}, {"type": "KILL", "kill": {"task_id": {"value": "t1"}}},
              launch("t7", EXECUTOR)]
    parsed = []
    for event in events:
        record = orjson.dumps(event)
        got = driver._parse_event(record)
        assert got == ExecutorEvent.from_json(orjson.loads(record), "Event")
        parsed.append(got)
    executors = [e.launch.task.executor for e in parsed if e.launch is not None]
    assert executors[0] is executors[1]  # parsed once while it does not change
    assert executors[2] is not executors[1] and executors[2] == executors[4]
    assert executors[3] is None
    assert executors[2].command.environment is not None
    assert executors[6].command.arguments == ["python3", "-m", "x"]
