"""Quota through the master: limits the allocator enforces, the calls' checks, persistence."""

from __future__ import annotations

from typing import Any

import pytest
from operator_support import operator

from mesonb.allocator.drf import allocate
from mesonb.allocator.snapshot import AgentView, FrameworkView, Snapshot
from mesonb.master.registry import MemoryStore, Registry
from mesonb.protocol.errors import BadRequest, Conflict
from mesonb.protocol.resources import Resources
from mesonb.protocol.states import TaskState
from mesonb.testing.harness import MasterHarness, command_task


def limit(role: str, **limits: float) -> dict[str, Any]:
    return {"role": role, "limits": {k: {"value": v} for k, v in limits.items()}}


def offered_cpus(offers: list[dict[str, Any]]) -> float:
    return sum(r["scalar"]["value"] for o in offers for r in o["resources"]
               if r["name"] == "cpus")


def test_the_allocator_never_offers_a_role_beyond_its_limit_and_sub_roles_count():
    agents = [AgentView(f"a{i}", f"h{i}", Resources({"cpus": 4, "mem": 1024}),
                        Resources({"cpus": 4, "mem": 1024})) for i in range(3)]
    frameworks = [FrameworkView("dev", ("eng/dev",), Resources({"cpus": 1})),
                  FrameworkView("web", ("web",), Resources())]
    snapshot = Snapshot(agents, frameworks, Resources({"cpus": 12, "mem": 3072}),
                        quota_limits={"eng": {"cpus": 3.0, "mem": 1024.0}})
    result = allocate(snapshot, 0.0)
    (dev,) = [d.resources for d in result.offers if d.framework_id == "dev"]
    assert dev.scalars == {"cpus": 2.0, "mem": 1024.0}  # 3 cpus minus the 1 it holds
    web = [d.resources for d in result.offers if d.framework_id == "web"]
    assert web == [Resources({"cpus": 4, "mem": 1024})] * 2  # the agents dev may not take
    counts = result.why_not.frameworks["dev"]
    # web (share 0) goes first on one agent; on the next dev is at its limit
    assert counts["offered"] == 1 and counts["quota_limit"] >= 1
    assert counts["offered"] + counts["quota_limit"] + counts["lost_to_lower_share"] == 3


def test_a_limit_on_one_resource_leaves_the_others_offered():
    agents = [AgentView("a", "h", Resources({"cpus": 4, "mem": 1024}),
                        Resources({"cpus": 4, "mem": 1024}))]
    frameworks = [FrameworkView("dev", ("dev",), Resources({"cpus": 2}))]
    snapshot = Snapshot(agents, frameworks, Resources({"cpus": 4, "mem": 1024}),
                        quota_limits={"dev": {"cpus": 2.0}})
    (decision,) = allocate(snapshot, 0.0).offers
    assert decision.resources.scalars == {"mem": 1024.0}  # as Mesos: no cpus, mem unlimited


def test_a_role_at_its_limit_gets_no_offers_until_its_tasks_end():
    h = MasterHarness()
    agent = h.add_agent("cpus:4;mem:4096")
    operator(h.master, "UPDATE_QUOTA", update_quota={"quota_configs": [limit("dev", cpus=1)]})
    fw = h.subscribe(roles=["dev"], capabilities=("MULTI_ROLE",))
    h.settle()
    (offer,) = fw.offers()
    assert offered_cpus([offer]) == 1.0
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [
            command_task("t", agent.agent_id, "cpus:1;mem:128")]}}],
        "filters": {"refuse_seconds": 0}})
    agent.update(fw.framework_id, "t", TaskState.TASK_RUNNING)
    h.advance(1.0)
    # At its cpus limit: no more cpus, though 3 are free (mem has no limit: still offered).
    assert offered_cpus(fw.offers()) == 0
    agent.update(fw.framework_id, "t", TaskState.TASK_FINISHED)
    h.advance(1.0)
    assert offered_cpus(fw.offers()) == 1.0


def test_lowering_a_limit_takes_outstanding_offers_back():
    h = MasterHarness()
    h.add_agent("cpus:4;mem:4096")
    fw = h.subscribe(roles=["dev"], capabilities=("MULTI_ROLE",))
    h.settle()
    assert offered_cpus(fw.offers()) == 4.0
    operator(h.master, "UPDATE_QUOTA", update_quota={"quota_configs": [limit("dev", cpus=2)]})
    assert len(fw.take("RESCIND")) == 1
    h.settle()
    assert offered_cpus(fw.offers()) == 2.0


def test_update_quota_checks_all_or_nothing():
    h = MasterHarness()
    agent = h.add_agent("cpus:4;mem:4096")
    fw = h.subscribe(roles=["dev"], capabilities=("MULTI_ROLE",))
    h.settle()
    (offer,) = fw.offers()
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [
            command_task("t", agent.agent_id, "cpus:2;mem:128")]}}]})
    bad = [
        ({"quota_configs": [limit("*", cpus=1)]}, "'*' role"),
        ({"quota_configs": [{"role": "a", "guarantees": {"cpus": {"value": 2}},
                             "limits": {"cpus": {"value": 1}}}]}, "exceeds limit"),
        ({"quota_configs": [limit("a", cpus=-1)]}, "non-negative"),
        ({"quota_configs": [limit("ok", cpus=1), limit("dev", cpus=1)]}, "already consuming"),
        ({"quota_configs": [limit("eng", cpus=1), limit("eng/x", cpus=2)]}, "parent role"),
        ({"quota_configs": "x"}, "list"),
    ]
    for body, words in bad:
        with pytest.raises(BadRequest, match=words):
            operator(h.master, "UPDATE_QUOTA", update_quota=body)
    assert h.master.quotas.configs == {}  # nothing applied, not even the valid "ok"
    operator(h.master, "UPDATE_QUOTA", update_quota={
        "force": True, "quota_configs": [limit("dev", cpus=1)]})
    status = operator(h.master, "GET_QUOTA")["status"]
    assert status["configs"] == [{"role": "dev", "limits": {"cpus": {"value": 1.0}}}]
    roles = {r["name"]: r for r in operator(h.master, "GET_ROLES")["roles"]}
    assert roles["dev"]["quota"]["limit"] == [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0}}]
    assert {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0}} in \
        roles["dev"]["quota"]["consumed"]


def test_set_and_remove_quota_the_older_calls():
    h = MasterHarness()
    request = {"role": "ml", "guarantee": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}}]}
    with pytest.raises(Conflict, match="exceed the cluster"):  # no agent yet: no cpus
        operator(h.master, "SET_QUOTA", set_quota={"quota_request": request})
    h.add_agent("cpus:4;mem:1024")
    operator(h.master, "SET_QUOTA", set_quota={"quota_request": request})
    config = h.master.quotas.configs["ml"]
    assert config.limits == config.guarantees == {"cpus": 2.0}
    info = operator(h.master, "GET_QUOTA")["status"]["infos"]
    assert info == [{"role": "ml", "guarantee": request["guarantee"] and [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0}}]}]
    with pytest.raises(BadRequest, match="already has quota"):
        operator(h.master, "SET_QUOTA", set_quota={"quota_request": request})
    operator(h.master, "REMOVE_QUOTA", remove_quota={"role": "ml"})
    assert h.master.quotas.configs == {}
    with pytest.raises(BadRequest, match="no quota"):
        operator(h.master, "REMOVE_QUOTA", remove_quota={"role": "ml"})


def test_quota_weights_and_the_schedule_survive_a_new_leader():
    store = MemoryStore()
    first = MasterHarness()
    first.master.registry = registry = Registry(store)
    operator(first.master, "UPDATE_QUOTA",
             update_quota={"quota_configs": [limit("dev", cpus=3, mem=512)]})
    first.master.role_weights["dev"] = 2.5
    from mesonb.master import settings

    settings.save(first.master, settings.WEIGHTS)
    operator(first.master, "UPDATE_MAINTENANCE_SCHEDULE", update_maintenance_schedule={
        "schedule": {"windows": [{"machine_ids": [{"hostname": "Box1"}],
                                  "unavailability": {"start": {"nanoseconds": 5}}}]}})
    registry.flush(5)
    registry.close()

    second = MasterHarness()
    recovered = Registry(store)
    second.master.recover(recovered.recover().result(5))
    assert second.master.quotas.limits() == {"dev": {"cpus": 3.0, "mem": 512.0}}
    assert second.master.role_weights == {"dev": 2.5}
    assert operator(second.master, "GET_MAINTENANCE_SCHEDULE")["schedule"] == {"windows": [
        {"machine_ids": [{"hostname": "box1"}],
         "unavailability": {"start": {"nanoseconds": 5}}}]}
    recovered.close()


def test_the_acls_decide_who_sets_and_who_sees_quota():
    from types import SimpleNamespace

    from mesonb.http.base import Security
    from mesonb.master.http.operator_maintenance import MAINTENANCE_CALLS
    from mesonb.protocol.errors import Forbidden
    from mesonb.protocol.operator import Call, CallType
    from mesonb.security.acls import Acls

    h = MasterHarness()
    acls = Acls.parse({"permissive": False,
                       "update_quotas": [{"principals": {"values": ["ops"]},
                                          "roles": {"type": "ANY"}}],
                       "get_quotas": [{"principals": {"values": ["dev"]},
                                       "roles": {"values": ["dev"]}}]})

    def call(principal: str, kind: str, **body: Any) -> Any:
        caller = SimpleNamespace(master=h.master, security=Security(acls=acls),
                                 principal=principal)
        return MAINTENANCE_CALLS[CallType(kind)](caller, Call.from_json({"type": kind, **body}))

    update = {"quota_configs": [limit("dev", cpus=1), limit("ml", cpus=1)]}
    with pytest.raises(Forbidden):
        call("dev", "UPDATE_QUOTA", update_quota=update)
    assert h.master.quotas.configs == {}
    call("ops", "UPDATE_QUOTA", update_quota=update)
    seen = call("dev", "GET_QUOTA")["status"]["configs"]
    assert [c["role"] for c in seen] == ["dev"]  # ml is left out, not refused
    with pytest.raises(Forbidden):
        call("dev", "DRAIN_AGENT", drain_agent={"agent_id": {"value": "x"}})
