"""The registry's records and the master's recovery from them, on a fake clock."""

import threading

import pytest

from mesonb.config import MasterConfig
from mesonb.master.book import AgentState
from mesonb.master.master import Master
from mesonb.master.registry import DirectoryStore, MemoryStore, Registry
from mesonb.testing.clock import FakeClock

AGENT = {"hostname": "h1", "port": 5051, "id": {"value": "A1"},
         "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}}]}
FRAMEWORK = {"user": "u", "name": "fw", "id": {"value": "F1"}, "failover_timeout": 5}


@pytest.mark.parametrize("kind", ["memory", "directory"])
def test_records_round_trip_and_dedupe(kind, tmp_path):
    store = MemoryStore() if kind == "memory" else DirectoryStore(tmp_path / "registry")
    registry = Registry(store)
    try:
        first = registry.admit_agent("A1", AGENT)
        assert first is not None
        assert registry.admit_agent("A1", AGENT) in (first, None)  # the same write, or none
        first.result(5)
        assert registry.admit_agent("A1", AGENT) is None  # the store holds it: no write
        registry.admit_agent("A/..", AGENT)  # odd ids stay inside the folder
        registry.mark_unreachable("A2", AGENT, 12.5)
        registry.mark_gone("A3", 13.0)
        registry.add_framework("F1", FRAMEWORK)
        registry.add_framework("F2", FRAMEWORK)
        registry.remove_framework("F2")
        registry.flush(5)
    finally:
        registry.close()
    again = Registry(store)
    state = again.recover().result(5)
    again.close()
    assert set(state.admitted) == {"A1", "A/.."}
    assert state.unreachable == {"A2": (AGENT, 12.5)}
    assert state.gone == {"A3": 13.0}
    assert set(state.frameworks) == {"F1"}
    if kind == "directory":
        assert all(p.parent.parent == tmp_path / "registry"
                   for p in (tmp_path / "registry").rglob("*.json"))


def test_master_recovers_and_expires_agents_that_do_not_come_back():
    store = MemoryStore()
    registry = Registry(store)
    registry.admit_agent("A1", AGENT)
    registry.mark_unreachable("A2", {**AGENT, "hostname": "h2"}, 3.0)
    registry.mark_gone("A3", 4.0)
    registry.add_framework("F1", FRAMEWORK)
    registry.flush(5)
    clock = FakeClock()
    master = Master(MasterConfig(agent_reregister_timeout=60), clock)
    master.registry = registry
    try:
        master.recover(registry.recover().result(5))
        assert set(master.recovered_agents) == {"A1"}
        assert master.book.agents["A2"].state is AgentState.UNREACHABLE
        assert "A3" in master.book.gone_agents
        framework = master.book.frameworks["F1"]
        assert not framework.active
        assert framework.failover_deadline == clock.monotonic() + 60  # max(5, 60)
        clock.advance(59)
        master.tick()
        assert "A1" in master.recovered_agents
        clock.advance(2)
        master.tick()
        assert not master.recovered_agents
        assert master.book.agents["A1"].state is AgentState.UNREACHABLE
        registry.flush(5)
        assert store.records["agents"]["A1"]["state"] == "unreachable"
    finally:
        registry.close()


def test_reconciliation_gives_no_answer_for_tasks_on_recovered_agents():
    from mesonb.master.book import Framework
    from mesonb.protocol.mesos import FrameworkInfo
    from mesonb.protocol.scheduler import ReconcileTask

    master = Master(MasterConfig(), FakeClock())
    master.recovered_agents["A1"] = AGENT
    framework = master.book.add_framework(
        Framework("F1", FrameworkInfo(user="u", name="fw", id="F1")))
    sent: list = []
    framework.send = sent.append
    master.calls._reconcile_one(framework, ReconcileTask(task_id="t1", agent_id="A1"))
    master.calls._reconcile_one(framework, ReconcileTask(task_id="t1"))
    assert sent == []  # case 2: the agent may still come back
    master.calls._reconcile_one(framework, ReconcileTask(task_id="t1", agent_id="A9"))
    # case 6, as TASK_LOST for a framework without PARTITION_AWARE
    assert [e["update"]["status"]["state"] for e in sent] == ["TASK_LOST"]


class FlakyStore(MemoryStore):
    """A MemoryStore whose next ``fail`` writes raise (a lost ZooKeeper connection)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = 0
        self.writes = 0

    def _maybe_fail(self) -> None:
        self.writes += 1
        if self.fail:
            self.fail -= 1
            raise ConnectionError("connection loss")

    def put(self, kind, key, record):
        self._maybe_fail()
        super().put(kind, key, record)

    def delete(self, kind, key):
        self._maybe_fail()
        super().delete(kind, key)


@pytest.mark.parametrize("write", ["admit", "unreachable", "framework", "remove"])
def test_a_failed_write_is_written_again_when_retried(write):
    store = FlakyStore()
    registry = Registry(store)
    calls = {
        "admit": lambda: registry.admit_agent("A1", AGENT),
        "unreachable": lambda: registry.mark_unreachable("A1", AGENT, 3.0),
        "framework": lambda: registry.add_framework("F1", FRAMEWORK),
        "remove": lambda: registry.remove_framework("F1"),
    }
    try:
        if write == "remove":
            registry.add_framework("F1", FRAMEWORK).result(5)
        store.fail = 1
        failed = calls[write]()
        with pytest.raises(ConnectionError):
            failed.result(5)
        again = calls[write]()
        assert again is not None, "a failed write was taken as persisted"
        again.result(5)
        assert calls[write]() is None  # now it is in the store
    finally:
        registry.close()
    if write == "admit":
        assert store.records["agents"]["A1"]["state"] == "admitted"
    elif write == "unreachable":
        assert store.records["agents"]["A1"]["state"] == "unreachable"
    elif write == "framework":
        assert "F1" in store.records["frameworks"]
    else:
        assert "F1" not in store.records["frameworks"]


def test_writes_of_one_record_keep_their_order_and_the_last_one_wins():
    gate = threading.Event()

    class Gated(MemoryStore):
        def put(self, kind, key, record):
            gate.wait(5)
            super().put(kind, key, record)

    store = Gated()
    registry = Registry(store)
    try:
        first = registry.admit_agent("A1", AGENT)
        registry.mark_unreachable("A1", AGENT, 3.0)
        # back to the first record while both writes are still under way: written again
        last = registry.admit_agent("A1", AGENT)
        assert last is not None and last is not first
        gate.set()
        last.result(5)
    finally:
        registry.close()
    assert store.records["agents"]["A1"]["state"] == "admitted"

