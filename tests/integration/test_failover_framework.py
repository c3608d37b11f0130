"""Framework failover with real processes (Mesos: FrameworkInfo.failover_timeout).

A scheduler that goes away and re-subscribes with its framework id within its
failover_timeout gets its tasks back; one that does not come back in time is removed and
its tasks are killed. A second scheduler subscribing with the same id takes the
framework over, and the first one gets ERROR and stops.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psutil
import pytest

from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.resources import Resources
from mesonb.testing.frameworks import Tracker
from mesonb.testing.processes import ProcessCluster, get_json, wait_for

pytestmark = pytest.mark.slow


def sleep_task(task_id: str) -> dict:
    return {"name": task_id, "task_id": {"value": task_id}, "command": {"value": "sleep 300"},
            "resources": Resources.parse("cpus:0.1;mem:32").to_json()}


async def until(condition, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def framework_state(cluster: ProcessCluster, framework_id: str) -> tuple[str, dict] | None:
    state = cluster.state()
    for key in ("frameworks", "completed_frameworks"):
        for f in state.get(key, []):
            if f["id"] == framework_id:
                return key, f
    return None


def sandbox_processes(cluster: ProcessCluster, task_id: str) -> list[int]:
    root = str((cluster.directory / "agent0").resolve())
    return [p.pid for p in psutil.process_iter(["pid", "cwd"])
            if (p.info.get("cwd") or "").startswith(root) and f"/executors/{task_id}/" in
            (p.info.get("cwd") or "") + "/"]


async def test_framework_that_fails_over_in_time_keeps_its_tasks(tmp_path: Path) -> None:
    cluster = ProcessCluster(tmp_path, agents=1).start()
    info = {"user": "tester", "name": "failover", "failover_timeout": 60}
    first = Tracker([sleep_task("t1"), sleep_task("t2")])
    driver = SchedulerDriver(cluster.address, info, first)
    first.driver = driver
    second_driver = third_driver = None
    try:
        framework_id = await driver.start()
        await until(lambda: all("TASK_RUNNING" in first.states(t) for t in ("t1", "t2")),
                    30, "tasks running")
        await driver.stop()  # the scheduler goes away without TEARDOWN
        await asyncio.to_thread(wait_for, lambda: framework_state(cluster, framework_id)[1][
            "active"] is False, 10, what="the framework to be inactive")

        second = Tracker()
        second_driver = SchedulerDriver(
            cluster.address, {**info, "id": {"value": framework_id}}, second)
        second.driver = second_driver
        assert await second_driver.start() == framework_id
        await second_driver.reconcile()  # implicit: every task the master knows
        await until(lambda: second.states("t1") and second.states("t2"), 10, "reconciliation")
        assert second.states("t1")[-1] == second.states("t2")[-1] == "TASK_RUNNING"
        assert all(s["reason"] == "REASON_RECONCILIATION" for s in second.statuses)
        key, framework = await asyncio.to_thread(framework_state, cluster, framework_id)
        assert key == "frameworks" and framework["active"]
        assert sorted(t["id"] for t in framework["tasks"]) == ["t1", "t2"]

        # A third scheduler takes the framework over: the second gets ERROR and stops.
        third = Tracker()
        third_driver = SchedulerDriver(
            cluster.address, {**info, "id": {"value": framework_id}}, third)
        third.driver = third_driver
        assert await third_driver.start() == framework_id
        await until(lambda: second.errors, 10, "ERROR for the replaced scheduler")
        await until(lambda: second_driver.stream_id is None, 10, "the old driver to stop")
        await third_driver.kill("t1")
        await until(lambda: "TASK_KILLED" in third.states("t1"), 20, "t1 killed")
        assert "TASK_KILLED" not in second.states("t1")
    finally:
        for d in (third_driver, second_driver, driver):
            if d is not None:
                await d.stop(teardown=d is third_driver)
        cluster.stop()


async def test_framework_that_does_not_come_back_loses_its_tasks(tmp_path: Path) -> None:
    cluster = ProcessCluster(tmp_path, agents=1).start()
    tracker = Tracker([sleep_task("doomed")])
    driver = SchedulerDriver(cluster.address, {"user": "tester", "name": "gone",
                                               "failover_timeout": 1.0}, tracker)
    tracker.driver = driver
    try:
        framework_id = await driver.start()
        await until(lambda: "TASK_RUNNING" in tracker.states("doomed"), 30, "task running")
        assert sandbox_processes(cluster, "doomed")
        await driver.stop()  # no TEARDOWN, and no re-subscription within 1 s

        def removed() -> dict | None:
            found = framework_state(cluster, framework_id)
            return found[1] if found and found[0] == "completed_frameworks" else None

        framework = await asyncio.to_thread(wait_for, removed, 20,
                                            what="the framework to be removed")
        [task] = framework["completed_tasks"]
        assert task["state"] == "TASK_KILLED"
        await asyncio.to_thread(wait_for, lambda: not sandbox_processes(cluster, "doomed"), 20,
                                what="the task's processes to be gone")
        # The agent moves the framework to its completed ones once it has seen the
        # executor end, a moment after the processes are gone.
        await asyncio.to_thread(
            wait_for, lambda: not get_json(cluster.agents[0].url + "/state")["frameworks"], 20,
            what="the agent to forget the framework")

    finally:
        await driver.stop()
        cluster.stop()
