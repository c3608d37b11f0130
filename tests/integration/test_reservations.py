"""Reservations and persistent volumes with a real master and a real agent (processes):
the operator calls, the agent's checkpoint and volume directories, and both surviving an
agent restart and a master restart on its registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from mesonb.testing.processes import Daemon, ProcessCluster, wait_for

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
