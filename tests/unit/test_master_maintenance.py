"""Maintenance through the master: inverse offers, answers, machines DOWN and UP, drains."""

from __future__ import annotations

from typing import Any

import pytest
from operator_support import operator

from mesonb.master.book import AgentState
from mesonb.protocol.errors import BadRequest, NotFound
from mesonb.protocol.states import TaskState
from mesonb.testing.harness import AgentEnd, FrameworkEnd, MasterHarness, command_task


def window(*hosts: str, start: int = 10**18) -> dict[str, Any]:
    return {"machine_ids": [{"hostname": h} for h in hosts],
            "unavailability": {"start": {"nanoseconds": start},
                               "duration": {"nanoseconds": 3600 * 10**9}}}


def schedule(h: MasterHarness, *windows: dict[str, Any]) -> None:
    operator(h.master, "UPDATE_MAINTENANCE_SCHEDULE",
             update_maintenance_schedule={"schedule": {"windows": list(windows)}})


def running_task(h: MasterHarness, agent: AgentEnd, fw: FrameworkEnd, task_id: str,
                 **task: Any) -> None:
    fw.take("OFFERS")
    offers = [o for o in h.master.book.offers.values()
              if o.agent_id == agent.agent_id and o.framework_id == fw.framework_id]
    info = {**command_task(task_id, agent.agent_id, "cpus:1;mem:128"), **task}
    fw.call("ACCEPT", accept={"offer_ids": [{"value": offers[0].id}], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [info]}}], "filters": {"refuse_seconds": 0}})
    agent.update(fw.framework_id, task_id, TaskState.TASK_RUNNING)
    h.settle()


def status(h: MasterHarness) -> dict[str, Any]:
    return operator(h.master, "GET_MAINTENANCE_STATUS")["status"]


def setup() -> tuple[MasterHarness, AgentEnd, AgentEnd, FrameworkEnd]:
    h = MasterHarness()
    box1 = h.add_agent("cpus:2;mem:1024", hostname="box1")
    box2 = h.add_agent("cpus:2;mem:1024", hostname="box2")
    fw = h.subscribe()
    h.settle()
    running_task(h, box1, fw, "t1")
    fw.take()
    return h, box1, box2, fw


def test_frameworks_with_tasks_on_draining_machines_get_inverse_offers_and_answer_them():
    h, box1, _box2, fw = setup()
    idle = h.subscribe("idle")
    schedule(h, window("BOX1", "box2"))
    (event,) = fw.take("INVERSE_OFFERS")
    # A task on box1; on box2 only an outstanding offer, which counts as allocated too.
    by_agent = {io["agent_id"]["value"]: io for io in event["inverse_offers"]["inverse_offers"]}
    assert set(by_agent) == {box1.agent_id, _box2.agent_id}
    inverse = by_agent[box1.agent_id]
    assert inverse["framework_id"]["value"] == fw.framework_id
    assert inverse["unavailability"]["start"] == {"nanoseconds": 10**18}
    assert idle.of_type("INVERSE_OFFERS") == []  # nothing on those machines
    (draining1, draining2) = status(h)["draining_machines"]
    assert draining1["id"] == {"hostname": "box1"}
    assert [s["status"] for s in draining1["statuses"]] == ["UNKNOWN"]
    assert [s["status"] for s in draining2["statuses"]] == ["UNKNOWN"]
    h.advance(2.0)
    assert fw.of_type("INVERSE_OFFERS") == []  # one outstanding per agent, not one a tick
    fw.call("DECLINE_INVERSE_OFFERS", decline_inverse_offers={
        "inverse_offer_ids": [inverse["id"]], "filters": {}})
    (answer,) = status(h)["draining_machines"][0]["statuses"]
    assert answer["status"] == "DECLINE"
    assert answer["framework_id"]["value"] == fw.framework_id
    with pytest.raises(BadRequest, match="inverse_offer_ids"):
        fw.call("ACCEPT_INVERSE_OFFERS", accept_inverse_offers={"inverse_offer_ids": "x"})
    h.advance(2.0)
    assert fw.of_type("INVERSE_OFFERS") == []  # answered: filtered for 5 s (the default)
    h.advance(4.0)
    (again,) = fw.take("INVERSE_OFFERS")  # still holding resources there: asked again
    assert again["inverse_offers"]["inverse_offers"][0]["id"] != inverse["id"]
    (answer,) = status(h)["draining_machines"][0]["statuses"]
    assert answer["status"] == "DECLINE"  # its last answer stands meanwhile
    with pytest.raises(BadRequest, match="refuse_seconds"):
        fw.call("ACCEPT_INVERSE_OFFERS", accept_inverse_offers={
            "inverse_offer_ids": [], "filters": {"refuse_seconds": -1}})


def test_a_changed_window_rescinds_outstanding_inverse_offers_and_asks_again():
    h, _box1, _box2, fw = setup()
    schedule(h, window("box1"))
    (event,) = fw.take("INVERSE_OFFERS")
    first = event["inverse_offers"]["inverse_offers"][0]["id"]
    schedule(h, window("box1", start=5 * 10**18))
    (rescind,) = fw.take("RESCIND_INVERSE_OFFER")
    assert rescind["rescind_inverse_offer"]["inverse_offer_id"] == first
    (again,) = fw.take("INVERSE_OFFERS")
    assert again["inverse_offers"]["inverse_offers"][0]["unavailability"]["start"] == {
        "nanoseconds": 5 * 10**18}
    fw.call("ACCEPT_INVERSE_OFFERS", accept_inverse_offers={
        "inverse_offer_ids": [again["inverse_offers"]["inverse_offers"][0]["id"]]})
    assert status(h)["draining_machines"][0]["statuses"][0]["status"] == "ACCEPT"
    schedule(h)  # the machine leaves the schedule: UP, its answers forgotten
    assert status(h) == {"draining_machines": [], "down_machines": []}


def test_machines_go_down_removing_their_agents_and_come_back_up():
    h, box1, box2, fw = setup()
    schedule(h, window("box1"))
    fw.take()
    with pytest.raises(BadRequest, match="not part of a maintenance schedule"):
        operator(h.master, "START_MAINTENANCE", start_maintenance={
            "machines": [{"hostname": "box2"}]})
    operator(h.master, "START_MAINTENANCE", start_maintenance={
        "machines": [{"hostname": "box1"}]})
    assert status(h) == {"draining_machines": [], "down_machines": [{"hostname": "box1"}]}
    (shutdown,) = box1.of_type("SHUTDOWN")
    assert "Machine DOWN" in shutdown["shutdown"]["message"]
    assert box1.agent_id not in h.master.book.agents
    (update,) = fw.updates()
    assert update["state"] == "TASK_LOST" and update["reason"] == "REASON_AGENT_REMOVED"
    assert fw.of_type("FAILURE")
    # An agent on a DOWN machine may not register; nor may the machine leave the schedule.
    again = h.add_agent("cpus:2;mem:1024", hostname="box1")
    assert again.of_type("SHUTDOWN") and again.closed
    with pytest.raises(BadRequest, match="is DOWN"):
        schedule(h)
    with pytest.raises(BadRequest, match="not in DOWN mode"):
        operator(h.master, "STOP_MAINTENANCE", stop_maintenance={
            "machines": [{"hostname": "box2"}]})
    operator(h.master, "STOP_MAINTENANCE", stop_maintenance={
        "machines": [{"hostname": "box1"}]})
    assert status(h) == {"draining_machines": [], "down_machines": []}
    assert operator(h.master, "GET_MAINTENANCE_SCHEDULE")["schedule"] == {"windows": []}
    back = h.add_agent("cpus:2;mem:1024", hostname="box1")
    assert back.record.state is AgentState.REGISTERED
    assert box2.record.active


@pytest.mark.parametrize("body, words", [
    ({"windows": [window("a"), window("a")]}, "more than once"),
    ({"windows": [{"machine_ids": [], "unavailability": {"start": {"nanoseconds": 1}}}]},
     "non-empty"),
    ({"windows": [{"machine_ids": [{}], "unavailability": {"start": {"nanoseconds": 1}}}]},
     "hostname"),
    ({"windows": [{"machine_ids": [{"ip": "nope"}],
                   "unavailability": {"start": {"nanoseconds": 1}}}]}, "not an IP"),
    ({"windows": [{"machine_ids": [{"hostname": "a"}], "unavailability": {}}]}, "start"),
    ({"windows": "x"}, "list"),
])
def test_a_bad_schedule_is_refused_and_changes_nothing(body: Any, words: str):
    h, *_ = setup()
    with pytest.raises(BadRequest, match=words):
        operator(h.master, "UPDATE_MAINTENANCE_SCHEDULE",
                 update_maintenance_schedule={"schedule": body})
    assert h.master.maintenance.schedule.windows == []


def test_drain_kills_with_the_capped_grace_period_and_marks_the_agent_drained_then_gone():
    h, _box1, box2, fw = setup()
    running_task(h, box2, fw, "long", kill_policy={"grace_period": {"nanoseconds": 60 * 10**9}})
    box2.take()
    operator(h.master, "DRAIN_AGENT", drain_agent={
        "agent_id": {"value": box2.agent_id}, "max_grace_period": {"nanoseconds": 10**9},
        "mark_gone": True})
    (kill,) = box2.commands("KILL_TASK")
    assert kill["kill_task"]["kill_policy"] == {"grace_period": {"nanoseconds": 10**9}}
    agent = box2.record
    assert agent.deactivated and not agent.active
    assert agent.drain is not None and agent.drain.to_json() == {
        "state": "DRAINING", "config": {"mark_gone": True,
                                        "max_grace_period": {"nanoseconds": 10**9}}}
    fw.take()
    box2.update(fw.framework_id, "long", TaskState.TASK_KILLED)
    (update,) = fw.updates()
    assert update["reason"] == "REASON_AGENT_DRAINING"
    h.advance(0.5)
    assert agent.drain.state == "DRAINED"
    assert box2.of_type("SHUTDOWN")  # mark_gone: gone for good
    assert box2.agent_id in h.master.book.gone_agents


def test_deactivated_agents_get_no_offers_but_keep_their_tasks_until_reactivated():
    h, box1, box2, fw = setup()
    operator(h.master, "DEACTIVATE_AGENT", deactivate_agent={
        "agent_id": {"value": box1.agent_id}})
    assert box1.record.deactivated and not box1.record.active
    assert box1.commands("KILL_TASK") == []
    h.advance(2.0)
    assert {o["agent_id"]["value"] for o in fw.offers()} <= {box2.agent_id}
    operator(h.master, "REACTIVATE_AGENT", reactivate_agent={
        "agent_id": {"value": box1.agent_id}})
    h.advance(2.0)
    assert box1.agent_id in {o["agent_id"]["value"] for o in fw.offers()}
    with pytest.raises(BadRequest, match="not deactivated"):
        operator(h.master, "REACTIVATE_AGENT", reactivate_agent={
            "agent_id": {"value": box1.agent_id}})
    with pytest.raises(NotFound):
        operator(h.master, "DRAIN_AGENT", drain_agent={"agent_id": {"value": "nope"}})
    with pytest.raises(BadRequest, match="agent_id"):
        operator(h.master, "DEACTIVATE_AGENT", deactivate_agent={})


def test_get_frameworks_shows_outstanding_inverse_offers():
    h, _box1, _box2, fw = setup()
    schedule(h, window("box1"))
    (event,) = fw.take("INVERSE_OFFERS")
    (framework,) = operator(h.master, "GET_FRAMEWORKS")["frameworks"]
    assert framework["inverse_offers"] == event["inverse_offers"]["inverse_offers"]


def test_offers_of_agents_on_draining_machines_carry_their_unavailability():
    h = MasterHarness()
    box1 = h.add_agent("cpus:2;mem:1024", hostname="box1")
    box2 = h.add_agent("cpus:2;mem:1024", hostname="box2")
    schedule(h, window("box1"))
    fw = h.subscribe()
    h.settle()
    offers = {o["agent_id"]["value"]: o for o in fw.offers()}
    assert offers[box1.agent_id]["unavailability"]["start"] == {"nanoseconds": 10**18}
    assert "unavailability" not in offers[box2.agent_id]


def test_a_new_leader_keeps_deactivations_and_drains_and_kills_what_a_drained_agent_reports():
    from mesonb.master.registry import MemoryStore, Registry
    from mesonb.protocol.agent import AgentTask
    from mesonb.protocol.mesos import TaskInfo

    store = MemoryStore()
    h, box1, box2, fw = setup()
    h.master.registry = registry = Registry(store)
    task_info = fw.record.tasks["t1"].info
    operator(h.master, "DEACTIVATE_AGENT", deactivate_agent={
        "agent_id": {"value": box2.agent_id}})
    operator(h.master, "DRAIN_AGENT", drain_agent={
        "agent_id": {"value": box1.agent_id}, "max_grace_period": {"nanoseconds": 2 * 10**9}})
    registry.flush(5)
    registry.close()

    second = MasterHarness()
    recovered = Registry(store)
    second.master.recover(recovered.recover().result(5))
    fw2 = second.subscribe(framework_id=fw.framework_id)
    report = AgentTask(framework_id=fw.framework_id, task=TaskInfo.from_json(task_info.to_json()),
                       state=TaskState.TASK_RUNNING)
    again1 = second.add_agent("cpus:2;mem:1024", hostname="box1", agent_id=box1.agent_id,
                              tasks=[report])
    again2 = second.add_agent("cpus:2;mem:1024", hostname="box2", agent_id=box2.agent_id)
    second.advance(1.0)
    assert again1.record.state is AgentState.DRAINING and again1.record.deactivated
    assert again2.record.deactivated and not again2.record.active
    (kill,) = again1.commands("KILL_TASK")
    assert kill["kill_task"]["kill_policy"] == {"grace_period": {"nanoseconds": 2 * 10**9}}
    assert fw2.offers() == []  # neither agent is offered
    recovered.close()


def test_an_agent_drained_while_disconnected_has_its_tasks_killed_when_it_returns():
    from mesonb.protocol.agent import AgentTask
    from mesonb.protocol.mesos import TaskInfo

    h, box1, _box2, fw = setup()
    task_info = fw.record.tasks["t1"].info
    h.master.agents.disconnected(box1.record, box1.record.send)
    box1.take()
    operator(h.master, "DRAIN_AGENT", drain_agent={"agent_id": {"value": box1.agent_id}})
    h.advance(0.5)
    assert box1.of_type("KILL_TASK") == []  # nowhere to send it yet
    report = AgentTask(framework_id=fw.framework_id, task=TaskInfo.from_json(task_info.to_json()),
                       state=TaskState.TASK_RUNNING)
    h.add_agent("cpus:2;mem:1024", hostname="box1", agent_id=box1.agent_id, tasks=[report],
                end=box1)
    h.advance(0.5)
    assert box1.record.state is AgentState.DRAINING
    (kill,) = box1.commands("KILL_TASK")
    assert kill["kill_task"]["task_id"]["value"] == "t1"
