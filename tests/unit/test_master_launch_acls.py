"""``run_tasks`` is checked per task where it launches, as Mesos's master does: a refused
task gets TASK_ERROR with REASON_TASK_UNAUTHORIZED (a group's tasks
REASON_TASK_GROUP_UNAUTHORIZED), its resources stay offered, the other tasks launch."""

from __future__ import annotations

from mesonb.security.acls import Acls
from mesonb.testing.harness import MasterHarness, command_task

ACLS = Acls.parse({"permissive": False, "run_tasks": [
    {"principals": {"values": ["web"]}, "users": {"values": ["nobody"]}}]})


def offered(principal: str) -> tuple:
    """A master with :data:`ACLS`, one agent, and a framework of ``principal`` (running as
    nobody) holding its one offer."""
    h = MasterHarness()
    h.master.acls = ACLS
    agent = h.add_agent("cpus:4;mem:4096")
    fw = h.subscribe(f"{principal}-fw", principal=principal, user="nobody")
    h.settle()
    (offer,) = fw.offers()
    return agent, fw, offer


def as_user(task: dict, user: str) -> dict:
    task["command"]["user"] = user
    return task


def test_an_unauthorized_task_gets_task_error_and_the_others_launch():
    agent, fw, offer = offered("web")
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [
            as_user(command_task("as-root", agent.agent_id), "root"),
            command_task("as-nobody", agent.agent_id)]}}]})
    (update,) = fw.updates()
    assert update["task_id"]["value"] == "as-root"
    assert update["state"] == "TASK_ERROR"
    assert update["reason"] == "REASON_TASK_UNAUTHORIZED"
    assert "Principal 'web' is not authorized to run tasks (users: 'root')" in update["message"]
    (run,) = agent.commands("RUN_TASK")
    assert run["run_task"]["task"]["task_id"]["value"] == "as-nobody"
    assert set(fw.record.tasks) == {"as-nobody"}


def test_a_group_with_one_unauthorized_task_fails_whole():
    agent, fw, offer = offered("web")
    tasks = [command_task("g1", agent.agent_id), as_user(command_task("g2", agent.agent_id),
                                                           "root")]
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH_GROUP", "launch_group": {
            "executor": {"executor_id": {"value": "e"}, "type": "DEFAULT",
                         "resources": command_task("x", "a", "cpus:0.1;mem:32")["resources"]},
            "task_group": {"tasks": tasks}}}]})
    updates = fw.updates()
    assert {u["task_id"]["value"] for u in updates} == {"g1", "g2"}
    assert {(u["state"], u["reason"]) for u in updates} == {
        ("TASK_ERROR", "REASON_TASK_GROUP_UNAUTHORIZED")}
    assert agent.commands("RUN_TASK_GROUP") == [] and not fw.record.tasks


def test_another_principal_may_not_run_as_nobody():
    agent, fw, offer = offered("etl")
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [command_task("t", agent.agent_id)]}}]})
    (update,) = fw.updates()
    assert (update["state"], update["reason"]) == ("TASK_ERROR", "REASON_TASK_UNAUTHORIZED")
    assert agent.commands("RUN_TASK") == []
