"""Master failover with everything real: a 3-node ZooKeeper ensemble, three
``mesonb master --zk`` processes, two ``mesonb agent --master zk://...`` processes, a
``Cluster("zk://...")`` client with calls in flight and a command-task framework.

kill -9 the leader while the tasks run: a standby leads, both agents re-register with
their tasks, both frameworks re-subscribe with their framework ids, no task is killed or
lost, and the client's futures complete with their values.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import time
from pathlib import Path

import pytest

from mesonb import Cluster
from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.resources import Resources
from mesonb.testing.ha import ZooKeeperCluster
from mesonb.testing.processes import Daemon, get_json, wait_for
from mesonb.testing.zookeeper import zookeeper_jar

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(zookeeper_jar() is None, reason="ZooKeeper is not installed"),
]
BAD_STATES = {"TASK_KILLED", "TASK_KILLING", "TASK_LOST", "TASK_FAILED", "TASK_ERROR",
              "TASK_DROPPED", "TASK_GONE", "TASK_UNREACHABLE", "TASK_GONE_BY_OPERATOR"}


def gated_square(x: int, gate: str) -> int:
    """Runs until the test opens the gate (a file), so it is surely in flight at the kill."""
    deadline = time.monotonic() + 120
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)
    return x * x


def serving(master: Daemon) -> bool:
    """The master answers as the leader (not 307 to another, not 503, not dead)."""
    if master.proc.poll() is not None:
        return False
    host, port = master.address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("POST", "/api/v1/scheduler", body=b"{}",
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status not in (307, 503)
    except OSError:
        return False
    finally:
        conn.close()


class CommandFramework:
    """A pymesos-style framework: launches its tasks on the first offer, records updates."""

    def __init__(self, tasks: list[dict]) -> None:
        self.to_launch = tasks
        self.statuses: list[dict] = []
        self.subscriptions: list[str] = []
        self.driver: SchedulerDriver | None = None

    def on_subscribed(self, body: dict) -> None:
        self.subscriptions.append(body["framework_id"]["value"])

    async def on_offers(self, offers: list[dict]) -> None:
        assert self.driver is not None
        for offer in offers:
            if not self.to_launch:
                await self.driver.decline([offer["id"]["value"]], 3600)
                continue
            tasks, self.to_launch = self.to_launch, []
            for task in tasks:
                task["agent_id"] = offer["agent_id"]
            await self.driver.launch([offer["id"]["value"]], tasks)

    def on_update(self, status: dict) -> None:
        self.statuses.append(status)

    def states(self) -> list[str]:
        return [s["state"] for s in self.statuses]


async def until(condition, timeout: float, what: str) -> None:
    await asyncio.to_thread(wait_for, condition, timeout, 0.05, what)


async def test_kill_leader_while_tasks_run(tmp_path: Path) -> None:
    ha = ZooKeeperCluster(tmp_path, zookeepers=3)
    cluster: Cluster | None = None
    driver: SchedulerDriver | None = None
    try:
        url = (await asyncio.to_thread(ha.start)).url
        masters = ha.start_masters(3, "--agent-reregister-timeout", "60")
        [leader] = await asyncio.to_thread(
            wait_for, lambda: (s := [m for m in masters if serving(m)]) and len(s) == 1 and s,
            30, 0.05, "one serving leader")
        for i in range(2):
            ha.start_agent(f"agent{i}", "cpus:4;mem:4096")
        await until(lambda: len(get_json(leader.url + "/master/state")["slaves"]) == 2, 30,
                    "both agents on the leader")

        # The notebook client, found through ZooKeeper, with calls in flight.
        cluster = await asyncio.to_thread(Cluster, url)
        assert cluster.address == url
        gate = tmp_path / "gate"
        futures = [cluster.submit(gated_square, i, str(gate), cpus=0.1, mem="64MiB")
                   for i in range(4)]
        # A command-task framework with a failover_timeout, through the same URL.
        framework = CommandFramework([
            {"name": "sleeper", "task_id": {"value": "sleeper"},
             "command": {"value": "sleep 300"},
             "resources": Resources.parse("cpus:0.1;mem:32").to_json()}])
        driver = SchedulerDriver(url, {"user": "tester", "name": "command-ha",
                                       "failover_timeout": 3600}, framework)
        framework.driver = driver
        framework_id = await driver.start()
        await until(lambda: "TASK_RUNNING" in framework.states(), 30, "the command task")

        def running_calls() -> bool:
            tasks = cluster.tasks()
            return len(tasks) == 4 and set(tasks["state"]) == {"TASK_RUNNING"}

        await until(running_calls, 30, "the four calls running")
        assert not any(f.done() for f in futures)

        killed_at = time.monotonic()
        leader.kill()
        standbys = [m for m in masters if m is not leader]
        [new] = await asyncio.to_thread(
            wait_for, lambda: (s := [m for m in standbys if serving(m)]) and len(s) == 1 and s,
            30, 0.05, "a standby to lead")
        led_after = time.monotonic() - killed_at

        def agents_back() -> bool:
            slaves = get_json(new.url + "/master/state")["slaves"]
            return len(slaves) == 2 and all(s["active"] for s in slaves)

        await until(agents_back, 30, "both agents re-registered with the new leader")
        reregistered_after = time.monotonic() - killed_at
        print(f"new leader after {led_after:.2f}s, agents back after {reregistered_after:.2f}s")

        # The calls in flight complete, with their values.
        gate.touch()
        values = await asyncio.to_thread(cluster.gather, futures, timeout=60)
        assert values == [0, 1, 4, 9]
        # The command framework re-subscribed with its id; its task kept running.
        await until(lambda: len(framework.subscriptions) >= 2, 30,
                    "the command framework re-subscribed")
        assert set(framework.subscriptions) == {framework_id}
        assert not BAD_STATES & set(framework.states()), framework.statuses
        assert not BAD_STATES & {s for t in cluster.tasks()["state"] for s in [t]}

        state = get_json(new.url + "/master/state")
        frameworks = {f["id"]: f for f in state["frameworks"]}
        assert frameworks[framework_id]["active"]
        assert frameworks[cluster.framework_id]["active"]
        [sleeper] = frameworks[framework_id]["tasks"]
        assert sleeper["state"] == "TASK_RUNNING"
        finished = [t for t in frameworks[cluster.framework_id]["completed_tasks"]]
        assert sorted(t["state"] for t in finished) == ["TASK_FINISHED"] * 4
        assert not frameworks[cluster.framework_id]["tasks"]
        # ...and a new call runs on the new leader.
        assert await asyncio.to_thread(lambda: cluster.submit(abs, -7, cpus=0.1,
                                                              mem="64MiB").result(60)) == 7
    finally:
        if driver is not None:
            await driver.stop(teardown=True)
        if cluster is not None:
            await asyncio.to_thread(cluster.close)
        ha.stop()
