"""Scheduler HEARTBEAT, MESSAGE (both ways) and SHUTDOWN end to end: a framework on the v1
API, real master and agent processes and a custom executor process.

The framework's MESSAGE reaches the executor through the master and agent; the executor's
answer comes back as a MESSAGE event; SHUTDOWN ends the executor (its task ends, FAILURE
follows); SUBSCRIBED is followed at once by a HEARTBEAT, as in Mesos.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.resources import Resources
from mesonb.testing.frameworks import Recorder
from mesonb.testing.processes import ProcessCluster

pytestmark = pytest.mark.slow
ROOT = str(Path(__file__).resolve().parents[2])

ECHO_EXECUTOR = textwrap.dedent('''
    import asyncio
    from mesonb.executor.driver import ExecutorDriver, ExecutorHandler
    from mesonb.protocol.states import TaskState

    class Echo(ExecutorHandler):
        async def launch(self, driver, task):
            await driver.update(task.task_id, TaskState.TASK_RUNNING)

        async def message(self, driver, data):
            await driver.send_message(b"echo:" + data)

        async def shutdown(self, driver):
            await driver.wait_acknowledged(timeout=5)

    asyncio.run(ExecutorDriver(Echo()).run())
''')


async def until(condition, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_heartbeat_message_both_ways_and_shutdown(tmp_path):
    script = tmp_path / "echo_executor.py"
    script.write_text(ECHO_EXECUTOR)
    cluster = ProcessCluster(tmp_path / "cluster", agents=1).start()
    handler = Recorder()
    driver = SchedulerDriver(cluster.address, {"user": "tester", "name": "messages"}, handler)
    try:
        await driver.start()
        await until(lambda: len(handler.events) >= 2, "the first events")
        assert [kind for kind, _ in handler.events[:2]] == ["SUBSCRIBED", "HEARTBEAT"]

        offer = await asyncio.wait_for(handler.offers.get(), 20)
        agent_id = offer["agent_id"]["value"]
        executor = {
            "executor_id": {"value": "echo"}, "name": "echo executor",
            "command": {"shell": False, "value": sys.executable,
                        "arguments": [sys.executable, str(script)],
                        "environment": {"variables": [{"name": "PYTHONPATH", "value": ROOT}]}},
            "resources": Resources.parse("cpus:0.1;mem:64").to_json()}
        task = {"name": "t", "task_id": {"value": "t"}, "agent_id": offer["agent_id"],
                "executor": executor, "resources": Resources.parse("cpus:0.1;mem:32").to_json()}
        await driver.launch([offer["id"]["value"]], [task])
        await until(lambda: "TASK_RUNNING" in handler.states("t"), "the task to run")

        # Framework -> executor through master and agent, and the answer back.
        await driver.message(agent_id, "echo", b"ping \x00\xff")
        (reply,) = await until(lambda: handler.of("MESSAGE"), "the executor's answer")
        assert reply["agent_id"]["value"] == agent_id
        assert reply["executor_id"]["value"] == "echo"
        assert base64.b64decode(reply["data"]) == b"echo:ping \x00\xff"

        # SHUTDOWN ends the executor: its task ends and the framework hears FAILURE.
        await driver.shutdown_executor(agent_id, "echo")
        (failure,) = await until(lambda: handler.of("FAILURE"), "FAILURE for the executor")
        assert failure["executor_id"]["value"] == "echo"
        assert failure["agent_id"]["value"] == agent_id
        await until(lambda: handler.states("t")[-1] in ("TASK_FAILED", "TASK_KILLED"),
                    "the executor's task to end")
        last = handler.of("UPDATE")[-1]
        assert last["reason"] == "REASON_EXECUTOR_TERMINATED"
    finally:
        await driver.stop(teardown=True)
        cluster.stop()
