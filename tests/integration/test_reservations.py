"""Reservations and persistent volumes with a real master and a real agent (processes):
the operator calls, the agent's checkpoint and volume directories, and both surviving an
agent restart and a master restart on its registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from mesonb.testing.ha import ZooKeeperCluster, active_agents, leading
from mesonb.testing.processes import Daemon, ProcessCluster, until, wait_for
from mesonb.testing.zookeeper import zookeeper_jar

pytestmark = pytest.mark.slow
JSON = {"Content-Type": "application/json", "Accept": "application/json"}


def call(cluster: ProcessCluster, body: dict[str, Any]) -> requests.Response:
    return requests.post(cluster.url + "/api/v1", json=body, headers=JSON, timeout=10)


def reservation(role: str) -> list[dict[str, Any]]:
    return [{"type": "DYNAMIC", "role": role, "principal": "ops",
             "labels": {"labels": [{"key": "owner", "value": "db-team"}]}}]


def disk(value: float, role: str, **extra: Any) -> dict[str, Any]:
    return {"name": "disk", "type": "SCALAR", "scalar": {"value": value},
            "reservations": reservation(role), **extra}


def vol(pid: str, value: float, role: str = "db") -> dict[str, Any]:
    return disk(value, role, disk={"persistence": {"id": pid, "principal": "ops"},
                                   "volume": {"container_path": "data", "mode": "RW"}})


def agent_resources(cluster: ProcessCluster) -> list[dict[str, Any]]:
    body = call(cluster, {"type": "GET_AGENTS"}).json()["get_agents"]
    [agent] = body["agents"]
    return agent["total_resources"]


def has_volume(cluster: ProcessCluster, pid: str) -> bool:
    try:
        resources = agent_resources(cluster)
    except (requests.RequestException, ValueError, KeyError):
        return False
    return any((r.get("disk") or {}).get("persistence", {}).get("id") == pid
               for r in resources)


def test_operator_reservations_and_volumes_survive_agent_and_master_restarts(tmp_path: Path):
    cluster = ProcessCluster(tmp_path, agents=1,
                             agent_resources="cpus:2;mem:1024;disk:1024;cpus(ops):0.5")
    try:
        cluster.start()
        [agent] = cluster.wait_agents(1)
        agent_id = {"value": agent["id"]}
        # The static reservation keeps its role in state, v1 and v0.
        static = [r for r in agent_resources(cluster) if r.get("role") == "ops"]
        assert static and static[0]["reservations"] == [{"type": "STATIC", "role": "ops"}]
        slave = requests.get(cluster.url + "/master/slaves", timeout=10).json()["slaves"][0]
        assert slave["reserved_resources"]["ops"]["cpus"] == 0.5
        assert slave["unreserved_resources"]["cpus"] == 2.0

        answer = call(cluster, {"type": "RESERVE_RESOURCES", "reserve_resources": {
            "agent_id": agent_id, "resources": [disk(300, "db")]}})
        assert answer.status_code == 202, answer.text
        answer = call(cluster, {"type": "CREATE_VOLUMES", "create_volumes": {
            "agent_id": agent_id, "volumes": [vol("v1", 100)]}})
        assert answer.status_code == 202, answer.text
        volume_dir = tmp_path / "agent0" / "volumes" / "roles" / "db" / "v1"
        wait_for(volume_dir.is_dir, 10, what="the volume's directory on the agent")
        (volume_dir / "keep.txt").write_text("kept")
        slave = requests.get(cluster.url + "/master/slaves", timeout=10).json()["slaves"][0]
        assert slave["reserved_resources"]["db"]["disk"] == 300
        assert slave["unreserved_resources"]["disk"] == 724

        # Refused, visibly, and nothing changes.
        for body, status, needle in [
            ({"type": "RESERVE_RESOURCES", "reserve_resources": {
                "agent_id": agent_id, "resources": [disk(5000, "db")]}}, 409, "more than"),
            ({"type": "RESERVE_RESOURCES", "reserve_resources": {
                "agent_id": {"value": "nope"}, "resources": [disk(1, "db")]}}, 400, "nope"),
            ({"type": "CREATE_VOLUMES", "create_volumes": {
                "agent_id": agent_id, "volumes": [vol("v1", 10)]}}, 400, "already exists"),
            ({"type": "DESTROY_VOLUMES", "destroy_volumes": {
                "agent_id": agent_id, "volumes": [vol("ghost", 10)]}}, 400, "does not exist"),
            ({"type": "UNRESERVE_RESOURCES", "unreserve_resources": {
                "agent_id": agent_id, "resources": [vol("v1", 100)]}}, 400, "DESTROY it"),
            ({"type": "GROW_VOLUME", "grow_volume": {"agent_id": agent_id,
                "volume": vol("v1", 100), "addition": disk(999, "db")}}, 409, "not available"),
        ]:
            answer = call(cluster, body)
            assert answer.status_code == status and needle in answer.text, (body, answer.text)
        assert has_volume(cluster, "v1")

        # An agent restart: its checkpoint brings the reservation and the volume back.
        checkpoint = tmp_path / "agent0" / "meta" / "resources" / "resources.json"
        assert any(r.get("disk") for r in json.loads(checkpoint.read_text()))
        cluster.agents[0].stop()
        cluster.agents.clear()
        cluster.start_agent(0)
        cluster.wait_agents(1)
        assert has_volume(cluster, "v1")
        assert (volume_dir / "keep.txt").read_text() == "kept"

        # A master restart on its registry, with the agent's checkpoint gone: the registry
        # brings the volume back and the agent is told to checkpoint it again.
        cluster.agents[0].kill()  # a crash: the agent stays admitted in the registry
        cluster.agents.clear()
        checkpoint.unlink()
        cluster.master.stop()
        port = cluster.master.port
        cluster.master = Daemon(["master", "--port", str(port), "--work-dir",
                                 str(tmp_path / "master")], tmp_path / "master2.log")
        cluster.master.wait_listening()
        cluster.start_agent(0)
        cluster.wait_agents(1)
        wait_for(lambda: has_volume(cluster, "v1"), 10, what="the volume after the failover")
        wait_for(checkpoint.exists, 10, what="the agent to checkpoint the volume again")
        assert (volume_dir / "keep.txt").read_text() == "kept"

        # DESTROY deletes the directory; UNRESERVE gives the disk back.
        answer = call(cluster, {"type": "DESTROY_VOLUMES", "destroy_volumes": {
            "agent_id": agent_id, "volumes": [vol("v1", 100)]}})
        assert answer.status_code == 202, answer.text
        wait_for(lambda: not volume_dir.exists(), 10, what="the volume's directory to go")
        answer = call(cluster, {"type": "UNRESERVE_RESOURCES", "unreserve_resources": {
            "agent_id": agent_id, "resources": [disk(300, "db")]}})
        assert answer.status_code == 202, answer.text
        assert not any(r.get("role") == "db" for r in agent_resources(cluster))
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()


def test_acls_refuse_operator_reservations_and_volumes_with_403(tmp_path: Path):
    acls = tmp_path / "acls.json"
    acls.write_text(json.dumps({
        "reserve_resources": [{"principals": {"type": "ANY"}, "roles": {"values": ["dev"]}},
                              {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}],
        "create_volumes": [{"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}]}))
    cluster = ProcessCluster(tmp_path, agents=1, master_args=["--acls", str(acls)])
    try:
        cluster.start()
        [agent] = cluster.wait_agents(1)
        agent_id = {"value": agent["id"]}
        refused = call(cluster, {"type": "RESERVE_RESOURCES", "reserve_resources": {
            "agent_id": agent_id, "resources": [disk(10, "db")]}})
        assert refused.status_code == 403 and "reserve resources" in refused.text
        allowed = call(cluster, {"type": "RESERVE_RESOURCES", "reserve_resources": {
            "agent_id": agent_id, "resources": [disk(10, "dev")]}})
        assert allowed.status_code == 202, allowed.text
        refused = call(cluster, {"type": "CREATE_VOLUMES", "create_volumes": {
            "agent_id": agent_id, "volumes": [vol("v", 5, "dev")]}})
        assert refused.status_code == 403 and "volumes" in refused.text
        assert not has_volume(cluster, "v")
        assert {r.get("role") for r in agent_resources(cluster)} == {"*", "dev"}
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()


class OperationsFramework:
    """Records offers and UPDATE_OPERATION_STATUS events (mesonb's scheduler driver hands
    an event it has no method for to ``on_<type>``)."""

    def __init__(self) -> None:
        self.offers: list[dict[str, Any]] = []
        self.operation_updates: list[dict[str, Any]] = []
        self.task_updates: list[dict[str, Any]] = []

    def on_offers(self, offers: list[dict[str, Any]]) -> None:
        self.offers.extend(offers)

    def on_update_operation_status(self, body: dict[str, Any]) -> None:
        self.operation_updates.append(body["status"])

    def on_update(self, status: dict[str, Any]) -> None:
        self.task_updates.append(status)

    def states(self, op_id: str) -> list[str]:
        return [s["state"] for s in self.operation_updates
                if s["operation_id"]["value"] == op_id]


async def test_operation_ids_get_status_updates_acknowledgements_and_reconciliation(
        tmp_path: Path):
    import asyncio

    from mesonb.frameworks.driver import SchedulerDriver
    from mesonb.http.client import HTTPError


    cluster = ProcessCluster(tmp_path, agents=1)
    fw = OperationsFramework()
    info = {"user": "tester", "name": "ops", "roles": ["db"],
            "capabilities": [{"type": "MULTI_ROLE"}]}
    driver = None
    try:
        await asyncio.to_thread(cluster.start)
        driver = SchedulerDriver(cluster.address, info, fw)
        await driver.start()
        offer = await until(lambda: fw.offers and fw.offers[-1], "an offer")
        # Without ids, an operation that cannot be done fails the whole ACCEPT (400).
        with pytest.raises(HTTPError) as refused:
            await driver.accept([offer["id"]["value"]], [
                {"type": "RESERVE", "reserve": {"resources": [disk(10, "db")]}},
                {"type": "CREATE_DISK", "create_disk": {"source": disk(10, "db")}}])
        assert refused.value.status == 400 and b"storage resource provider" in (
            refused.value.body or b"")
        await driver.accept([offer["id"]["value"]], [
            {"type": "RESERVE", "id": {"value": "r1"},
             "reserve": {"resources": [disk(100, "db")]}},
            {"type": "CREATE", "id": {"value": "c1"},
             "create": {"volumes": [vol("v1", 40)]}},
            {"type": "DESTROY_DISK", "id": {"value": "dd"},
             "destroy_disk": {"source": disk(1, "db")}}], refuse_seconds=0)
        await until(lambda: len(fw.operation_updates) >= 6, "six operation updates")
        assert fw.states("r1") == ["OPERATION_PENDING", "OPERATION_FINISHED"]
        assert fw.states("c1") == ["OPERATION_PENDING", "OPERATION_FINISHED"]
        assert fw.states("dd") == ["OPERATION_PENDING", "OPERATION_ERROR"]
        listed = call(cluster, {"type": "GET_OPERATIONS"}).json()["get_operations"]
        assert {o["info"]["id"]["value"] for o in listed["operations"]} == {"r1", "c1", "dd"}
        metrics = requests.get(cluster.url + "/metrics/snapshot", timeout=10).json()
        assert metrics["master/operations/reserve/finished"] == 1
        assert metrics["master/operations/create/finished"] == 1
        assert metrics["master/operations/destroy_disk/error"] == 1
        assert metrics["master/operations/total"] == 3
        finished = [s for s in fw.operation_updates if s["state"] == "OPERATION_FINISHED"]
        for status in finished:
            await driver.call("ACKNOWLEDGE_OPERATION_STATUS", {
                "agent_id": status["agent_id"], "operation_id": status["operation_id"],
                "uuid": status["uuid"]["value"]})
        listed = call(cluster, {"type": "GET_OPERATIONS"}).json()["get_operations"]
        assert [o["info"]["id"]["value"] for o in listed["operations"]] == ["dd"]
        seen = len(fw.operation_updates)
        await driver.call("RECONCILE_OPERATIONS", {"operations": [
            {"operation_id": {"value": "dd"}}, {"operation_id": {"value": "r1"}}]})
        await until(lambda: len(fw.operation_updates) >= seen + 2, "reconciliation")
        assert [(s["operation_id"]["value"], s["state"])
                for s in fw.operation_updates[seen:]] == [("dd", "OPERATION_ERROR"),
                                                          ("r1", "OPERATION_UNKNOWN")]
        assert has_volume(cluster, "v1")

        # A task group using the volume finds it in its own sandbox and writes through.
        with_volume = await until(lambda: next((o for o in fw.offers if any(
            (r.get("disk") or {}).get("persistence") for r in o["resources"])), None),
            "an offer holding the volume")
        [volume] = [r for r in with_volume["resources"] if r.get("disk")]
        plain = [{"name": n, "type": "SCALAR", "scalar": {"value": v}}
                 for n, v in (("cpus", 0.1), ("mem", 32))]
        await driver.accept([with_volume["id"]["value"]], [{"type": "LAUNCH_GROUP",
            "launch_group": {
                "executor": {"executor_id": {"value": "grp"}, "type": "DEFAULT",
                             "resources": plain},
                "task_group": {"tasks": [{
                    "name": "g", "task_id": {"value": "g"}, "agent_id": with_volume["agent_id"],
                    "command": {"value": "echo from-group > data/g.txt"},
                    "resources": [*plain, volume]}]}}}])
        await until(lambda: any(s["state"] == "TASK_FINISHED" for s in fw.task_updates),
                    "the group's task to finish")
        written = tmp_path / "agent0" / "volumes" / "roles" / "db" / "v1" / "g.txt"
        assert written.read_text() == "from-group\n"
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        if driver is not None:
            await driver.stop()
        await asyncio.to_thread(cluster.stop)


@pytest.mark.skipif(zookeeper_jar() is None, reason="ZooKeeper is not installed")
def test_a_new_leader_keeps_volumes_from_the_zookeeper_registry(tmp_path: Path):
    with ZooKeeperCluster(tmp_path).start() as ha:
        first = ha.start_master("m1")
        wait_for(lambda: leading(first), 20, what="m1 to lead")
        second = ha.start_master("m2")
        agent = ha.start_agent(resources="cpus:1;mem:512;disk:500")
        wait_for(lambda: active_agents(first) == 1, 20, what="the agent on m1")
        url = first.url + "/api/v1"
        [info] = requests.post(url, json={"type": "GET_AGENTS"}, headers=JSON,
                               timeout=10).json()["get_agents"]["agents"]
        agent_id = info["agent_info"]["id"]
        for body in ({"type": "RESERVE_RESOURCES", "reserve_resources": {
                         "agent_id": agent_id, "resources": [disk(200, "db")]}},
                     {"type": "CREATE_VOLUMES", "create_volumes": {
                         "agent_id": agent_id, "volumes": [vol("zk-vol", 50)]}}):
            answer = requests.post(url, json=body, headers=JSON, timeout=10)
            assert answer.status_code == 202, answer.text
        checkpoint = tmp_path / "agent" / "meta" / "resources" / "resources.json"
        wait_for(checkpoint.exists, 10, what="the agent's checkpoint")
        agent.kill()
        checkpoint.unlink()  # only the registry in ZooKeeper still knows the volume
        first.kill()
        wait_for(lambda: leading(second), 30, what="m2 to take over")
        ha.start_agent(resources="cpus:1;mem:512;disk:500")
        wait_for(lambda: active_agents(second) == 1, 30, what="the agent on m2")

        def volume_known() -> bool:
            body = requests.post(second.url + "/api/v1", json={"type": "GET_AGENTS"},
                                 headers=JSON, timeout=10).json()["get_agents"]
            return any((r.get("disk") or {}).get("persistence", {}).get("id") == "zk-vol"
                       for a in body["agents"] for r in a["total_resources"])

        wait_for(volume_known, 10, what="m2 to know the volume")
        wait_for(checkpoint.exists, 10, what="the agent to checkpoint it again")
        assert (tmp_path / "agent" / "volumes" / "roles" / "db" / "zk-vol").is_dir()
