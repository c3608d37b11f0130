"""Mesos fidelity of operator reservations with real master and agent processes: an
operator call rescinds only the offers holding what it needs, and reserved resources
count against a role's quota."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import requests

from mesonb.testing.processes import ProcessCluster, until

pytestmark = pytest.mark.slow
JSON = {"Content-Type": "application/json", "Accept": "application/json"}


def call(cluster: ProcessCluster, body: dict[str, Any]) -> requests.Response:
    return requests.post(cluster.url + "/api/v1", json=body, headers=JSON, timeout=10)


def disk(value: float, role: str) -> dict[str, Any]:
    return {"name": "disk", "type": "SCALAR", "scalar": {"value": value},
            "reservations": [{"type": "DYNAMIC", "role": role, "principal": "ops"}]}


def reserve(cluster: ProcessCluster, agent_id: str, kind: str,
            resources: list[dict[str, Any]]) -> requests.Response:
    field = kind.lower()
    return call(cluster, {"type": kind, field: {"agent_id": {"value": agent_id},
                                                "resources": resources}})


class Recorder:
    """Offers and rescinds one framework sees."""

    def __init__(self) -> None:
        self.offers: list[dict[str, Any]] = []
        self.rescinded: list[str] = []

    def on_offers(self, offers: list[dict[str, Any]]) -> None:
        self.offers.extend(offers)

    def on_rescind(self, offer_id: str) -> None:
        self.rescinded.append(offer_id)

    def outstanding(self) -> list[str]:
        return [o["id"]["value"] for o in self.offers if o["id"]["value"] not in self.rescinded]




async def test_operator_calls_rescind_only_the_offers_holding_what_they_need(tmp_path: Path):
    from mesonb.frameworks.driver import SchedulerDriver

    cluster = ProcessCluster(tmp_path, agents=1, agent_resources="cpus:2;mem:1024;disk:1024")
    drivers: list[SchedulerDriver] = []
    try:
        await asyncio.to_thread(cluster.start)
        [agent] = await asyncio.to_thread(cluster.wait_agents, 1)
        for role in ("db", "web"):
            answer = reserve(cluster, agent["id"], "RESERVE_RESOURCES", [disk(100, role)])
            assert answer.status_code == 202, answer.text
        frameworks = {}
        for role in ("db", "web"):
            fw = Recorder()
            info = {"user": "tester", "name": role, "roles": [role],
                    "capabilities": [{"type": "MULTI_ROLE"}]}
            driver = SchedulerDriver(cluster.address, info, fw)
            drivers.append(driver)
            await driver.start()
            await until(fw.outstanding, f"an offer to {role}")
            frameworks[role] = fw
        db, web = frameworks["db"], frameworks["web"]
        db_offers, web_offers = db.outstanding(), web.outstanding()

        # web's reservation is only in web's offer: db keeps its offer.
        answer = reserve(cluster, agent["id"], "UNRESERVE_RESOURCES", [disk(100, "web")])
        assert answer.status_code == 202, answer.text
        await until(lambda: set(web_offers) <= set(web.rescinded), "web's offer rescinded")
        assert db.rescinded == [] and db.outstanding() == db_offers

        # db's reservation is in db's offer: that one goes.
        answer = reserve(cluster, agent["id"], "UNRESERVE_RESOURCES", [disk(100, "db")])
        assert answer.status_code == 202, answer.text
        await until(lambda: set(db_offers) <= set(db.rescinded), "db's offer rescinded")

        # More than the agent has: refused with 409 once no offer can help.
        answer = reserve(cluster, agent["id"], "RESERVE_RESOURCES", [disk(5000, "db")])
        assert answer.status_code == 409 and "more than" in answer.text, answer.text
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        for driver in drivers:
            await driver.stop()
        cluster.stop()


def cpus(value: float, role: str) -> dict[str, Any]:
    return {"name": "cpus", "type": "SCALAR", "scalar": {"value": value},
            "reservations": [{"type": "DYNAMIC", "role": role, "principal": "ops"}]}


def quota(cluster: ProcessCluster, role: str, limit: float) -> requests.Response:
    return call(cluster, {"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [
        {"role": role, "limits": {"cpus": {"value": limit}}}]}})


def offered_cpus(offer: dict[str, Any]) -> tuple[float, float]:
    """(reserved, unreserved) cpus in one offer."""
    reserved = unreserved = 0.0
    for r in offer["resources"]:
        if r["name"] == "cpus":
            if r.get("reservations"):
                reserved += r["scalar"]["value"]
            else:
                unreserved += r["scalar"]["value"]
    return reserved, unreserved


async def test_reservations_count_against_quota_in_the_check_and_in_offers(tmp_path: Path):
    from mesonb.frameworks.driver import SchedulerDriver

    cluster = ProcessCluster(tmp_path, agents=1, agent_resources="cpus:6;mem:1024;disk:1024")
    driver = None
    try:
        await asyncio.to_thread(cluster.start)
        [agent] = await asyncio.to_thread(cluster.wait_agents, 1)
        answer = reserve(cluster, agent["id"], "RESERVE_RESOURCES", [cpus(3, "db")])
        assert answer.status_code == 202, answer.text
        # UPDATE_QUOTA's check: db consumes its 3 reserved cpus, no task needed.
        answer = quota(cluster, "db", 2)
        assert answer.status_code == 400 and "consuming 'cpus:3'" in answer.text, answer.text
        answer = quota(cluster, "db", 4)
        assert answer.status_code == 200, answer.text
        # The allocator: 3 reserved cpus offered, and only 1 unreserved of the 3 free.
        fw = Recorder()
        info = {"user": "tester", "name": "db", "roles": ["db"],
                "capabilities": [{"type": "MULTI_ROLE"}]}
        driver = SchedulerDriver(cluster.address, info, fw)
        await driver.start()
        await until(fw.outstanding, "an offer to db")
        assert [offered_cpus(o) for o in fw.offers] == [(3.0, 1.0)]
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        if driver is not None:
            await driver.stop()
        cluster.stop()


class Operations(Recorder):
    """Offers, rescinds and operation status updates."""

    def __init__(self) -> None:
        super().__init__()
        self.operation_states: dict[str, list[str]] = {}

    def on_update_operation_status(self, body: dict[str, Any]) -> None:
        status = body["status"]
        self.operation_states.setdefault(status["operation_id"]["value"], []).append(
            status["state"])


def stacks(resources: list[dict[str, Any]], name: str = "cpus") -> dict[tuple[str, ...], float]:
    """Reserved ``name`` by reservation stack (its roles, bottom first)."""
    out: dict[tuple[str, ...], float] = {}
    for r in resources:
        if r["name"] == name and r.get("reservations"):
            key = tuple(e["role"] for e in r["reservations"])
            out[key] = out.get(key, 0.0) + r["scalar"]["value"]
    return out


def refined(value: float) -> dict[str, Any]:
    item = cpus(value, "eng")
    item["reservations"].append({"type": "DYNAMIC", "role": "eng/dev", "principal": "ops"})
    return item


async def test_a_sub_role_refines_its_parents_reservation_and_unreserve_pops_it(
        tmp_path: Path):
    from mesonb.frameworks.driver import SchedulerDriver

    cluster = ProcessCluster(tmp_path, agents=1, agent_resources="cpus:4;mem:1024;disk:1024")
    driver = None
    try:
        await asyncio.to_thread(cluster.start)
        [agent] = await asyncio.to_thread(cluster.wait_agents, 1)
        answer = reserve(cluster, agent["id"], "RESERVE_RESOURCES", [cpus(3, "eng")])
        assert answer.status_code == 202, answer.text
        fw = Operations()
        info = {"user": "tester", "name": "dev", "roles": ["eng/dev"],
                "capabilities": [{"type": "MULTI_ROLE"}]}
        driver = SchedulerDriver(cluster.address, info, fw)
        await driver.start()
        # eng's reservation is offered to eng/dev (a sub-role), allocated to eng/dev.
        offer = (await until(fw.outstanding, "an offer to eng/dev")) and fw.offers[-1]
        assert stacks(offer["resources"]) == {("eng",): 3.0}
        assert offer["allocation_info"] == {"role": "eng/dev"}
        # The framework refines 2 of them: pushed on eng's reservation.
        await driver.accept([offer["id"]["value"]], [
            {"type": "RESERVE", "id": {"value": "push"},
             "reserve": {"resources": [refined(2)]}}], refuse_seconds=0)
        await until(lambda: "OPERATION_FINISHED" in fw.operation_states.get("push", []),
                    "the refinement")
        await until(lambda: len(fw.outstanding()) and stacks(fw.offers[-1]["resources"]) == {
            ("eng",): 1.0, ("eng", "eng/dev"): 2.0}, "an offer carrying the stack")
        state = requests.get(cluster.url + "/master/slaves", timeout=10).json()["slaves"][0]
        assert state["reserved_resources"]["eng"]["cpus"] == 1.0
        assert state["reserved_resources"]["eng/dev"]["cpus"] == 2.0

        # The agent keeps the stack across a restart (its checkpoint).
        cluster.agents[0].stop()
        cluster.agents.clear()
        cluster.start_agent(0)
        await asyncio.to_thread(cluster.wait_agents, 1)
        checkpoint = (tmp_path / "agent0" / "meta" / "resources" / "resources.json")
        assert '"eng/dev"' in checkpoint.read_text()
        agent_state = requests.get(cluster.agents[0].url + "/state", timeout=10).json()
        assert agent_state["reserved_resources"]["eng/dev"]["cpus"] == 2.0

        # UNRESERVE pops eng/dev: the cpus go back to eng, not to the unreserved pool.
        answer = reserve(cluster, agent["id"], "UNRESERVE_RESOURCES", [refined(2)])
        assert answer.status_code == 202, answer.text
        body = call(cluster, {"type": "GET_AGENTS"}).json()["get_agents"]["agents"][0]
        assert stacks(body["total_resources"]) == {("eng",): 3.0}
        answer = reserve(cluster, agent["id"], "UNRESERVE_RESOURCES", [refined(1)])
        assert answer.status_code == 409, answer.text
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        if driver is not None:
            await driver.stop()
        cluster.stop()
