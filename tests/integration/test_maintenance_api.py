"""Maintenance, draining, quota, weights and the master's files API over real processes.

A real master (``--log-dir``) and agents advertising their own hostnames (one machine
each); a framework driven by mesonb's scheduler driver runs a real ``sleep`` task. The
operator drives everything over HTTP, as a Mesos operator would: the v0 endpoints
(``/master/maintenance/*``, ``/master/machine/*``, ``/master/quota``, ``/master/weights``,
``/files/*``) and the v1 operator calls (DRAIN_AGENT, GET_AGENTS, LIST_FILES, ...).
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
import requests

from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.resources import Resources
from mesonb.testing.frameworks import Tracker
from mesonb.testing.processes import Daemon, ProcessCluster, until, wait_for

pytestmark = pytest.mark.slow

JSON = {"Content-Type": "application/json", "Accept": "application/json"}


def api(cluster: ProcessCluster, kind: str, **body: Any) -> requests.Response:
    return requests.post(cluster.url + "/api/v1", json={"type": kind, **body}, headers=JSON,
                         timeout=10)


class MaintenanceTracker(Tracker):
    """mesonb.testing's Tracker that also records inverse offers and their rescinds."""

    def __init__(self, tasks: list[dict[str, Any]]) -> None:
        super().__init__(tasks)
        self.inverse_offers: list[dict[str, Any]] = []

    def on_inverse_offers(self, offers: list[dict[str, Any]]) -> None:
        self.inverse_offers.extend(offers)




def start_cluster(tmp_path: Path) -> ProcessCluster:
    cluster = ProcessCluster(tmp_path, agents=1, agent_resources="cpus:1;mem:512;disk:512",
                             agent_args=["--hostname", "box1"],
                             master_args=["--log-dir", str(tmp_path / "logs"),
                                          "--allocation-interval", "0.2"]).start()
    try:
        cluster.agent_args = ["--hostname", "box2"]  # one machine per agent
        cluster.start_agent()
        cluster.wait_agents(2)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def test_inverse_offers_drain_and_machines_down_and_up(tmp_path: Path):
    cluster = start_cluster(tmp_path)
    try:
        asyncio.run(_maintenance(cluster))
    finally:
        cluster.stop()


async def _maintenance(cluster: ProcessCluster) -> None:
    sleeper = {"name": "sleeper", "task_id": {"value": "sleeper"},
               "command": {"value": "exec sleep 60"},
               "resources": Resources.parse("cpus:0.1;mem:32").to_json(),
               "kill_policy": {"grace_period": {"nanoseconds": 30 * 10**9}}}
    tracker = MaintenanceTracker([sleeper])
    tracker.driver = driver = SchedulerDriver(cluster.address, {"user": "root", "name": "m"},
                                              tracker)
    await driver.start()
    try:
        await until(lambda: "TASK_RUNNING" in tracker.states("sleeper"), "the task to run")
        agent_id = tracker.last("sleeper")["agent_id"]["value"]
        slaves = {s["id"]: s for s in cluster.state()["slaves"]}
        host = slaves[agent_id]["hostname"]
        other = next(s for s in slaves.values() if s["id"] != agent_id)["hostname"]

        schedule = {"windows": [{"machine_ids": [{"hostname": host}, {"hostname": other}],
                                 "unavailability": {"start": {"nanoseconds": 10**18}}}]}
        r = requests.post(cluster.url + "/master/maintenance/schedule", json=schedule, timeout=10)
        assert r.status_code == 200, r.text
        assert requests.get(cluster.url + "/master/maintenance/schedule",
                            timeout=10).json() == schedule
        (inverse,) = await until(lambda: tracker.inverse_offers, "an inverse offer")
        assert inverse["agent_id"]["value"] == agent_id
        await driver.call("ACCEPT_INVERSE_OFFERS", {"inverse_offer_ids": [inverse["id"]]})

        def answers() -> list[dict[str, Any]]:
            status = requests.get(cluster.url + "/master/maintenance/status", timeout=10).json()
            return [s for m in status["draining_machines"] if m["id"] == {"hostname": host}
                    for s in m["statuses"] if s["status"] == "ACCEPT"]

        await until(answers, "the ACCEPT in the maintenance status")

        # Drain: the task is killed within the drain's 1 s grace (its own is 30 s).
        r = api(cluster, "DRAIN_AGENT", drain_agent={
            "agent_id": {"value": agent_id}, "max_grace_period": {"nanoseconds": 10**9}})
        assert r.status_code == 200, r.text
        await until(lambda: "TASK_KILLED" in tracker.states("sleeper"), "the kill", 15)
        assert tracker.last("sleeper")["reason"] == "REASON_AGENT_DRAINING"

        def drain_state() -> str | None:
            agents = api(cluster, "GET_AGENTS").json()["get_agents"]["agents"]
            agent = next(a for a in agents if a["agent_info"]["id"]["value"] == agent_id)
            assert agent["deactivated"] and not agent["active"]
            return agent.get("drain_info", {}).get("state") == "DRAINED" and "DRAINED"

        await until(drain_state, "the agent to be DRAINED")

        # Machine DOWN: its agent is removed (told to shut down: as Mesos's, a mesonb agent
        # then kills what it runs and exits; see test_agent_shutdown.py).
        machine = [{"hostname": host}]
        r = requests.post(cluster.url + "/master/machine/down", json=machine, timeout=10)
        assert r.status_code == 200, r.text
        daemon = next(d for d in cluster.agents if d.args[d.args.index("--hostname") + 1]
                      == host)
        wait_for(lambda: "Machine DOWN" in daemon.output(), 20, what="the agent's removal")
        assert agent_id not in {s["id"] for s in cluster.state()["slaves"]}
        status = requests.get(cluster.url + "/master/maintenance/status", timeout=10).json()
        assert status["down_machines"] == machine
        r = requests.post(cluster.url + "/master/machine/up", json=[{"hostname": other}],
                          timeout=10)
        assert r.status_code == 400 and "not in DOWN mode" in r.text
        r = requests.post(cluster.url + "/master/machine/up", json=machine, timeout=10)
        assert r.status_code == 200, r.text
        left = requests.get(cluster.url + "/master/maintenance/schedule", timeout=10).json()
        assert left["windows"][0]["machine_ids"] == [{"hostname": other}]
    finally:
        await driver.stop()


def test_quota_weights_and_schedule_survive_a_master_restart_and_the_master_log(tmp_path: Path):
    cluster = ProcessCluster(tmp_path, agents=0)
    try:
        cluster.master = Daemon(["master", "--port", "0", "--work-dir", str(tmp_path / "master"),
                                 "--log-dir", str(tmp_path / "logs")], tmp_path / "master.log")
        cluster.master.wait_listening()
        url = cluster.url
        request = {"role": "dev", "guarantee": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}}]}
        r = requests.post(url + "/master/quota", json=request, timeout=10)
        assert r.status_code == 409 and "force" in r.text  # no agent: nothing to guarantee
        request["force"] = True
        assert requests.post(url + "/master/quota", json=request, timeout=10).status_code == 200
        r = requests.post(url + "/master/quota", json=request, timeout=10)
        assert r.status_code == 400 and "already has quota" in r.text
        r = api(cluster, "UPDATE_QUOTA", update_quota={"quota_configs": [
            {"role": "ml", "limits": {"mem": {"value": 1024}}}]})
        assert r.status_code == 200, r.text
        r = requests.put(url + "/master/weights", json=[{"role": "dev", "weight": 2.5}],
                         timeout=10)
        assert r.status_code == 200, r.text
        r = requests.put(url + "/master/weights", json=[{"role": "dev", "weight": -1}],
                         timeout=10)
        assert r.status_code == 400
        schedule = {"windows": [{"machine_ids": [{"hostname": "box9", "ip": "10.0.0.9"}],
                                 "unavailability": {"start": {"nanoseconds": 1}}}]}
        r = api(cluster, "UPDATE_MAINTENANCE_SCHEDULE",
                update_maintenance_schedule={"schedule": schedule})
        assert r.status_code == 200, r.text
        roles = {r["name"]: r for r in requests.get(url + "/master/roles", timeout=10)
                 .json()["roles"]}
        assert roles["dev"]["quota"]["limit"] == {"cpus": 2.0}
        assert roles["dev"]["weight"] == 2.5

        # The master's own log through the files API, sandboxed like the agent's.
        log = requests.get(url + "/files/read", params={"path": "/master/log", "offset": 0},
                           timeout=10).json()
        assert "listening" in log["data"] or "leading" in log["data"] or log["data"]
        listed = api(cluster, "LIST_FILES", list_files={"path": "/master/log"}).json()
        (info,) = listed["list_files"]["file_infos"]
        assert info["path"] == "/master/log" and info["size"] > 0
        read = api(cluster, "READ_FILE", read_file={"path": "/master/log", "offset": 0,
                                                    "length": 64}).json()["read_file"]
        assert read["size"] == info["size"] or read["size"] >= 64
        assert len(base64.b64decode(read["data"])) == 64
        assert requests.get(url + "/files/browse", params={"path": "/master/log/../../etc"},
                            timeout=10).status_code == 403
        assert requests.get(url + "/files/read", params={"path": "/etc/passwd", "offset": 0},
                            timeout=10).status_code == 404
        download = requests.get(url + "/files/download", params={"path": "/master/log"},
                                timeout=10)
        assert download.status_code == 200 and len(download.content) >= 64

        # A new master on the same registry (work dir) knows all three.
        assert cluster.master is not None
        args = cluster.master.args
        cluster.master.stop()
        cluster.master = Daemon(args, tmp_path / "master2.log")
        cluster.master.wait_listening()
        url = cluster.url
        quota = requests.get(url + "/master/quota", timeout=10).json()
        assert [c["role"] for c in quota["configs"]] == ["dev", "ml"]
        assert quota["configs"][1]["limits"] == {"mem": {"value": 1024.0}}
        assert requests.get(url + "/master/weights", timeout=10).json() == [
            {"role": "dev", "weight": 2.5}]
        got = api(cluster, "GET_MAINTENANCE_SCHEDULE").json()
        assert got["get_maintenance_schedule"]["schedule"] == schedule
        r = api(cluster, "UPDATE_QUOTA", update_quota={"quota_configs": [
            {"role": "ml/deep", "limits": {"mem": {"value": 512}}}]})
        assert r.status_code == 200, r.text
        assert requests.delete(url + "/master/quota/ml/deep", timeout=10).status_code == 200
        r = requests.delete(url + "/master/quota/ml/deep", timeout=10)
        assert r.status_code == 400 and "no quota" in r.text
        assert requests.delete(url + "/master/quota/dev", timeout=10).status_code == 200
        assert [c["role"] for c in requests.get(url + "/master/quota", timeout=10)
                .json()["configs"]] == ["ml"]
    finally:
        cluster.stop()


def test_settings_are_kept_in_zookeeper_for_the_next_leader(client):
    from mesonb.master.registry import Registry, ZooKeeperStore

    writer = Registry(ZooKeeperStore(client, "/maint-registry"))
    quota = {"configs": [{"role": "dev", "limits": {"cpus": {"value": 2.0}}}]}
    writer.put_setting("quota", quota).result(10)
    writer.put_setting("weights", {"weights": {"dev": 3.0}}).result(10)
    assert writer.put_setting("quota", quota) is None  # held already: nothing to write
    writer.close()
    reader = Registry(ZooKeeperStore(client, "/maint-registry"))
    state = reader.recover().result(10)
    assert state.settings == {"quota": quota, "weights": {"weights": {"dev": 3.0}}}
    reader.close()


def test_a_role_is_never_offered_beyond_its_quota_limit(tmp_path: Path):
    with ProcessCluster(tmp_path, agents=2, agent_resources="cpus:1;mem:512;disk:512",
                        master_args=["--allocation-interval", "0.2"]) as cluster:
        r = api(cluster, "UPDATE_QUOTA", update_quota={"quota_configs": [
            {"role": "dev", "limits": {"cpus": {"value": 0.5}}}]})
        assert r.status_code == 200, r.text
        asyncio.run(_offers_within_quota(cluster))


async def _offers_within_quota(cluster: ProcessCluster) -> None:
    offers: list[dict[str, Any]] = []

    class Holder:  # keeps its offers: what it holds counts against the quota
        def on_offers(self, batch: list[dict[str, Any]]) -> None:
            offers.extend(batch)

    driver = SchedulerDriver(cluster.address, {"user": "root", "name": "q", "roles": ["dev"],
                                               "capabilities": [{"type": "MULTI_ROLE"}]},
                             Holder())
    await driver.start()
    try:
        await until(lambda: len({o["agent_id"]["value"] for o in offers}) == 2,
                    "offers of both agents (mem is not limited)")

        def cpus() -> float:
            return sum(r["scalar"]["value"] for o in offers for r in o["resources"]
                       if r["name"] == "cpus")

        assert cpus() == pytest.approx(0.5)  # 2 cpus free, 0.5 offered in all
        roles = {r["name"]: r for r in api(cluster, "GET_ROLES").json()["get_roles"]["roles"]}
        assert roles["dev"]["quota"]["limit"] == [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}]
    finally:
        await driver.stop()
