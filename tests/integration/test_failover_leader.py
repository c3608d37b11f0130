"""Following the leading master through ZooKeeper, with real processes.

Two masters contend in a real ZooKeeper; an agent started with ``--master zk://...`` and
a scheduler driver given the same URL find the leader there. When the leader is killed,
the standby takes over and both find it: the agent re-registers with its task, the
framework re-subscribes with its id and reconciliation shows the task still running.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.resources import Resources
from mesonb.testing.frameworks import Tracker
from mesonb.testing.ha import ZooKeeperCluster, active_agents, leading
from mesonb.testing.processes import get_json, wait_for
from mesonb.testing.zookeeper import zookeeper_jar

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(zookeeper_jar() is None, reason="ZooKeeper is not installed"),
]


async def until(condition, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_agent_and_framework_follow_the_leader_through_zookeeper(tmp_path: Path) -> None:
    ha = ZooKeeperCluster(tmp_path)
    driver = None
    try:
        url = ha.start().url
        first = ha.start_master("m1")
        await asyncio.to_thread(wait_for, lambda: leading(first), 20, what="m1 to lead")
        second = ha.start_master("m2")
        ha.start_agent(resources="cpus:2;mem:2048;disk:4096")
        await asyncio.to_thread(wait_for, lambda: active_agents(first) == 1, 20,
                                what="the agent registered with m1")

        tracker = Tracker([{"name": "long", "task_id": {"value": "long"},
                            "command": {"value": "sleep 300"},
                            "resources": Resources.parse("cpus:0.1;mem:32").to_json()}])
        driver = SchedulerDriver(url, {"user": "tester", "name": "follower",
                                       "checkpoint": True, "failover_timeout": 120}, tracker,
                                 backoff_max=2.0)
        tracker.driver = driver
        framework_id = await driver.start()
        assert driver.url == first.url
        await until(lambda: "TASK_RUNNING" in tracker.states("long"), 30, "task running")

        first.kill()  # the leader dies; its ZooKeeper session expires after 2 s
        await asyncio.to_thread(wait_for, lambda: leading(second), 30, what="m2 to lead")
        await asyncio.to_thread(wait_for, lambda: active_agents(second) == 1, 30,
                                what="the agent re-registered with m2")
        await until(lambda: tracker.subscriptions >= 2 and driver.stream_id is not None, 30,
                    "the framework re-subscribed with m2")
        assert driver.url == second.url
        assert driver.framework_id == framework_id
        before = len(tracker.statuses)
        await driver.reconcile([("long", None)])
        await until(lambda: len(tracker.statuses) > before, 10, "reconciliation")
        assert tracker.statuses[-1]["state"] == "TASK_RUNNING"
        state = await asyncio.to_thread(get_json, second.url + "/master/state")
        [framework] = [f for f in state["frameworks"] if f["id"] == framework_id]
        assert [t["id"] for t in framework["tasks"]] == ["long"]
    finally:
        if driver is not None:
            await driver.stop(teardown=True)
        ha.stop()


class Subscriptions:
    """A framework that only records when (and to which master) it subscribed."""

    def __init__(self) -> None:
        self.at: list[float] = []
        self.masters: list[str] = []

    def on_subscribed(self, body: dict) -> None:
        self.at.append(time.monotonic())
        address = (body.get("master_info") or {}).get("address") or {}
        self.masters.append(f"{address.get('ip')}:{address.get('port')}")


SESSION_TIMEOUT = 2.0  # the masters' --zk-session-timeout in these tests


@pytest.mark.parametrize("fault", ["kill", "freeze"])
async def test_the_driver_follows_a_new_leader_within_the_session_timeout(
        tmp_path: Path, fault: str) -> None:
    """kill -9 (the stream breaks at once) or SIGSTOP (the stream stays open, silent) on
    the leading master: the driver's watch on the election sees the standby take over
    and re-subscribes to it without back-off, within the session timeout + 1 s."""
    ha = ZooKeeperCluster(tmp_path, session_timeout=SESSION_TIMEOUT)
    driver = None
    try:
        url = ha.start().url
        first = ha.start_master("m1")
        await asyncio.to_thread(wait_for, lambda: leading(first), 20, what="m1 to lead")
        second = ha.start_master("m2")
        subs = Subscriptions()
        driver = SchedulerDriver(url, {"user": "tester", "name": "watcher",
                                       "failover_timeout": 120}, subs)
        framework_id = await driver.start()
        assert driver.url == first.url and subs.masters == [first.address]

        t0 = time.monotonic()
        if fault == "kill":
            first.kill()
        else:
            first.signal(signal.SIGSTOP)
        await until(lambda: len(subs.at) >= 2, 60, "the framework re-subscribed")
        took = subs.at[1] - t0
        print(f"{fault}: re-subscribed with the new leader {took:.2f}s after the fault")
        assert subs.masters[1] == second.address and driver.url == second.url
        assert driver.framework_id == framework_id
        assert took < SESSION_TIMEOUT + 1.0, f"re-subscribed only after {took:.2f}s"
    finally:
        if driver is not None:
            await driver.stop()
        ha.stop(kill=True)  # a frozen process ignores SIGTERM until resumed
