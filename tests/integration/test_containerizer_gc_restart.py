"""Sandbox GC at agent start-up: what an earlier run of a real agent process left (the
sandboxes of executors that are gone, their cgroups, the fetcher cache, the directories of
an old agent id) is scheduled for --gc-delay from each sandbox's mtime, as Mesos's agent
does on recovery, and removed at once when it is older."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest
from test_agent_recovery import Tracker, task, until
from test_containerizer_limits import V1

from mesonb.agent.isolation.cgroups_v1 import CgroupsV1
from mesonb.frameworks.driver import SchedulerDriver
from mesonb.testing.processes import ProcessCluster, get_json

pytestmark = pytest.mark.slow

DAY = 86400.0


def runs(agent_dir: Path) -> dict[str, Path]:
    """Every run directory of the agent's work dir, by its task (the executor id)."""
    return {run.parent.parent.name: run
            for run in agent_dir.glob("slaves/*/frameworks/*/executors/*/runs/*")
            if not run.is_symlink()}


async def test_a_restarted_agent_collects_what_its_earlier_run_left(tmp_path: Path) -> None:
    payload = tmp_path / "payload.txt"
    payload.write_text("data")
    cluster = ProcessCluster(tmp_path, agents=1, agent_args=["--gc-delay", "1days"])
    cluster.start()
    done = task("done", "cat payload.txt")
    done["command"]["uris"] = [{"value": f"file://{payload}", "cache": True}]
    tracker = Tracker([done, task("running", "sleep 60")])
    driver = SchedulerDriver(cluster.address, {"user": "tester", "name": "gc"}, tracker)
    tracker.driver = driver
    agent_dir = tmp_path / "agent0"
    try:
        await driver.start()
        await until(lambda: "TASK_FINISHED" in tracker.states("done") and
                    "TASK_RUNNING" in tracker.states("running"), 30, "the tasks")
        sandboxes = runs(agent_dir)
        old, live = sandboxes["done"], sandboxes["running"]
        sleepers = [p for p in psutil.process_iter(["cwd"]) if p.info["cwd"] == str(live)]
        assert sleepers
        cache = agent_dir / "fetch_cache"
        assert [p.name for p in cache.iterdir()]  # the payload, cached by its URI
        cluster.agents[0].kill()  # kill -9: the running task's process stays behind
        week_ago = time.time() - 7 * DAY
        os.utime(old, (week_ago, week_ago))  # ended a week ago: past --gc-delay
        stray = agent_dir / "slaves" / "old-agent-id" / "frameworks" / "f" / "executors"
        (stray / "e" / "runs" / "c").mkdir(parents=True)
        (agent_dir / "meta" / "slaves" / "old-agent-id").mkdir(parents=True)
        cgroups = CgroupsV1() if V1 is None else None
        if cgroups is not None:
            assert (cgroups.bases["memory"] / live.name).is_dir()

        restarted = cluster.start_agent(0)
        def metric(name: str) -> float:
            return float(get_json(restarted.url + "/metrics/snapshot")[name])

        await until(lambda: metric("gc/path_removals_succeeded") == 1, 20, "one removal")
        assert not old.exists()
        metrics = get_json(restarted.url + "/metrics/snapshot")
        # the live task's sandbox (ended now) and the old agent id's two trees wait
        assert metrics["gc/path_removals_pending"] == 3
        assert metrics["gc/path_removals_succeeded"] == 1
        assert live.is_dir() and stray.is_dir()
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in sleepers)
        assert list(cache.iterdir()) == []  # an earlier run's cache has no index: emptied
        if cgroups is not None:  # the task's process went with its cgroup
            await until(lambda: not (cgroups.bases["memory"] / live.name).exists(), 10,
                        "the leftover cgroup removed")
    finally:
        await driver.stop(teardown=True)
        cluster.stop()
