"""retries=N relaunches a call whose agent is lost (real master and agent processes)."""

from __future__ import annotations

import os
import time

import pytest

from mesonb import Cluster
from mesonb.testing.processes import ProcessCluster, wait_for

pytestmark = pytest.mark.slow


def first_try_hangs(marker: str) -> str:
    """The first attempt marks itself and hangs; a later attempt returns at once."""
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("first")
        time.sleep(120)
        return "first attempt"
    return "relaunched"


def test_a_call_whose_agent_is_lost_is_relaunched_elsewhere(tmp_path):
    with ProcessCluster(tmp_path / "cluster", agents=2, master_args=[
            "--agent-ping-timeout", "0.3", "--max-agent-ping-timeouts", "3"]) as processes:
        cluster = Cluster(processes.address)
        try:
            marker = tmp_path / "marker"
            fut = cluster.submit(first_try_hangs, str(marker), retries=1, cpus=0.1, mem=64)
            wait_for(marker.exists, 30, what="the first attempt to start")

            def running_on() -> str | None:
                tasks = cluster.tasks()
                running = tasks[tasks["state"] == "TASK_RUNNING"]
                return running.iloc[0]["agent_id"] if len(running) else None

            agent_id = wait_for(running_on, 30, what="the call running")
            slaves = {s["id"]: s for s in processes.state()["slaves"]}
            port = slaves[agent_id]["pid"].rsplit(":", 1)[1]
            (victim,) = [a for a in processes.agents if str(a.port) == port]
            victim.kill()  # kill -9: the master notices through missed pings
            assert fut.result(60) == "relaunched"
            assert fut.attempts == 2
            tasks = cluster.tasks()
            assert set(tasks["state"]) >= {"TASK_FINISHED"}
            lost = tasks[tasks["state"] != "TASK_FINISHED"]
            assert set(lost["state"]) <= {"TASK_LOST", "TASK_UNREACHABLE", "TASK_GONE",
                                          "TASK_FAILED"}
        finally:
            cluster.close()
