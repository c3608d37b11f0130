"""Draining an agent through the master: no offers, its tasks killed, until reactivated."""

from __future__ import annotations

from mesonb.master import views_v0
from mesonb.master.book import AgentState
from mesonb.protocol.states import TaskState
from mesonb.testing.harness import MasterHarness, command_task


def test_a_drained_agent_is_not_offered_and_its_tasks_are_killed_until_reactivated():
    h = MasterHarness()
    agent = h.add_agent("cpus:2;mem:1024")
    fw = h.subscribe()
    h.settle()
    (offer,) = fw.offers()
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [
            command_task("t", agent.agent_id, "cpus:1;mem:128")]}}], "filters": {
        "refuse_seconds": 0}})
    agent.update(fw.framework_id, "t", TaskState.TASK_RUNNING)
    h.settle()
    assert fw.offers()  # the rest of the agent
    agent.take()
    h.master.agents.drain(agent.record)
    assert agent.record.state is AgentState.DRAINING and not agent.record.active
    (kill,) = agent.commands("KILL_TASK")
    assert kill["kill_task"]["task_id"]["value"] == "t"
    assert len(fw.take("RESCIND")) == 1
    assert views_v0.v0_state(h.master)["deactivated_slaves"] == 1
    agent.update(fw.framework_id, "t", TaskState.TASK_KILLED)
    h.advance(2.0)
    assert fw.offers() == []
    h.master.agents.reactivate(agent.record)
    assert agent.record.state is AgentState.REGISTERED
    h.advance(1.0)
    assert fw.offers()
