"""Reconciliation follows Mesos's ``Master::reconcile`` (src/master/master.cpp): a task the
master knows is a live one or an ended one whose terminal update is not acknowledged yet;
once acknowledged it is unknown, and tasks on unreachable agents are not in the implicit
answer. On a fake clock, no sockets."""

from __future__ import annotations

import base64

import pytest

from mesonb.protocol.agent import AgentCall, AgentCallType
from mesonb.protocol.states import TaskState
from mesonb.testing.harness import MasterHarness, command_task


def setup(capabilities: tuple[str, ...] = ("PARTITION_AWARE",), **config):
    h = MasterHarness(**config)
    agent = h.add_agent()
    fw = h.subscribe(capabilities=capabilities)
    h.settle()
    (offer,) = fw.offers()
    tasks = [command_task(t, agent.agent_id, "cpus:1") for t in ("done", "live")]
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": tasks}}]})
    for task_id in ("done", "live"):
        ack(fw, agent, task_id, agent.update(fw.framework_id, task_id, TaskState.TASK_RUNNING))
    fw.updates()
    return h, agent, fw


def ack(fw, agent, task_id: str, uuid: bytes) -> None:
    fw.call("ACKNOWLEDGE", acknowledge={"agent_id": {"value": agent.agent_id},
                                         "task_id": {"value": task_id},
                                         "uuid": base64.b64encode(uuid).decode()})


def reconcile(fw, *tasks: tuple[str, str | None]) -> dict[str, str]:
    items = [{"task_id": {"value": t}, **({"agent_id": {"value": a}} if a else {})}
             for t, a in tasks]
    fw.call("RECONCILE", reconcile={"tasks": items})
    answers = {}
    for status in fw.updates():
        assert status["reason"] == "REASON_RECONCILIATION" and "uuid" not in status
        answers[status["task_id"]["value"]] = status["state"]
    return answers


@pytest.mark.parametrize(("capabilities", "gone", "unknown"), [
    (("PARTITION_AWARE",), "TASK_GONE", "TASK_UNKNOWN"),
    ((), "TASK_LOST", "TASK_LOST"),
])
def test_an_ended_task_is_known_until_its_terminal_update_is_acknowledged(
        capabilities, gone, unknown):
    _h, agent, fw = setup(capabilities)
    finished = agent.update(fw.framework_id, "done", TaskState.TASK_FINISHED)
    assert [s["state"] for s in fw.updates()] == ["TASK_FINISHED"]
    # Not acknowledged yet: implicit and explicit answers carry the terminal state
    # (Mesos's ReconciliationTest.UnacknowledgedTerminalTask).
    assert reconcile(fw) == {"done": "TASK_FINISHED", "live": "TASK_RUNNING"}
    assert reconcile(fw, ("done", agent.agent_id)) == {"done": "TASK_FINISHED"}
    ack(fw, agent, "done", finished)
    # Acknowledged: the master forgot it (ImplicitTerminalTask, then case 3 / case 6).
    assert reconcile(fw) == {"live": "TASK_RUNNING"}
    assert reconcile(fw, ("done", agent.agent_id)) == {"done": gone}
    assert reconcile(fw, ("done", None)) == {"done": unknown}
    assert "done" not in fw.record.unacknowledged
    # The completed task is still shown (state endpoints), only reconciliation forgot it.
    assert [t.id for t in fw.record.completed_tasks] == ["done"]


def test_an_acknowledgement_of_an_older_update_keeps_the_ended_task_known():
    _h, agent, fw = setup()
    # The agent retries STARTING while the task already finished (latest_state).
    starting = agent.update(fw.framework_id, "done", TaskState.TASK_STARTING,
                            latest_state=TaskState.TASK_FINISHED)
    fw.updates()
    ack(fw, agent, "done", starting)
    # Known still, in the state of its status update (Mesos: status_update_state stays
    # until the next update replaces it), not its latest one.
    assert reconcile(fw, ("done", agent.agent_id)) == {"done": "TASK_STARTING"}
    finished = agent.update(fw.framework_id, "done", TaskState.TASK_FINISHED)
    fw.updates()
    ack(fw, agent, "done", finished)
    assert reconcile(fw, ("done", agent.agent_id)) == {"done": "TASK_GONE"}


def test_master_made_terminal_updates_need_no_acknowledgement():
    _h, agent, fw = setup()
    fw.call("KILL", kill={"task_id": {"value": "done"}})
    agent.update(fw.framework_id, "done", TaskState.TASK_KILLED)
    fw.updates()
    # The agent shuts down: its remaining task ends by a master-made update (no uuid).
    agent.send_call(AgentCall(type=AgentCallType.UNREGISTER))
    states = {s["task_id"]["value"]: s["state"] for s in fw.updates()}
    assert states == {"live": "TASK_GONE"}
    assert reconcile(fw) == {}
    assert reconcile(fw, ("live", None)) == {"live": "TASK_UNKNOWN"}
    # The killed task's update was never acknowledged, but its agent is gone with it.
    assert reconcile(fw, ("done", agent.agent_id)) == {"done": "TASK_UNKNOWN"}


def test_tasks_on_an_unreachable_agent_are_not_in_the_implicit_answer():
    h, agent, fw = setup(agent_ping_timeout=1.0, max_agent_ping_timeouts=2)
    finished = agent.update(fw.framework_id, "done", TaskState.TASK_FINISHED)
    fw.updates()
    for _ in range(3):
        h.advance(1.0)  # no PONGs
    assert {s["task_id"]["value"]: s["state"] for s in fw.updates()} == {
        "live": "TASK_UNREACHABLE"}
    assert reconcile(fw) == {}
    fw.call("RECONCILE", reconcile={"tasks": [
        {"task_id": {"value": "live"}, "agent_id": {"value": agent.agent_id}}]})
    (status,) = fw.updates()
    assert status["state"] == "TASK_UNREACHABLE" and status["unreachable_time"]
    assert reconcile(fw, ("done", agent.agent_id)) == {"done": "TASK_UNREACHABLE"}
    ack(fw, agent, "done", finished)  # late, harmless


def test_the_answer_is_in_the_state_of_the_update_being_delivered():
    """The agent retries an older update (RUNNING) while the task already ended: the
    update carries latest_state FINISHED. Mesos answers reconciliation with the state of
    the status update, not the latest one, until a later update replaces it."""
    _h, agent, fw = setup()
    agent.update(fw.framework_id, "live", TaskState.TASK_STARTING,
                 latest_state=TaskState.TASK_FINISHED)
    fw.updates()
    assert reconcile(fw, ("live", agent.agent_id)) == {"live": "TASK_STARTING"}
    assert reconcile(fw)["live"] == "TASK_STARTING"  # implicit: the same
