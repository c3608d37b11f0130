"""The master's handling of scheduler calls, on a fake clock with no sockets."""

from __future__ import annotations

import pytest

from mesonb.protocol.errors import BadRequest, Forbidden
from mesonb.protocol.states import TaskState
from mesonb.testing.harness import MasterHarness, b64, command_task


def scalars(offer: dict) -> dict[str, float]:
    return {r["name"]: r["scalar"]["value"] for r in offer["resources"] if r["type"] == "SCALAR"}


def launch(fw, offer, *tasks, refuse_seconds=5.0):
    fw.call("ACCEPT", accept={
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": list(tasks)}}],
        "filters": {"refuse_seconds": refuse_seconds},
    })


@pytest.fixture
def h() -> MasterHarness:
    return MasterHarness()


def test_subscribe_answers_subscribed_with_id_and_master_info(h):
    fw = h.subscribe("demo")
    (event,) = fw.take("SUBSCRIBED")
    body = event["subscribed"]
    assert body["framework_id"]["value"] == fw.framework_id
    assert body["heartbeat_interval_seconds"] == 15.0
    assert body["master_info"]["address"]["port"] == h.master.port


def test_offers_nest_like_the_protobuf_and_carry_the_agent(h):
    agent = h.add_agent("cpus:2;mem:1024;ports:[31000-31009]", hostname="a1")
    fw = h.subscribe("demo")
    h.settle()
    (event,) = fw.of_type("OFFERS")
    assert set(event) == {"type", "offers"}
    (offer,) = event["offers"]["offers"]
    assert offer["agent_id"]["value"] == agent.agent_id
    assert offer["hostname"] == "a1"
    assert scalars(offer) == {"cpus": 2.0, "mem": 1024.0}
    ports = next(r for r in offer["resources"] if r["name"] == "ports")
    assert ports["ranges"]["range"] == [{"begin": 31000, "end": 31009}]
    assert offer["allocation_info"] == {"role": "*"}


def test_launch_sends_run_task_and_filters_the_unused_rest(h):
    agent = h.add_agent("cpus:2;mem:1024")
    fw = h.subscribe()
    h.settle()
    (offer,) = fw.offers()
    launch(fw, offer, command_task("t1", agent.agent_id, "cpus:1;mem:128"))
    h.settle()
    (run,) = agent.commands("RUN_TASK")
    assert run["run_task"]["task"]["task_id"]["value"] == "t1"
    assert run["run_task"]["framework_info"]["id"]["value"] == fw.framework_id
    task = fw.record.tasks["t1"]
    assert task.state is TaskState.TASK_STAGING
    assert agent.record.available.get("cpus") == 1.0
    # the unused cpus:1;mem:896 are filtered for 5 s, then offered again
    assert fw.offers() == []
    h.advance(5.1)
    (again,) = fw.offers()
    assert scalars(again) == {"cpus": 1.0, "mem": 896.0}


def test_task_larger_than_the_offer_gets_task_error_and_frees_the_offer(h):
    agent = h.add_agent("cpus:1;mem:256")
    fw = h.subscribe()
    h.settle()
    (offer,) = fw.offers()
    launch(fw, offer, command_task("big", agent.agent_id, "cpus:4;mem:128"), refuse_seconds=0)
    (status,) = fw.updates()
    assert status["state"] == "TASK_ERROR"
    assert status["reason"] == "REASON_TASK_INVALID"
    assert "more resources" in status["message"] and "cpus" in status["message"]
    assert agent.commands("RUN_TASK") == []
    h.settle()
    assert scalars(fw.offers()[0]) == {"cpus": 1.0, "mem": 256.0}


def test_invalid_offer_drops_tasks_as_lost_for_old_frameworks(h):
    agent = h.add_agent()
    fw = h.subscribe()
    h.settle()
    launch(fw, {"id": {"value": "no-such-offer"}}, command_task("t", agent.agent_id))
    (status,) = fw.updates()
    assert status["state"] == "TASK_LOST"
    assert status["reason"] == "REASON_INVALID_OFFERS"


def test_duplicate_task_id_is_an_error(h):
    agent = h.add_agent("cpus:4;mem:1024")
    fw = h.subscribe()
    h.settle()
    (offer,) = fw.offers()
    launch(fw, offer, command_task("t", agent.agent_id), command_task("t", agent.agent_id))
    (status,) = fw.updates()
    assert status["state"] == "TASK_ERROR" and "duplicate" in status["message"]
    assert len(agent.commands("RUN_TASK")) == 1


def test_status_updates_are_forwarded_with_uuid_and_terminal_frees_resources(h):
    agent = h.add_agent("cpus:1;mem:256")
    fw = h.subscribe()
    h.settle()
    (offer,) = fw.offers()
    launch(fw, offer, command_task("t", agent.agent_id, "cpus:1;mem:256"))
    for state in (TaskState.TASK_STARTING, TaskState.TASK_RUNNING):
        agent.update(fw.framework_id, "t", state)
    assert [u["state"] for u in fw.updates()] == ["TASK_STARTING", "TASK_RUNNING"]
    assert agent.record.available.get("cpus") == 0.0
    uuid = agent.update(fw.framework_id, "t", TaskState.TASK_FINISHED)
    (status,) = fw.updates()
    assert status["state"] == "TASK_FINISHED" and status["uuid"] == b64(uuid)
    assert "t" not in fw.record.tasks
    assert fw.record.completed_tasks[-1].state is TaskState.TASK_FINISHED
    h.settle()
    assert scalars(fw.offers()[0]) == {"cpus": 1.0, "mem": 256.0}


def test_latest_state_frees_resources_before_the_terminal_update_arrives(h):
    agent = h.add_agent("cpus:1;mem:256")
    fw = h.subscribe()
    h.settle()
    (offer,) = fw.offers()
    launch(fw, offer, command_task("t", agent.agent_id, "cpus:1;mem:256"))
    agent.update(fw.framework_id, "t", TaskState.TASK_RUNNING, latest_state=TaskState.TASK_FAILED)
    assert fw.updates()[0]["state"] == "TASK_RUNNING"
    assert agent.record.available.get("cpus") == 1.0


def test_acknowledge_is_relayed_to_the_agent_and_bad_uuid_rejected(h):
    agent = h.add_agent()
    fw = h.subscribe()
    h.settle()
    (offer,) = fw.offers()
    launch(fw, offer, command_task("t", agent.agent_id))
    uuid = agent.update(fw.framework_id, "t", TaskState.TASK_RUNNING)
    fw.call("ACKNOWLEDGE", acknowledge={"agent_id": {"value": agent.agent_id},
                                         "task_id": {"value": "t"}, "uuid": b64(uuid)})
    (ack,) = agent.commands("ACKNOWLEDGE")
    assert ack["acknowledge"]["uuid"] == b64(uuid)
    with pytest.raises(BadRequest, match="UUID"):
        fw.call("ACKNOWLEDGE", acknowledge={"agent_id": {"value": agent.agent_id},
                                             "task_id": {"value": "t"}, "uuid": b64(b"short")})


def test_kill_known_task_goes_to_agent_and_unknown_is_reconciled(h):
    agent = h.add_agent()
    fw = h.subscribe()
    h.settle()
    (offer,) = fw.offers()
    launch(fw, offer, command_task("t", agent.agent_id))
    fw.call("KILL", kill={"task_id": {"value": "t"}})
    (kill,) = agent.commands("KILL_TASK")
    assert kill["kill_task"]["task_id"]["value"] == "t"
    fw.call("KILL", kill={"task_id": {"value": "ghost"}})
    (status,) = fw.updates()
    assert status["state"] == "TASK_LOST" and status["reason"] == "REASON_RECONCILIATION"


def test_reconcile_implicit_and_the_explicit_cases(h):
    agent = h.add_agent()
    fw = h.subscribe(capabilities=("PARTITION_AWARE",))
    h.settle()
    (offer,) = fw.offers()
    launch(fw, offer, command_task("t", agent.agent_id))
    agent.update(fw.framework_id, "t", TaskState.TASK_RUNNING)
    fw.updates()
    fw.call("RECONCILE", reconcile={"tasks": []})
    (status,) = fw.updates()
    assert (status["state"], status["reason"]) == ("TASK_RUNNING", "REASON_RECONCILIATION")
    assert "uuid" not in status
    fw.call("RECONCILE", reconcile={"tasks": [
        {"task_id": {"value": "t"}},
        {"task_id": {"value": "x"}, "agent_id": {"value": agent.agent_id}},
        {"task_id": {"value": "y"}, "agent_id": {"value": "unknown-agent"}},
    ]})
    states = [s["state"] for s in fw.updates()]
    assert states == ["TASK_RUNNING", "TASK_GONE", "TASK_UNKNOWN"]


def test_decline_filters_and_revive_clears_filters(h):
    h.add_agent()
    fw = h.subscribe()
    h.settle()
    (offer,) = fw.offers()
    fw.call("DECLINE", decline={"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 60}})
    h.advance(10)
    assert fw.offers() == []
    fw.call("REVIVE")
    h.settle()
    assert len(fw.offers()) == 1


def test_suppress_stops_offers_until_revive(h):
    h.add_agent()
    fw = h.subscribe()
    fw.call("SUPPRESS")
    h.settle()
    h.advance(2)
    assert fw.offers() == []
    fw.call("REVIVE", revive={"roles": ["*"]})
    h.settle()
    assert len(fw.offers()) == 1


def test_two_frameworks_share_agents_by_drf(h):
    for i in range(4):
        h.add_agent("cpus:2;mem:2048", hostname=f"a{i}")
    first, second = h.subscribe("one"), h.subscribe("two")
    h.settle()
    assert len(first.offers()) == 2 and len(second.offers()) == 2


def test_calls_need_a_subscribed_framework_and_its_stream_id(h):
    fw = h.subscribe()
    stream = fw.stream_id
    fw.stream_id = "not-the-stream"
    with pytest.raises(BadRequest, match="stream ID"):
        fw.call("REVIVE")
    fw.stream_id = stream
    fw.record.info.failover_timeout = 60
    h.disconnect(fw)
    with pytest.raises(Forbidden, match="not subscribed"):
        fw.call("REVIVE")


def test_resubscribe_takes_over_and_old_stream_gets_error(h):
    old = h.subscribe("fw", failover_timeout=60)
    new = h.subscribe("fw", framework_id=old.framework_id, failover_timeout=60)
    assert new.framework_id == old.framework_id
    assert old.of_type("ERROR")[0]["error"]["message"] == "Framework failed over"
    assert old.closed
    assert new.take("SUBSCRIBED")


def test_failover_timeout_removes_framework_and_shuts_it_down_on_agents(h):
    agent = h.add_agent()
    fw = h.subscribe(failover_timeout=30)
    h.settle()
    (offer,) = fw.offers()
    launch(fw, offer, command_task("t", agent.agent_id))
    h.disconnect(fw)
    h.advance(29)
    assert fw.framework_id in h.master.book.frameworks
    h.advance(2)
    assert fw.framework_id in h.master.book.completed_frameworks
    assert agent.commands("SHUTDOWN_FRAMEWORK")
    assert agent.record.available.get("cpus") == 4.0
    again = h.subscribe(framework_id=fw.framework_id)
    assert again.of_type("ERROR") and again.closed


def test_teardown_removes_the_framework_at_once(h):
    agent = h.add_agent()
    fw = h.subscribe(failover_timeout=1000)
    h.settle()
    (offer,) = fw.offers()
    launch(fw, offer, command_task("t", agent.agent_id))
    fw.call("TEARDOWN")
    assert fw.framework_id in h.master.book.completed_frameworks
    assert fw.closed
    assert agent.commands("SHUTDOWN_FRAMEWORK")


def test_launch_group_is_all_or_nothing(h):
    agent = h.add_agent("cpus:2;mem:1024")
    fw = h.subscribe()
    h.settle()
    (offer,) = fw.offers()
    group = {
        "executor": {"executor_id": {"value": "e"}, "type": "DEFAULT",
                     "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}]},
        "task_group": {"tasks": [command_task("a", agent.agent_id, "cpus:1;mem:64"),
                                 command_task("b", agent.agent_id, "cpus:5;mem:64")]},
    }
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH_GROUP", "launch_group": group}], "filters": {"refuse_seconds": 0}})
    statuses = fw.updates()
    assert [s["state"] for s in statuses] == ["TASK_ERROR", "TASK_ERROR"]
    assert {s["reason"] for s in statuses} == {"REASON_TASK_GROUP_INVALID"}
    assert agent.commands("RUN_TASK_GROUP") == []
    h.settle()
    (offer,) = fw.offers()
    group["task_group"]["tasks"][1] = command_task("b", agent.agent_id, "cpus:0.5;mem:64")
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH_GROUP", "launch_group": group}]})
    (run,) = agent.commands("RUN_TASK_GROUP")
    assert len(run["run_task_group"]["task_group"]["tasks"]) == 2
    assert agent.record.available.get("cpus") == pytest.approx(0.4)


def test_update_framework_answers_a_body_and_refuses_principal_change(h):
    fw = h.subscribe("before", principal="p")
    body = fw.call("UPDATE_FRAMEWORK", update_framework={
        "framework_info": {"user": "tester", "name": "after", "principal": "p"}})
    assert body == {}
    assert fw.record.info.name == "after"
    with pytest.raises(BadRequest, match="principal"):
        fw.call("UPDATE_FRAMEWORK", update_framework={
            "framework_info": {"user": "tester", "name": "x", "principal": "q"}})


def test_a_disconnected_frameworks_tasks_still_count_toward_its_roles_share(h):
    agents = [h.add_agent("cpus:2;mem:2048", hostname=f"a{i}") for i in range(3)]
    big = h.subscribe("big", role="shared", failover_timeout=600)
    h.settle()
    for offer in big.offers():
        launch(big, offer, command_task(f"t-{offer['hostname']}", offer["agent_id"]["value"],
                                        "cpus:1;mem:1024"), refuse_seconds=0)
    h.disconnect(big)
    h.settle()
    small = h.subscribe("small", role="shared")
    other = h.subscribe("other", role="other")
    h.settle()
    # Role "shared" already holds half the cluster through the disconnected framework,
    # so the idle role "other" gets every agent (were big's tasks forgotten, "shared"
    # would look idle too and "small" would get one of the three).
    assert len(agents) == 3
    assert len(other.offers()) == 3 and small.offers() == []


def test_a_declined_agent_is_not_allocated_again_until_someone_could_take_it(h):
    """After a DECLINE with a filter, the event-triggered run for that agent is skipped
    while every framework refuses it; another framework gets it at once."""
    h.add_agent()
    fw = h.subscribe()
    h.settle()
    (offer,) = fw.offers()
    runs = h.master.allocation_runs
    fw.call("DECLINE", decline={"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 60}})
    h.settle()
    assert h.master.allocation_runs == runs and fw.offers() == []
    other = h.subscribe("other")
    h.settle()
    assert h.master.allocation_runs > runs and len(other.offers()) == 1
    assert fw.offers() == []  # still filtered for the first


def test_a_framework_suppressed_in_all_its_roles_does_not_count_as_a_taker(h):
    h.add_agent()
    fw = h.subscribe()
    h.settle()
    (offer,) = fw.offers()
    quiet = h.subscribe("quiet")
    quiet.call("SUPPRESS")
    h.settle()
    runs = h.master.allocation_runs
    fw.call("DECLINE", decline={"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 60}})
    h.settle()
    assert h.master.allocation_runs == runs  # nobody could have it: no run
    assert quiet.offers() == [] and fw.offers() == []
    quiet.call("REVIVE")
    h.settle()
    assert len(quiet.offers()) == 1
