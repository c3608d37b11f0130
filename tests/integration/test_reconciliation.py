"""Task reconciliation over real processes, with Mesos's semantics (docs/reconciliation.md).

Implicit reconciliation (no tasks) answers the latest state of every task the master
knows: the live ones on reachable agents and the ended ones whose terminal update is not
acknowledged yet (Mesos's ``Framework::tasks``). Explicit reconciliation answers per task:
the latest state of a known task; for an unknown one (an ended task is unknown once its
terminal update is acknowledged) TASK_GONE on a registered agent, TASK_UNKNOWN for an
unknown agent (or none given), TASK_UNREACHABLE (with ``unreachable_time``) on an
unreachable agent, TASK_GONE_BY_OPERATOR on an agent marked gone; frameworks without
PARTITION_AWARE see TASK_LOST for all of these. Every answer has REASON_RECONCILIATION.
Answers come in order on the event stream, so "nothing more" is checked by reconciling a
marker task afterwards and waiting for its answer.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.resources import Resources
from mesonb.testing.frameworks import Tracker as BaseTracker
from mesonb.testing.processes import ProcessCluster

pytestmark = pytest.mark.slow


class Tracker(BaseTracker):
    """mesonb.testing's Tracker, which also reconciles."""

    async def reconcile(self, tasks: list[tuple[str, str | None]]) -> dict[str, dict]:
        """Reconcile, then a marker task; the answers (REASON_RECONCILIATION) that came
        before the marker's; other updates may arrive in between."""
        assert self.driver is not None
        start = len(self.statuses)
        marker = f"marker-{time.monotonic_ns()}"
        await self.driver.reconcile(tasks)
        await self.driver.reconcile([(marker, "no-such-agent")])
        await until(lambda: any(s["task_id"]["value"] == marker
                                for s in self.statuses[start:]), 10, "the marker's answer")
        answers = {}
        for status in self.statuses[start:]:
            task_id = status["task_id"]["value"]
            if task_id == marker:
                break
            if status.get("reason") != "REASON_RECONCILIATION":
                continue
            assert task_id not in answers, f"two answers for {task_id}"
            answers[task_id] = status
        return answers


def task(task_id: str, command: str) -> dict:
    return {"name": task_id, "task_id": {"value": task_id}, "command": {"value": command},
            "resources": Resources.parse("cpus:0.1;mem:32").to_json()}


async def until(condition, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def operator_call(cluster: ProcessCluster, call: dict) -> int:
    request = urllib.request.Request(cluster.url + "/api/v1", data=json.dumps(call).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status


def states(answers: dict[str, dict]) -> dict[str, str]:
    return {task_id: s["state"] for task_id, s in answers.items()}


async def test_implicit_and_explicit_reconciliation(tmp_path: Path) -> None:
    cluster = ProcessCluster(tmp_path, agents=1, master_args=[
        "--agent-ping-timeout", "0.3", "--max-agent-ping-timeouts", "3"]).start()
    aware = Tracker([task("long", "sleep 300"), task("quick", "true")])
    old = Tracker([task("old-long", "sleep 300")])
    aware_driver = SchedulerDriver(cluster.address, {
        "user": "tester", "name": "aware", "failover_timeout": 60,
        "capabilities": [{"type": "PARTITION_AWARE"}]}, aware)
    old_driver = SchedulerDriver(cluster.address, {
        "user": "tester", "name": "old", "failover_timeout": 60}, old)
    aware.driver, old.driver = aware_driver, old_driver
    agent = cluster.agents[0]
    try:
        await aware_driver.start()
        await old_driver.start()
        await until(lambda: "TASK_RUNNING" in aware.states("long")
                    and "TASK_FINISHED" in aware.states("quick")
                    and "TASK_RUNNING" in old.states("old-long"), 30, "tasks started")
        agent_id = aware.statuses[0]["agent_id"]["value"]
        # Once the driver's acknowledgement of TASK_FINISHED is in, the master forgets
        # "quick" (Mesos removes a task when its terminal update is acknowledged).
        deadline = time.monotonic() + 10
        while states(await aware.reconcile([("quick", agent_id)])) != {"quick": "TASK_GONE"}:
            assert time.monotonic() < deadline, "the ended task stayed known after its ack"

        # Implicit: the non-terminal tasks of this framework only, nothing else.
        answers = await aware.reconcile([])
        assert states(answers) == {"long": "TASK_RUNNING"}
        assert answers["long"]["reason"] == "REASON_RECONCILIATION"
        assert answers["long"]["agent_id"]["value"] == agent_id
        assert states(await old.reconcile([])) == {"old-long": "TASK_RUNNING"}

        # Explicit, everything registered.
        asked = [("long", agent_id), ("quick", agent_id), ("ghost", agent_id),
                 ("nowhere", "no-such-agent"), ("anywhere", None), ("old-long", agent_id)]
        answers = await aware.reconcile(asked)
        assert states(answers) == {
            "long": "TASK_RUNNING",  # 1: known, latest state
            "quick": "TASK_GONE",  # 3: ended and acknowledged, so unknown, as in Mesos
            "ghost": "TASK_GONE",  # 3: unknown task on a registered agent
            "nowhere": "TASK_UNKNOWN",  # 6: unknown agent
            "anywhere": "TASK_UNKNOWN",  # no agent given, no recovered agents pending
            "old-long": "TASK_GONE",  # another framework's task is not this one's
        }
        answers = await old.reconcile([("old-long", agent_id), ("ghost", agent_id),
                                       ("nowhere", "no-such-agent"), ("anywhere", None)])
        assert states(answers) == {"old-long": "TASK_RUNNING", "ghost": "TASK_LOST",
                                   "nowhere": "TASK_LOST", "anywhere": "TASK_LOST"}

        # 4: the agent stops answering pings and becomes unreachable.
        agent.signal(signal.SIGSTOP)
        try:
            await until(lambda: "TASK_UNREACHABLE" in aware.states("long"), 15, "unreachable")
            answers = await aware.reconcile([("long", agent_id), ("ghost", agent_id)])
            assert states(answers) == {"long": "TASK_UNREACHABLE", "ghost": "TASK_UNREACHABLE"}
            assert answers["ghost"]["unreachable_time"]
            # Mesos's implicit answer leaves out tasks on unreachable agents.
            assert states(await aware.reconcile([])) == {}
            answers = await old.reconcile([("ghost", agent_id)])
            assert states(answers) == {"ghost": "TASK_LOST"}

            # 5: an operator marks the agent gone.
            mark = {"type": "MARK_AGENT_GONE",
                    "mark_agent_gone": {"agent_id": {"value": agent_id}}}
            assert await asyncio.to_thread(operator_call, cluster, mark) == 200
            await until(lambda: "TASK_GONE_BY_OPERATOR" in aware.states("long"), 10,
                        "long gone by operator")
            answers = await aware.reconcile([("ghost", agent_id)])
            assert states(answers) == {"ghost": "TASK_GONE_BY_OPERATOR"}
            assert states(await old.reconcile([("ghost", agent_id)])) == {"ghost": "TASK_LOST"}
            assert states(await aware.reconcile([])) == {}
        finally:
            agent.signal(signal.SIGCONT)
    finally:
        await aware_driver.stop(teardown=True)
        await old_driver.stop(teardown=True)
        cluster.stop()
