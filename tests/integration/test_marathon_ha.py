"""Two ``mesonb marathon --zk`` instances: one leads, the other proxies; the leader
abdicates (DELETE /v2/leader), then kill -9 of the new leader hands over within 3 s
(ZooKeeper session 2 s); no task is killed on the way."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from marathon_support import SMALL, MarathonProcess

from mesonb.testing.processes import ProcessCluster, get_json, wait_for
from mesonb.testing.zookeeper import ZooKeeperServer, zookeeper_jar

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(zookeeper_jar() is None, reason="ZooKeeper is not installed")]
INSTANCES = 20


def test_abdication_and_kill_9_hand_over_without_killing_tasks(tmp_path: Path) -> None:
    # a 200 ms tick: ZooKeeper expires sessions on tick boundaries (500 ms would add up to
    # half a second to the 2 s session timeout)
    with ZooKeeperServer(tmp_path / "zk", tick_ms=200) as zk, \
            ProcessCluster(tmp_path, agents=1, agent_resources="cpus:4;mem:4096;disk:4096",
                           master_args=["--allocation-interval", "0.1"]) as cluster:
        flags = ["--zk", zk.url("/marathon"), "--zk-session-timeout", "2"]
        first = MarathonProcess(tmp_path, cluster.address, flags, name="m1").start()
        wait_for(lambda: get_json(first.url + "/v2/info")["elected"], 20, what="a leader")
        second = MarathonProcess(tmp_path, cluster.address, flags, name="m2").start()
        try:
            # the standby proxies to the leader, writes included
            assert second.get("/v2/leader") == {"leader": first.daemon.address}
            created = second.request("POST", "/v2/apps", {"id": "/ha", "cmd": "sleep 600",
                                                          "instances": INSTANCES, **SMALL})
            assert created.status_code == 201, created.text
            first.deployed(30)
            before = {t["id"] for t in first.running("/ha", INSTANCES, 30)}
            framework_id = first.get("/v2/info")["frameworkId"]

            # the leader steps down (asked through the standby): the standby leads
            assert "abdicated" in second.request("DELETE", "/v2/leader").json()["message"]
            wait_for(lambda: get_json(second.url + "/v2/info")["elected"], 10,
                     what="the standby to lead")
            assert first.get("/v2/leader") == {"leader": second.daemon.address}
            assert {t["id"] for t in second.running("/ha", INSTANCES, 20)} == before

            second.daemon.kill()
            killed_at = time.monotonic()

            def serving() -> bool:
                answer = requests.get(first.url + "/v2/apps", timeout=2)
                return answer.status_code == 200 and \
                    [a["id"] for a in answer.json()["apps"]] == ["/ha"]

            wait_for(serving, 10, interval=0.05, what="the new leader")
            took = time.monotonic() - killed_at
            assert took < 3.0, f"the new leader served /v2/apps after {took:.2f}s"
            info = first.get("/v2/info")
            assert info["elected"] and info["leader"] == first.daemon.address
            wait_for(lambda: first.get("/v2/info")["frameworkId"] == framework_id, 10)
            assert {t["id"] for t in first.running("/ha", INSTANCES, 20)} == before
            # reconciliation has answered for every task; they are still the same
            wait_for(lambda: first.get("/metrics")["counters"][
                "marathon.tasks.reconciled.counter"]["count"] >= 2 * INSTANCES, 20,
                what="reconciliation")
            tasks = first.get("/v2/apps/ha/tasks")["tasks"]
            assert {t["id"] for t in tasks} == before
            state = cluster.state()
            ours = [f for f in state["frameworks"] if f["id"] == framework_id]
            assert ours and len(ours[0]["tasks"]) == INSTANCES
            assert all(t["state"] == "TASK_RUNNING" for t in ours[0]["tasks"])
            assert not [t for t in ours[0].get("completed_tasks", [])
                        if t["id"] in before]
        finally:
            first.request("DELETE", "/v2/apps/ha?force=true")
            second.stop()
            first.stop()


def test_kill_9_of_the_leader_with_500_instances_running(tmp_path: Path) -> None:
    """The issue's figure: the standby serves /v2/apps within 3 s of kill -9 of the leader
    (ZooKeeper session 2 s), and once reconciliation has answered for every task, the
    same 500 run (the master completed none of them)."""
    count = 500
    with ZooKeeperServer(tmp_path / "zk", tick_ms=200) as zk, \
            ProcessCluster(tmp_path, agents=2, agent_resources="cpus:8;mem:8192;disk:4096",
                           master_args=["--zk", zk.url("/mesos")]) as cluster:
        # the framework finds the master through ZooKeeper too (--master zk://...)
        flags = ["--zk", zk.url("/marathon"), "--zk-session-timeout", "2"]
        master = zk.url("/mesos")
        first = MarathonProcess(tmp_path, master, flags, name="m1").start()
        wait_for(lambda: get_json(first.url + "/v2/info")["elected"], 20, what="a leader")
        second = MarathonProcess(tmp_path, master, flags, name="m2").start()
        try:
            created = first.request("POST", "/v2/apps", {
                "id": "/many", "cmd": "sleep 600", "instances": count, "cpus": 0.001,
                "mem": 4, "portDefinitions": []})
            assert created.status_code == 201, created.text
            first.deployed(120)
            before = {t["id"] for t in first.running("/many", count, 60)}

            first.daemon.kill()
            killed_at = time.monotonic()

            def serving() -> bool:
                answer = requests.get(second.url + "/v2/apps", timeout=2)
                return answer.status_code == 200 and \
                    [a["id"] for a in answer.json()["apps"]] == ["/many"]

            wait_for(serving, 10, interval=0.05, what="the new leader")
            took = time.monotonic() - killed_at
            assert took < 3.0, f"the new leader served /v2/apps after {took:.2f}s"

            def reconciled() -> int:
                counters = second.get("/metrics")["counters"]
                return counters["marathon.tasks.reconciled.counter"]["count"] >= 2 * count

            # explicit reconciliation of the known tasks, then implicit of all of them
            wait_for(reconciled, 60, what="reconciliation of every task")
            assert {t["id"] for t in second.running("/many", count, 30)} == before
            assert second.get("/v2/deployments") == []
            state = cluster.state()
            ours = [f for f in state["frameworks"] if f["name"] == "marathon"]
            assert ours and {t["id"] for t in ours[0]["tasks"]} == before
            assert all(t["state"] == "TASK_RUNNING" for t in ours[0]["tasks"])
            assert not [t for t in ours[0].get("completed_tasks", []) if t["id"] in before]
        finally:
            second.request("DELETE", "/v2/apps/many?force=true")
            second.stop()
            first.stop()
