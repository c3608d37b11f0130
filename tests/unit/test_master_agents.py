"""The master's view of agents: registration, health, unreachability, re-registration."""

from __future__ import annotations

import threading

import pytest

from mesonb.master.book import AgentState
from mesonb.master.registry import MemoryStore, Registry
from mesonb.protocol.agent import AgentCall, AgentCallType, AgentTask, ExecutorExited
from mesonb.protocol.mesos import TaskInfo
from mesonb.protocol.states import TaskState
from mesonb.testing.harness import MasterHarness, command_task


@pytest.fixture
def h() -> MasterHarness:
    return MasterHarness(agent_ping_timeout=15, max_agent_ping_timeouts=5)


def running_task(h, capabilities=()):
    agent = h.add_agent("cpus:2;mem:1024")
    fw = h.subscribe(capabilities=capabilities, failover_timeout=600)
    if h.master.registry is not None:
        h.master.registry.flush(10)  # the admission's write
    h.settle()
    (offer,) = fw.offers()
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [command_task("t", agent.agent_id)]}}]})
    agent.update(fw.framework_id, "t", TaskState.TASK_RUNNING)
    fw.take()
    return agent, fw


def test_registration_assigns_an_id_and_counts_resources(h):
    agent = h.add_agent("cpus:3;mem:2048")
    (registered,) = agent.commands("REGISTERED")
    assert registered["registered"]["agent_id"]["value"] == agent.agent_id
    assert registered["registered"]["ping_interval_seconds"] == 15
    assert h.master.book.total.get("cpus") == 3.0


def test_silent_agent_becomes_unreachable_after_max_ping_timeouts(h):
    agent, fw = running_task(h, capabilities=("PARTITION_AWARE",))
    for _ in range(4):
        h.advance(15)
    assert agent.record.state is AgentState.REGISTERED
    h.advance(15)
    h.advance(15)
    assert agent.record.state is AgentState.UNREACHABLE
    (status,) = fw.updates()
    assert status["state"] == "TASK_UNREACHABLE"
    assert status["reason"] == "REASON_AGENT_REMOVED"
    assert "unreachable_time" in status
    (failure,) = fw.take("FAILURE")
    assert failure["failure"]["agent_id"]["value"] == agent.agent_id
    assert h.master.book.total.get("cpus") == 0.0
    assert agent.closed


def test_old_frameworks_see_task_lost_when_agent_is_unreachable(h):
    _agent, fw = running_task(h)
    for _ in range(6):
        h.advance(15)
    (status,) = fw.updates()
    assert status["state"] == "TASK_LOST"


def test_agent_answering_pings_stays_registered(h):
    agent, _fw = running_task(h)
    for _ in range(10):
        h.advance(15)
        agent.pong()
    assert agent.record.state is AgentState.REGISTERED
    assert len(agent.commands("PING")) >= 9


def test_unreachable_agent_that_returns_brings_its_tasks_back_running(h):
    agent, fw = running_task(h, capabilities=("PARTITION_AWARE",))
    task_info = fw.record.tasks["t"].info
    for _ in range(6):
        h.advance(15)
    fw.take()
    report = AgentTask(framework_id=fw.framework_id, task=TaskInfo.from_json(task_info.to_json()),
                       state=TaskState.TASK_RUNNING)
    h.add_agent("cpus:2;mem:1024", agent_id=agent.agent_id, tasks=[report], end=agent)
    assert agent.record.state is AgentState.REGISTERED
    (status,) = fw.updates()
    assert (status["state"], status["reason"]) == ("TASK_RUNNING", "REASON_AGENT_REREGISTERED")
    assert "t" in fw.record.tasks and not fw.record.unreachable_tasks
    assert agent.record.available.get("cpus") == 1.0
    assert h.master.book.total.get("cpus") == 2.0


def test_reregistration_drops_tasks_the_agent_no_longer_has(h):
    agent, fw = running_task(h, capabilities=("PARTITION_AWARE",))
    h.add_agent("cpus:2;mem:1024", agent_id=agent.agent_id, tasks=[], end=agent)
    (status,) = fw.updates()
    assert status["state"] == "TASK_DROPPED"
    assert agent.record.available.get("cpus") == 2.0


def test_disconnected_agent_is_not_offered_and_its_offers_are_rescinded(h):
    agent = h.add_agent()
    fw = h.subscribe()
    h.settle()
    (offer,) = fw.offers()
    h.master.agents.disconnected(agent.record, agent.send)
    (rescind,) = fw.take("RESCIND")
    assert rescind["rescind"]["offer_id"] == offer["id"]
    h.advance(1.5)
    assert fw.offers() == []


def test_unregister_removes_the_agent_and_its_tasks_are_gone(h):
    agent, fw = running_task(h, capabilities=("PARTITION_AWARE",))
    agent.send_call(AgentCall(type=AgentCallType.UNREGISTER))
    (status,) = fw.updates()
    assert status["state"] == "TASK_GONE"
    assert agent.agent_id not in h.master.book.agents
    assert h.master.book.total.get("cpus") == 0.0


def test_executor_exit_is_reported_as_failure(h):
    agent, fw = running_task(h)
    agent.send_call(AgentCall(type=AgentCallType.EXECUTOR_EXITED, executor_exited=ExecutorExited(
        framework_id=fw.framework_id, executor_id="e1", status=9)))
    (failure,) = fw.take("FAILURE")
    assert failure["failure"] == {"agent_id": {"value": agent.agent_id},
                                  "executor_id": {"value": "e1"}, "status": 9}


def test_gone_agent_is_told_to_shut_down(h):
    h.master.book.gone_agents["old"] = 0.0
    agent = h.add_agent(agent_id="old")
    assert agent.of_type("SHUTDOWN") and agent.closed
    assert "old" not in h.master.book.agents


def test_updates_for_a_removed_framework_are_acknowledged_by_the_master(h):
    agent, fw = running_task(h)
    fw.call("TEARDOWN")
    agent.take()
    agent.update(fw.framework_id, "t", TaskState.TASK_KILLED)
    (ack,) = agent.commands("ACKNOWLEDGE")
    assert ack["acknowledge"]["task_id"]["value"] == "t"


def test_removed_agent_gives_back_its_executors_resources(h):
    agent = h.add_agent("cpus:2;mem:1024")
    fw = h.subscribe(failover_timeout=60)
    h.settle()
    (offer,) = fw.offers()
    task = command_task("t", agent.agent_id)
    del task["command"]
    task["executor"] = {"executor_id": {"value": "e"}, "command": {"value": "run-executor"},
                        "resources": [{"name": "cpus", "type": "SCALAR",
                                       "scalar": {"value": 0.5}}]}
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [task]}}]})
    assert fw.record.used.get("cpus") == 1.5
    agent.send_call(AgentCall(type=AgentCallType.UNREGISTER))
    assert fw.record.used.get("cpus") == 0.0


def test_unreachable_agent_marked_gone_ends_its_tasks_gone_by_operator(h):
    from mesonb.protocol.states import Reason

    agent, fw = running_task(h, capabilities=("PARTITION_AWARE",))
    for _ in range(6):
        h.advance(15)
    fw.take()
    h.master.agents.remove(agent.record, "marked gone", TaskState.TASK_GONE_BY_OPERATOR,
                           Reason.REASON_AGENT_REMOVED_BY_OPERATOR)
    (status,) = fw.updates()
    assert status["state"] == "TASK_GONE_BY_OPERATOR"
    assert status["reason"] == "REASON_AGENT_REMOVED_BY_OPERATOR"
    assert not fw.record.unreachable_tasks
    assert fw.record.completed_tasks[-1].state is TaskState.TASK_GONE_BY_OPERATOR


def test_status_data_is_forwarded_but_not_kept_by_the_master(h):
    agent, fw = running_task(h)
    agent.update(fw.framework_id, "t", TaskState.TASK_RUNNING, data=b"x" * 1000)
    (status,) = fw.updates()
    assert status["data"]
    assert all(s.data is None for s in fw.record.tasks["t"].statuses)


def test_disconnected_framework_is_inactive_and_completed_tasks_are_bounded():
    h = MasterHarness(max_completed_tasks_per_framework=2)
    agent = h.add_agent("cpus:4;mem:1024")
    fw = h.subscribe(failover_timeout=60)
    h.settle()
    (offer,) = fw.offers()
    tasks = [command_task(f"t{i}", agent.agent_id, "cpus:0.5;mem:32") for i in range(4)]
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": tasks}}]})
    for i in range(4):
        agent.update(fw.framework_id, f"t{i}", TaskState.TASK_FINISHED)
    assert [t.id for t in fw.record.completed_tasks] == ["t2", "t3"]
    h.disconnect(fw)
    assert not fw.record.active


def test_returning_agent_has_old_frameworks_tasks_killed_after_registration(h):
    agent, fw = running_task(h)  # no PARTITION_AWARE: it was told TASK_LOST
    task_info = fw.record.tasks["t"].info
    for _ in range(6):
        h.advance(15)
    assert [u["state"] for u in fw.updates()] == ["TASK_LOST"]
    agent.take()
    report = AgentTask(framework_id=fw.framework_id, task=TaskInfo.from_json(task_info.to_json()),
                       state=TaskState.TASK_RUNNING)
    h.add_agent("cpus:2;mem:1024", agent_id=agent.agent_id, tasks=[report], end=agent)
    kinds = [m["type"] for m in agent.take()]
    assert kinds.index("REGISTERED") < kinds.index("KILL_TASK")
    assert fw.updates() == []  # no TASK_RUNNING for a task it was told is lost
    agent.update(fw.framework_id, "t", TaskState.TASK_KILLED)
    assert [u["state"] for u in fw.updates()] == ["TASK_KILLED"]


# -- the registry: admission and unreachable marks are written before they take effect --
class HeldStore(MemoryStore):
    """A registry store whose writes wait for ``release()``, or fail while ``failing``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.failing = 0

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def put(self, kind, key, record):
        assert self.gate.wait(10), "a held registry write was never released"
        if self.failing:
            self.failing -= 1
            raise ConnectionError("ZooKeeper connection loss")
        super().put(kind, key, record)


@pytest.fixture
def store() -> HeldStore:
    return HeldStore()


@pytest.fixture
def hr(store):
    """A harness whose master writes through a registry on ``store``."""
    harness = MasterHarness(agent_ping_timeout=15, max_agent_ping_timeouts=5)
    harness.master.registry = Registry(store)
    yield harness
    store.release()
    harness.master.registry.close()


def written(h: MasterHarness) -> None:
    """Wait for the registry's writes so far, then run what their callbacks scheduled."""
    h.master.registry.flush(10)
    h.settle()


def test_agent_is_not_offered_nor_sent_commands_before_its_admission_is_written(hr, store):
    fw = hr.subscribe()
    store.hold()
    agent = hr.add_agent("cpus:2;mem:1024")
    hr.settle()
    assert fw.offers() == []  # a framework could launch on it before REGISTERED
    assert agent.messages == []
    assert not agent.record.active
    hr.advance(1.5)  # a periodic allocation does not offer it either
    assert fw.offers() == []
    store.release()
    written(hr)
    assert [m["type"] for m in agent.take()] == ["REGISTERED"]
    assert agent.record.active
    (offer,) = fw.offers()
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [command_task("t", agent.agent_id)]}}]})
    assert [m["type"] for m in agent.take()] == ["RUN_TASK"]


def test_commands_to_a_returning_agent_wait_for_registered(hr, store):
    agent, fw = running_task(hr, capabilities=("PARTITION_AWARE",))
    written(hr)
    task_info = fw.record.tasks["t"].info
    for _ in range(6):
        hr.advance(15)
    written(hr)
    assert agent.record.state is AgentState.UNREACHABLE
    fw.take()
    agent.take()
    store.hold()  # unreachable -> admitted must be written
    report = AgentTask(framework_id=fw.framework_id, task=TaskInfo.from_json(task_info.to_json()),
                       state=TaskState.TASK_RUNNING)
    hr.add_agent("cpus:2;mem:1024", agent_id=agent.agent_id, tasks=[report], end=agent)
    hr.settle()
    fw.call("KILL", kill={"task_id": {"value": "t"}})
    assert agent.messages == [] and fw.offers() == []
    store.release()
    written(hr)
    assert [m["type"] for m in agent.take()] == ["REGISTERED", "KILL_TASK"]
    assert agent.record.active


def test_a_failed_admission_closes_the_link_and_the_agent_registers_again(hr, store):
    fw = hr.subscribe()
    store.failing = 1
    first = hr.add_agent("cpus:2;mem:1024")
    written(hr)
    assert first.closed and first.messages == []
    assert first.agent_id not in hr.master.book.agents  # nobody knows that id
    assert hr.master.book.total.get("cpus") in (None, 0.0)
    assert fw.offers() == []
    second = hr.add_agent("cpus:2;mem:1024")
    written(hr)
    assert [m["type"] for m in second.take()] == ["REGISTERED"]
    assert len(fw.offers()) == 1
    assert hr.master.book.total.get("cpus") == 2.0


def test_frameworks_hear_of_an_unreachable_agent_once_it_is_written(hr, store):
    agent, fw = running_task(hr)
    written(hr)
    store.hold()
    for _ in range(6):
        hr.advance(15)
    assert agent.record.state is AgentState.UNREACHABLE
    assert fw.updates() == [] and fw.take("FAILURE") == []
    store.release()
    written(hr)
    assert [u["state"] for u in fw.updates()] == ["TASK_LOST"]
    assert len(fw.take("FAILURE")) == 1
    assert store.records["agents"][agent.agent_id]["state"] == "unreachable"


def test_a_failed_unreachable_write_is_retried_at_the_next_ping_round(hr, store):
    agent, fw = running_task(hr)
    written(hr)
    store.failing = 1
    for _ in range(6):
        hr.advance(15)
    written(hr)
    assert store.records["agents"][agent.agent_id]["state"] == "admitted"
    assert fw.updates() == []
    hr.advance(15)
    written(hr)
    assert store.records["agents"][agent.agent_id]["state"] == "unreachable"
    assert [u["state"] for u in fw.updates()] == ["TASK_LOST"]


def recovered_master(records: MemoryStore) -> MasterHarness:
    """A new leader on the registry ``records`` (a failover or a master restart)."""
    harness = MasterHarness(agent_ping_timeout=15, max_agent_ping_timeouts=5)
    harness.master.registry = Registry(records)
    harness.master.recover(harness.master.registry.recover().result(10))
    return harness


@pytest.mark.parametrize("partition_aware", [False, True])
def test_tasks_on_an_agent_unreachable_before_a_failover_are_killed_or_running(
        hr, store, partition_aware):
    capabilities = ("PARTITION_AWARE",) if partition_aware else ()
    agent, fw = running_task(hr, capabilities=capabilities)
    task_info = fw.record.tasks["t"].info
    for _ in range(6):
        hr.advance(15)
    written(hr)
    told = [u["state"] for u in fw.updates()]
    assert told == ["TASK_UNREACHABLE" if partition_aware else "TASK_LOST"]
    # The leader dies; a new one recovers from the registry.
    new = recovered_master(store)
    try:
        assert new.master.book.agents[agent.agent_id].state is AgentState.UNREACHABLE
        fw2 = new.subscribe(framework_id=fw.framework_id, capabilities=capabilities,
                            failover_timeout=600)
        fw2.take()
        report = AgentTask(framework_id=fw.framework_id,
                           task=TaskInfo.from_json(task_info.to_json()),
                           state=TaskState.TASK_RUNNING)
        back = new.add_agent("cpus:2;mem:1024", agent_id=agent.agent_id, tasks=[report])
        written(new)
        kinds = [m["type"] for m in back.take()]
        if partition_aware:
            assert kinds == ["REGISTERED"]
            (status,) = fw2.updates()
            assert (status["state"], status["reason"]) == ("TASK_RUNNING",
                                                           "REASON_AGENT_REREGISTERED")
        else:
            assert kinds == ["REGISTERED", "KILL_TASK"]
            assert fw2.updates() == []  # no TASK_RUNNING for a task it was told is lost
            back.update(fw.framework_id, "t", TaskState.TASK_KILLED)
            assert [u["state"] for u in fw2.updates()] == ["TASK_KILLED"]
    finally:
        new.master.registry.close()


def test_reported_tasks_of_a_removed_framework_are_shut_down_after_registered(h):
    agent, fw = running_task(h)
    task_info = fw.record.tasks["t"].info
    fw.call("TEARDOWN")
    agent.take()
    report = AgentTask(framework_id=fw.framework_id, task=TaskInfo.from_json(task_info.to_json()),
                       state=TaskState.TASK_RUNNING)
    h.add_agent("cpus:2;mem:1024", agent_id=agent.agent_id, tasks=[report], end=agent)
    assert [m["type"] for m in agent.take()] == ["REGISTERED", "SHUTDOWN_FRAMEWORK"]
