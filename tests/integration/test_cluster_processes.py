"""Whole-cluster behaviour with real master and agent processes and real tasks."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
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
    return {"name": task_id, "task_id": {"value": task_id},
            "command": {"value": "sleep 300"},
            "resources": Resources.parse("cpus:0.1;mem:32").to_json()}


async def until(condition, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_agent_that_stops_answering_goes_unreachable_and_its_tasks_come_back(tmp_path):
    cluster = ProcessCluster(tmp_path, agents=1, master_args=[
        "--agent-ping-timeout", "0.3", "--max-agent-ping-timeouts", "3"])
    cluster.start()
    tracker = Tracker([sleep_task("long")])
    driver = SchedulerDriver(cluster.address, {
        "user": "tester", "name": "partition", "failover_timeout": 60,
        "capabilities": [{"type": "PARTITION_AWARE"}]}, tracker)
    tracker.driver = driver
    try:
        await driver.start()
        await until(lambda: "TASK_RUNNING" in tracker.states("long"), what="task running")
        agent = cluster.agents[0]
        agent.signal(signal.SIGSTOP)  # the agent process freezes; its task keeps running
        try:
            await until(lambda: "TASK_UNREACHABLE" in tracker.states("long"), 15,
                        "TASK_UNREACHABLE")
            unreachable = next(s for s in tracker.statuses if s["state"] == "TASK_UNREACHABLE")
            assert unreachable["reason"] == "REASON_AGENT_REMOVED"
            await until(lambda: tracker.failures, 5, "FAILURE for the agent")
            state = await asyncio.to_thread(cluster.state)
            assert state["unreachable_slaves"] == 1 or not state["slaves"][0]["active"]
        finally:
            agent.signal(signal.SIGCONT)
        await until(lambda: tracker.states("long")[-1:] == ["TASK_RUNNING"], 20,
                    "the task back to RUNNING")
        back = tracker.statuses[-1]
        assert back["reason"] == "REASON_AGENT_REREGISTERED"
    finally:
        await driver.stop(teardown=True)
        cluster.stop()


async def test_old_framework_sees_task_lost_and_the_returning_copy_killed(tmp_path):
    cluster = ProcessCluster(tmp_path, agents=1, master_args=[
        "--agent-ping-timeout", "0.3", "--max-agent-ping-timeouts", "3"])
    cluster.start()
    tracker = Tracker([sleep_task("long")])
    driver = SchedulerDriver(cluster.address, {"user": "tester", "name": "old",
                                               "failover_timeout": 60}, tracker)
    tracker.driver = driver
    try:
        await driver.start()
        await until(lambda: "TASK_RUNNING" in tracker.states("long"), what="task running")
        cluster.agents[0].signal(signal.SIGSTOP)
        try:
            await until(lambda: "TASK_LOST" in tracker.states("long"), 15, "TASK_LOST")
        finally:
            cluster.agents[0].signal(signal.SIGCONT)
        # When the agent returns, the task this framework was told is lost is killed.
        await until(lambda: tracker.states("long")[-1:] == ["TASK_KILLED"], 20,
                    "the returning copy killed")
        assert "TASK_RUNNING" not in tracker.states("long")[tracker.states("long").index(
            "TASK_LOST"):]
    finally:
        await driver.stop(teardown=True)
        cluster.stop()


def test_mesonb_local_runs_work_and_stops_on_sigterm_leaving_nothing(tmp_path):
    work = tmp_path / "local"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mesonb", "local", "--agents", "2", "--port", "0",
         "--work-dir", str(work)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"master http://([\d.]+:\d+) with 2 agents", first)
        assert match, first
        address = match[1]
        state = get_json(f"http://{address}/master/state")
        assert len(state["slaves"]) == 2
        ports = sorted(s["resources"]["ports"] for s in state["slaves"])
        assert ports[0] != ports[1], "agents on one machine must not share ports"
        run = subprocess.run(
            [sys.executable, "-m", "mesonb", "execute", "--master", address,
             "--command", "echo from-a-task", "--instances", "3"],
            capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        assert len(re.findall(r"^task-\w+: TASK_FINISHED", run.stdout, re.M)) == 3
        assert len(re.findall(r"^from-a-task$", run.stdout, re.M)) == 3
        children = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
        rest = proc.stdout.read()
        assert "stopped" in rest
        wait_for(lambda: not [c for c in children if c.is_running()
                              and c.status() != psutil.STATUS_ZOMBIE], 10,
                 what="no process left behind")
        assert not _processes_under(work)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _processes_under(directory: Path) -> list[int]:
    root = str(directory.resolve())
    found = []
    for p in psutil.process_iter(["pid", "cwd"]):
        cwd = p.info.get("cwd") or ""
        if cwd.startswith(root):
            found.append(p.pid)
    return found


def test_ctrl_c_stops_a_master_cleanly(tmp_path):
    cluster = ProcessCluster(tmp_path, agents=1)
    cluster.start()
    try:
        assert cluster.master is not None
        os.kill(cluster.master.pid, signal.SIGINT)
        assert cluster.master.proc.wait(15) == 0
    finally:
        cluster.stop()
