"""Reservations, persistent volumes and operation feedback in the master (in memory, on a
fake clock): offers carry reserved resources to their role only, every offer operation
is carried out or refused visibly, and the agent is told what to checkpoint."""

from __future__ import annotations

from typing import Any

import pytest

from mesonb.protocol.agent import Register
from mesonb.protocol.errors import BadRequest, Forbidden
from mesonb.protocol.mesos import AgentInfo
from mesonb.protocol.reservations import flag_to_json
from mesonb.protocol.resources import Resources
from mesonb.security.acls import Acls
from mesonb.testing.harness import FrameworkEnd, MasterHarness, command_task


def reserved(name: str, value: float, role: str, principal: str | None = "ops",
             **extra: Any) -> dict[str, Any]:
    reservation: dict[str, Any] = {"type": "DYNAMIC", "role": role}
    if principal is not None:
        reservation["principal"] = principal
    return {"name": name, "type": "SCALAR", "scalar": {"value": value},
            "reservations": [reservation], **extra}


def volume(pid: str, size: float, role: str, path: str = "data", mode: str = "RW",
           principal: str | None = "ops") -> dict[str, Any]:
    return reserved("disk", size, role, principal, disk={
        "persistence": {"id": pid, "principal": principal or "ops"},
        "volume": {"container_path": path, "mode": mode}})


def op(kind: str, op_id: str | None = None, **body: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, **body}
    if op_id is not None:
        out["id"] = {"value": op_id}
    return out


def accept(fw: FrameworkEnd, offer: dict[str, Any], *ops: dict[str, Any]) -> None:
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": list(ops),
                              "filters": {"refuse_seconds": 0}})


def statuses(fw: FrameworkEnd) -> list[tuple[str, str, str]]:
    return [(e["update_operation_status"]["status"]["operation_id"]["value"],
             e["update_operation_status"]["status"]["state"],
             e["update_operation_status"]["status"].get("message", ""))
            for e in fw.take("UPDATE_OPERATION_STATUS")]


def by_kind(offer: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"unreserved": [], "reserved": [], "volumes": []}
    for r in offer["resources"]:
        if r.get("disk", {}).get("persistence"):
            out["volumes"].append(r)
        elif r.get("reservations"):
            out["reserved"].append(r)
        else:
            out["unreserved"].append(r)
    return out


def setup(resources: str = "cpus:4;mem:4096;disk:10000", **config: Any) -> tuple[
        MasterHarness, Any, FrameworkEnd]:
    h = MasterHarness(**config)
    agent = h.add_agent(resources)
    fw = h.subscribe("db", roles=["db"], capabilities=("MULTI_ROLE",), principal="ops")
    h.settle()
    return h, agent, fw


def test_static_reservations_keep_their_role_and_go_only_to_that_role():
    h = MasterHarness()
    h.add_agent("cpus:3;mem:1024;cpus(db):1;mem(db):256")
    other = h.subscribe("web", roles=["web"], capabilities=("MULTI_ROLE",))
    h.settle()
    web_offer = other.offers()[0]
    assert all(not r.get("reservations") for r in web_offer["resources"])
    assert {r["name"]: r["scalar"]["value"] for r in web_offer["resources"]} == {
        "cpus": 3.0, "mem": 1024.0}
    db = h.subscribe("db", roles=["db"], capabilities=("MULTI_ROLE",))
    h.settle()
    parts = by_kind(db.offers()[0])
    assert {r["name"]: r["scalar"]["value"] for r in parts["reserved"]} == {
        "cpus": 1.0, "mem": 256.0}
    for r in parts["reserved"]:
        assert r["reservations"] == [{"type": "STATIC", "role": "db"}]
        assert r["role"] == "db" and "reservation" not in r  # legacy fields, as Mesos fills
        assert r["allocation_info"] == {"role": "db"}
    agent_info = next(iter(h.master.book.agents.values())).info.to_json()
    assert any(r.get("role") == "db" for r in agent_info["resources"])


def test_reserve_with_an_id_reports_pending_then_finished_and_offers_it_reserved():
    h, agent, fw = setup()
    offer = fw.offers()[0]
    accept(fw, offer, op("RESERVE", "r1", reserve={"resources": [
        reserved("cpus", 1, "db"), reserved("mem", 512, "db")]}))
    assert [(i, s) for i, s, _ in statuses(fw)] == [("r1", "OPERATION_PENDING"),
                                                      ("r1", "OPERATION_FINISHED")]
    checkpoint = agent.commands("CHECKPOINT_RESOURCES")[-1]["checkpoint_resources"]
    assert {r["name"] for r in checkpoint["resources"]} == {"cpus", "mem"}
    h.settle()
    parts = by_kind(fw.offers()[-1])
    assert {r["name"]: r["scalar"]["value"] for r in parts["reserved"]} == {
        "cpus": 1.0, "mem": 512.0}
    r = parts["reserved"][0]
    assert r["reservations"] == [{"type": "DYNAMIC", "role": "db", "principal": "ops"}]
    assert r["reservation"] == {"principal": "ops"} and r["role"] == "db"
    # Another role is offered the unreserved rest only.
    web = h.subscribe("web", roles=["web"], capabilities=("MULTI_ROLE",))
    for offer_id in list(fw.record.offers):
        fw.call("DECLINE", decline={"offer_ids": [{"value": offer_id}],
                                    "filters": {"refuse_seconds": 60}})
    h.master.allocate()
    h.settle()
    [web_offer] = web.offers()
    assert {r["name"]: r["scalar"]["value"] for r in web_offer["resources"]
            if r["type"] == "SCALAR"} == {"cpus": 3.0, "mem": 3584.0, "disk": 10000.0}
    assert not any(x.get("reservations") for x in web_offer["resources"])


def test_an_operation_without_id_that_cannot_be_done_fails_the_accept_and_keeps_the_offer():
    h, _agent, fw = setup()
    offer = fw.offers()[0]
    with pytest.raises(BadRequest, match=r"RESERVE.*more than the unreserved"):
        accept(fw, offer, op("RESERVE", reserve={"resources": [reserved("cpus", 99, "db")]}))
    assert offer["id"]["value"] in h.master.book.offers  # nothing applied, still offered
    with pytest.raises(BadRequest, match="offered to role 'db'"):
        accept(fw, offer, op("RESERVE", reserve={"resources": [reserved("cpus", 1, "x")]}))
    with pytest.raises(BadRequest, match="storage resource provider"):
        accept(fw, offer, op("CREATE_DISK", create_disk={"source": {}}))
    assert not next(iter(h.master.book.agents.values())).ledger


def test_unsupported_and_failing_operations_with_an_id_get_operation_error():
    _h, _agent, fw = setup()
    offer = fw.offers()[0]
    accept(fw, offer,
           op("CREATE_DISK", "d1", create_disk={"source": {}}),
           op("UNRESERVE", "u1", unreserve={"resources": [reserved("cpus", 1, "db")]}),
           op("DESTROY", "x1", destroy={"volumes": [volume("nope", 10, "db")]}))
    got = {i: (s, m) for i, s, m in statuses(fw) if s != "OPERATION_PENDING"}
    assert got["d1"][0] == "OPERATION_ERROR" and "storage resource provider" in got["d1"][1]
    assert got["u1"][0] == "OPERATION_ERROR" and "not available" in got["u1"][1]
    assert got["x1"][0] == "OPERATION_ERROR" and "does not exist" in got["x1"][1]


def _reserve_and_create(h: MasterHarness, fw: FrameworkEnd) -> dict[str, Any]:
    accept(fw, fw.offers()[0], op("RESERVE", reserve={"resources": [
        reserved("cpus", 1, "db"), reserved("mem", 256, "db"), reserved("disk", 100, "db")]}),
        op("CREATE", "c1", create={"volumes": [volume("vol1", 64, "db")]}))
    h.settle()
    return fw.offers()[-1]


def test_create_offers_the_volume_and_a_task_holds_it_until_it_ends():
    h, agent, fw = setup()
    offer = _reserve_and_create(h, fw)
    assert [s for _, s, _ in statuses(fw)][-1] == "OPERATION_FINISHED"
    parts = by_kind(offer)
    [vol] = parts["volumes"]
    assert vol["disk"] == {"persistence": {"id": "vol1", "principal": "ops"},
                           "volume": {"container_path": "data", "mode": "RW"}}
    assert vol["scalar"]["value"] == 64
    assert {r["name"]: r["scalar"]["value"] for r in parts["reserved"]}["disk"] == 36
    task = command_task("t1", agent.agent_id, "cpus:0.5;mem:64")
    task["resources"].append(vol)
    accept(fw, offer, op("LAUNCH", launch={"task_infos": [task]}))
    run = agent.commands("RUN_TASK")[-1]["run_task"]
    assert any(r.get("disk") for r in run["task"]["resources"])
    h.settle()
    for o in fw.offers():  # the volume is in use: not offered
        assert not by_kind(o)["volumes"]
    # DESTROY while in use: refused, visibly.
    accept(fw, fw.offers(False)[-1] if fw.offers(False) else _offer(h, fw),
           op("DESTROY", "d1", destroy={"volumes": [vol]}))
    assert ("d1", "OPERATION_ERROR") in [(i, s) for i, s, _ in statuses(fw)]
    agent.update(fw.framework_id, "t1", _finished())
    h.settle()
    offer = _offer(h, fw)
    assert by_kind(offer)["volumes"]
    accept(fw, offer, op("DESTROY", "d2", destroy={"volumes": [vol]}))
    assert ("d2", "OPERATION_FINISHED") in [(i, s) for i, s, _ in statuses(fw)]
    assert agent.commands("CHECKPOINT_RESOURCES")[-1]["checkpoint_resources"]["resources"]
    assert not next(iter(h.master.book.agents.values())).ledger.reserved.volumes


def _finished() -> Any:
    from mesonb.protocol.states import TaskState
    return TaskState.TASK_FINISHED


def _offer(h: MasterHarness, fw: FrameworkEnd) -> dict[str, Any]:
    for offer_id in list(fw.record.offers):
        fw.call("DECLINE", decline={"offer_ids": [{"value": offer_id}],
                                    "filters": {"refuse_seconds": 0}})
    fw.take("OFFERS")
    h.master.allocate()
    h.settle()
    return fw.offers()[-1]


def test_a_task_using_reserved_resources_not_in_its_offer_gets_task_error():
    _h, agent, fw = setup()
    task = command_task("t1", agent.agent_id, "cpus:0.5;mem:64")
    task["resources"].append(volume("ghost", 10, "db"))
    accept(fw, fw.offers()[0], op("LAUNCH", launch={"task_infos": [task]}))
    [update] = fw.updates()
    assert update["state"] == "TASK_ERROR" and "ghost" in update["message"]


def test_grow_and_shrink_a_volume():
    h, _agent, fw = setup()
    offer = _reserve_and_create(h, fw)
    vol = by_kind(offer)["volumes"][0]
    accept(fw, offer, op("GROW_VOLUME", "g", grow_volume={
        "volume": vol, "addition": reserved("disk", 30, "db")}))
    assert ("g", "OPERATION_FINISHED") in [(i, s) for i, s, _ in statuses(fw)]
    h.settle()
    offer = _offer(h, fw)
    grown = by_kind(offer)["volumes"][0]
    assert grown["scalar"]["value"] == 94
    accept(fw, offer, op("SHRINK_VOLUME", "s", shrink_volume={
        "volume": grown, "subtract": {"value": 90}}))
    assert ("s", "OPERATION_FINISHED") in [(i, s) for i, s, _ in statuses(fw)]
    assert next(iter(h.master.book.agents.values())).ledger.reserved.volumes["vol1"].disk == 4


def test_unreserve_gives_resources_back_but_not_static_ones():
    h, _agent, fw = setup("cpus:4;mem:4096;cpus(db):1")
    offer = fw.offers()[0]
    with pytest.raises(BadRequest, match="STATIC"):
        accept(fw, offer, op("UNRESERVE", unreserve={"resources": [
            {**reserved("cpus", 1, "db"), "reservations": [{"type": "STATIC", "role": "db"}]}]}))
    accept(fw, offer, op("RESERVE", reserve={"resources": [reserved("mem", 100, "db")]}))
    h.settle()
    offer = fw.offers()[-1]
    accept(fw, offer, op("UNRESERVE", "u", unreserve={"resources": [reserved("mem", 100, "db")]}))
    assert ("u", "OPERATION_FINISHED") in [(i, s) for i, s, _ in statuses(fw)]
    ledger = next(iter(h.master.book.agents.values())).ledger
    assert [k.type for k in ledger.reserved.reserved] == ["STATIC"]


def test_acknowledge_and_reconcile_operations():
    h, _agent, fw = setup()
    accept(fw, fw.offers()[0], op("RESERVE", "r1", reserve={"resources": [
        reserved("cpus", 1, "db")]}))
    events = fw.take("UPDATE_OPERATION_STATUS")
    final = events[-1]["update_operation_status"]["status"]
    assert final["state"] == "OPERATION_FINISHED" and final["uuid"]["value"]
    assert final["converted_resources"] == [reserved("cpus", 1, "db")]
    assert "uuid" not in events[0]["update_operation_status"]["status"]  # PENDING: no ack
    fw.call("RECONCILE_OPERATIONS", reconcile_operations={"operations": [
        {"operation_id": {"value": "r1"}}, {"operation_id": {"value": "zz"}}]})
    got = [e["update_operation_status"]["status"] for e in fw.take("UPDATE_OPERATION_STATUS")]
    assert [(s["operation_id"]["value"], s["state"]) for s in got] == [
        ("r1", "OPERATION_FINISHED"), ("zz", "OPERATION_UNKNOWN")]
    assert h.master.operation_statuses.to_json()[0]["info"]["type"] == "RESERVE"
    with pytest.raises(BadRequest, match="uuid"):
        fw.call("ACKNOWLEDGE_OPERATION_STATUS", acknowledge_operation_status={
            "operation_id": {"value": "r1"}, "uuid": "bm9wZQ=="})
    fw.call("ACKNOWLEDGE_OPERATION_STATUS", acknowledge_operation_status={
        "operation_id": {"value": "r1"}, "uuid": final["uuid"]["value"],
        "agent_id": final["agent_id"]})
    assert h.master.operation_statuses.to_json() == []
    fw.call("RECONCILE_OPERATIONS", reconcile_operations={"operations": []})
    assert fw.take("UPDATE_OPERATION_STATUS") == []


def test_acls_refuse_reservations_visibly():
    h, _agent, fw = setup()
    h.master.acls = Acls.parse({"permissive": True, "reserve_resources": [
        {"principals": {"values": ["ops"]}, "roles": {"type": "NONE"}}]})
    offer = fw.offers()[0]
    with pytest.raises(Forbidden):
        accept(fw, offer, op("RESERVE", reserve={"resources": [reserved("cpus", 1, "db")]}))
    accept(fw, offer, op("RESERVE", "r", reserve={"resources": [reserved("cpus", 1, "db")]}))
    [(_, state, message)] = [s for s in statuses(fw) if s[1] != "OPERATION_PENDING"]
    assert state == "OPERATION_ERROR" and "reserve" in message.lower()


def test_a_new_master_keeps_the_reservations_the_registry_held():
    h, agent, fw = setup()
    accept(fw, fw.offers()[0], op("RESERVE", reserve={"resources": [
        reserved("cpus", 1, "db"), reserved("disk", 50, "db")]}),
        op("CREATE", create={"volumes": [volume("v", 20, "db")]}))
    record = next(iter(h.master.book.agents.values())).info.to_json()
    # A new leader recovered this AgentInfo from the registry; the agent lost its checkpoint.
    h2 = MasterHarness()
    h2.master.recovered_agents[agent.agent_id] = record
    end = h2.add_agent("cpus:4;mem:4096;disk:10000", agent_id=agent.agent_id)
    ledger = h2.master.book.agents[agent.agent_id].ledger
    assert set(ledger.reserved.volumes) == {"v"}
    [fix] = end.commands("CHECKPOINT_RESOURCES")
    assert any(r.get("disk") for r in fix["checkpoint_resources"]["resources"])


def test_a_task_cannot_take_reserved_resources_as_unreserved_ones():
    h, agent, fw = setup("cpus:1;mem:1024;cpus(db):1")
    offer = fw.offers()[0]
    greedy = command_task("greedy", agent.agent_id, "cpus:1.5;mem:64")  # 1 unreserved cpu
    fine = command_task("fine", agent.agent_id, "cpus:0.5;mem:64")
    fine["resources"].append({**reserved("cpus", 1, "db"),
                              "reservations": [{"type": "STATIC", "role": "db"}]})
    accept(fw, offer, op("LAUNCH", launch={"task_infos": [greedy, fine]}))
    [update] = fw.updates()
    assert update["task_id"]["value"] == "greedy" and update["state"] == "TASK_ERROR"
    assert "unreserved" in update["message"]
    assert [c["run_task"]["task"]["task_id"]["value"]
            for c in agent.commands("RUN_TASK")] == ["fine"]
    h.settle()
    for o in fw.offers():  # the reservation is in use by "fine": not offered again
        assert not by_kind(o)["reserved"]


def test_a_launch_before_a_reserve_in_the_same_accept_counts_in_the_check():
    _h, agent, fw = setup("cpus:2;mem:1024")
    offer = fw.offers()[0]
    task = command_task("t", agent.agent_id, "cpus:1.5;mem:64")
    with pytest.raises(BadRequest, match="RESERVE"):
        accept(fw, offer, op("LAUNCH", launch={"task_infos": [task]}),
               op("RESERVE", reserve={"resources": [reserved("cpus", 1, "db")]}))
    assert fw.updates() == [] and not agent.commands("RUN_TASK")  # nothing happened


def test_a_volume_on_statically_reserved_disk_is_counted_once_across_registrations():
    h = MasterHarness()
    agent = h.add_agent("cpus:2;mem:1024;disk(db):100")
    fw = h.subscribe("db", roles=["db"], capabilities=("MULTI_ROLE",))
    h.settle()
    static_vol = {**volume("s", 40, "db"), "reservations": [{"type": "STATIC", "role": "db"}]}
    accept(fw, fw.offers()[0], op("CREATE", create={"volumes": [static_vol]}))
    record = h.master.book.agents[agent.agent_id]
    assert record.ledger.reserved.total() == Resources({"disk": 100})
    # The agent re-registers reporting its flag's reservation and its checkpoint.
    checkpointed = agent.commands("CHECKPOINT_RESOURCES")[-1]["checkpoint_resources"]
    reported = [r for r in flag_to_json("cpus:2;mem:1024;disk(db):60")] + checkpointed[
        "resources"]
    h.master.agents.register(Register.from_json(Register(
        agent_info=AgentInfo(hostname="agent.local", port=5051, resources=reported),
        version="1.11.0", agent_id=agent.agent_id).to_json()), agent.send, agent.close)
    ledger = h.master.book.agents[agent.agent_id].ledger
    assert ledger.reserved.total() == Resources({"disk": 100})
    assert set(ledger.reserved.volumes) == {"s"}


def test_operations_on_offers_no_longer_valid_are_dropped_visibly():
    h, _agent, fw = setup()
    offer = fw.offers()[0]
    fw.call("DECLINE", decline={"offer_ids": [offer["id"]]})
    accept(fw, offer, op("RESERVE", "late", reserve={"resources": [reserved("cpus", 1, "db")]}))
    [(op_id, state, message)] = statuses(fw)
    assert (op_id, state) == ("late", "OPERATION_DROPPED") and "no longer valid" in message
    with pytest.raises(BadRequest, match="no longer valid"):  # without an id: refused
        accept(fw, offer, op("RESERVE", reserve={"resources": [reserved("cpus", 1, "db")]}))
    assert not h.master.book.agents[_agent.agent_id].ledger
