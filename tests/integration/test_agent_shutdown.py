"""A machine put DOWN for maintenance: its agent process is told to shut down and, as
Mesos's agent does on ShutdownMessage, kills its executors and exits with 0. Restarted
while the machine is DOWN, it is refused and exits again; once the machine is UP it
registers as a new agent. Real master and agent processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

import pytest
import requests

from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.resources import Resources
from mesonb.testing.frameworks import Tracker
from mesonb.testing.processes import ProcessCluster, wait_for

pytestmark = pytest.mark.slow


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_an_agent_on_a_machine_put_down_kills_its_tasks_and_exits_0(tmp_path: Path):
    cluster = ProcessCluster(tmp_path, agents=1,
                             master_args=["--allocation-interval", "0.2"])
    pid_file = tmp_path / "task.pid"
    sleeper = {"name": "sleeper", "task_id": {"value": "sleeper"},
               "command": {"value": f"echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}"
                                    " && exec sleep 600"},
               "resources": Resources.parse("cpus:0.1;mem:32").to_json()}
    tracker = Tracker([sleeper])

    def wait(condition: Any, what: str, timeout: float = 30) -> Any:
        return asyncio.to_thread(wait_for, condition, timeout, what=what)

    try:
        await asyncio.to_thread(cluster.start)
        [agent] = await asyncio.to_thread(cluster.wait_agents, 1)
        tracker.driver = SchedulerDriver(cluster.address, {"user": "root", "name": "m"},
                                         tracker)
        await tracker.driver.start()
        await wait(pid_file.exists, "the task to start")
        task_pid = int(pid_file.read_text())
        assert alive(task_pid)
        machine = [{"hostname": agent["hostname"]}]
        schedule = {"windows": [{"machine_ids": machine,
                                 "unavailability": {"start": {"nanoseconds": 0}}}]}
        r = requests.post(cluster.url + "/master/maintenance/schedule", json=schedule,
                          timeout=10)
        assert r.status_code == 200, r.text
        r = requests.post(cluster.url + "/master/machine/down", json=machine, timeout=10)
        assert r.status_code == 200, r.text

        daemon = cluster.agents[0]
        assert await asyncio.to_thread(daemon.proc.wait, 30) == 0
        assert "agent asked to shut down by the master because" in daemon.output()
        await wait(lambda: not alive(task_pid), "the task's process to end", 10)
        assert not cluster.state()["slaves"]

        # Restarted while the machine is DOWN: refused, and it exits again (0).
        again = cluster.start_agent(0)
        assert await asyncio.to_thread(again.proc.wait, 30) == 0
        assert "agent asked to shut down by the master because" in again.output()

        # UP again: a restarted agent registers, with a new id.
        r = requests.post(cluster.url + "/master/machine/up", json=machine, timeout=10)
        assert r.status_code == 200, r.text
        cluster.start_agent(0)
        [back] = await asyncio.to_thread(cluster.wait_agents, 1)
        assert back["id"] != agent["id"]
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        if tracker.driver is not None:
            await tracker.driver.stop()
        cluster.stop()
        with contextlib.suppress(ProcessLookupError, ValueError, OSError):
            pid = int(pid_file.read_text())  # the task, if the agent failed to kill it
            if alive(pid) and b"sleep" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, 9)
