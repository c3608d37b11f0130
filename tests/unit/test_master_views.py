"""Mesos JSON shapes of the master's book (views, metrics, operator call parsing).

A real Master on a fake clock, fed through its own entry points (agents register, a
framework subscribes and launches, the agent reports statuses); no sockets, no mocks.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from mesonb.config import MasterConfig
from mesonb.master import views, views_v0
from mesonb.master.book import Task
from mesonb.master.http.metrics import percentile, snapshot, timer
from mesonb.master.http.operator import Call, CallType, validate_role
from mesonb.master.master import Master
from mesonb.protocol.agent import AgentCall, Register
from mesonb.protocol.errors import BadRequest
from mesonb.protocol.mesos import TaskInfo
from mesonb.protocol.resources import Resources
from mesonb.protocol.scheduler import Call as SchedulerCall
from mesonb.testing.clock import FakeClock


class World:
    """A master, its scheduled callbacks, and the messages it sent to each end."""

    def __init__(self, **config: Any) -> None:
        self.clock = FakeClock()
        self.master = Master(MasterConfig(**config), self.clock)
        self.pending: list[Any] = []
        self.master.attach(self.pending.append)
        self.sent: dict[str, list[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.master.observers.append(self.events.append)

    def settle(self) -> None:
        while self.pending:
            self.pending.pop(0)()

    def agent(self, hostname: str, resources: str = "cpus:4;mem:4096;disk:1000;ports:[31000-31009]",
              attributes: list[dict[str, Any]] | None = None) -> str:
        inbox: list[dict[str, Any]] = []
        info: dict[str, Any] = {"hostname": hostname, "port": 5051,
                                "resources": Resources.parse(resources).to_json()}
        if attributes:
            info["attributes"] = attributes
        register = Register.from_json({"agent_info": info, "version": "1.11.0"})
        agent = self.master.agents.register(register, inbox.append, lambda: None)
        assert agent is not None
        self.sent[agent.id] = inbox
        return agent.id

    def framework(self, name: str, **info: Any) -> str:
        inbox: list[dict[str, Any]] = []
        call = SchedulerCall.parse({"type": "SUBSCRIBE", "subscribe": {
            "framework_info": {"user": "alice", "name": name, **info}}})
        framework = self.master.calls.subscribe(call, f"stream-{name}", inbox.append,
                                                lambda reason: None)
        assert framework is not None
        self.sent[framework.id] = inbox
        return framework.id

    def offers(self, framework_id: str) -> list[dict[str, Any]]:
        self.settle()
        self.master.allocate()
        inbox = self.sent[framework_id]
        out = [o for e in inbox if e["type"] == "OFFERS" for o in e["offers"]["offers"]]
        inbox[:] = [e for e in inbox if e["type"] != "OFFERS"]
        return out

    def launch(self, framework_id: str, offer: dict[str, Any], *tasks: dict[str, Any]) -> None:
        name = self.master.book.frameworks[framework_id].name
        call = SchedulerCall.parse({
            "type": "ACCEPT", "framework_id": {"value": framework_id},
            "accept": {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0},
                       "operations": [{"type": "LAUNCH", "launch": {"task_infos": list(tasks)}}]}})
        self.master.calls.handle(call, f"stream-{name}")

    def update(self, agent_id: str, framework_id: str, task_id: str, state: str,
               **status: Any) -> None:
        agent = self.master.book.agents[agent_id]
        self.clock.advance(1)
        call = AgentCall.from_json({"type": "STATUS_UPDATE", "status_update": {
            "framework_id": {"value": framework_id},
            "status": {"task_id": {"value": task_id}, "state": state,
                       "source": "SOURCE_EXECUTOR", "timestamp": self.clock.time(),
                       "uuid": base64.b64encode(uuid.uuid4().bytes).decode(), **status}}})
        self.master.agents.handle(agent, call)


def task_info(task_id: str, agent_id: str, resources: str = "cpus:1;mem:128",
              **extra: Any) -> dict[str, Any]:
    return {"name": f"task {task_id}", "task_id": {"value": task_id},
            "agent_id": {"value": agent_id}, "resources": Resources.parse(resources).to_json(),
            "command": {"value": "sleep 100"}, **extra}


@pytest.fixture
def world() -> World:
    """Two agents, a framework in role ``web`` with one running and one finished task."""
    w = World(cluster="test-cluster", secret="s3cret-token")
    w.a1 = w.agent("host1", attributes=[{"name": "rack", "type": "TEXT",
                                          "text": {"value": "r1"}}])
    w.a2 = w.agent("host2", "cpus:2;mem:1024")
    w.fw = w.framework("web-fw", roles=["web"], capabilities=[{"type": "MULTI_ROLE"}],
                       labels={"labels": [{"key": "team", "value": "x"}]})
    offers = {o["agent_id"]["value"]: o for o in w.offers(w.fw)}
    w.launch(w.fw, offers[w.a1],
             task_info("t1", w.a1, labels={"labels": [{"key": "k", "value": "v"}]}),
             task_info("t2", w.a1, "cpus:0.5;mem:64;ports:[31000-31001]"))
    w.update(w.a1, w.fw, "t1", "TASK_RUNNING", data=base64.b64encode(b"x" * 100).decode())
    w.update(w.a1, w.fw, "t2", "TASK_RUNNING")
    w.update(w.a1, w.fw, "t2", "TASK_FINISHED")
    w.settle()
    return w


# ---- v1 ----------------------------------------------------------------------------------


def test_v1_task_follows_the_task_message(world):
    (task,) = views.get_tasks(world.master.book)["tasks"]
    assert task["task_id"] == {"value": "t1"}
    assert task["framework_id"] == {"value": world.fw}
    assert task["agent_id"] == {"value": world.a1}
    assert task["state"] == "TASK_RUNNING"
    assert task["labels"] == {"labels": [{"key": "k", "value": "v"}]}
    assert "role" not in task  # the Task message has no such field
    cpus = next(r for r in task["resources"] if r["name"] == "cpus")
    assert cpus["scalar"] == {"value": 1.0}
    assert cpus["allocation_info"] == {"role": "web"}
    (status,) = task["statuses"]
    assert status["state"] == "TASK_RUNNING"
    assert "data" not in status  # payloads never travel in state answers
    assert task["status_update_state"] == "TASK_RUNNING"
    assert base64.b64decode(task["status_update_uuid"])


def test_v1_get_state_holds_every_section(world):
    state = views.get_state(world.master.book)
    assert set(state) == {"get_tasks", "get_executors", "get_frameworks", "get_agents"}
    tasks = state["get_tasks"]
    assert [t["task_id"]["value"] for t in tasks["completed_tasks"]] == ["t2"]
    assert tasks["unreachable_tasks"] == []
    agents = {a["agent_info"]["id"]["value"]: a for a in state["get_agents"]["agents"]}
    assert set(agents) == {world.a1, world.a2}
    a1 = agents[world.a1]
    assert a1["agent_info"]["hostname"] == "host1"
    assert a1["active"] is True
    assert {c["type"] for c in a1["capabilities"]} <= {"MULTI_ROLE", "HIERARCHICAL_ROLE"}
    used = {r["name"]: r["scalar"]["value"] for r in a1["allocated_resources"]
            if r["type"] == "SCALAR"}
    assert used == {"cpus": 1.0, "mem": 128.0}
    registered = world.master.book.agents[world.a1].registered_time
    assert a1["registered_time"] == {"nanoseconds": int(registered * 1e9)}
    (fw,) = state["get_frameworks"]["frameworks"]
    assert fw["framework_info"]["id"] == {"value": world.fw}
    assert fw["framework_info"]["name"] == "web-fw"
    assert (fw["active"], fw["connected"], fw["recovered"]) == (True, True, False)
    assert {r["name"] for r in fw["allocated_resources"]} == {"cpus", "mem"}
    assert state["get_frameworks"]["completed_frameworks"] == []


def test_v1_framework_lists_its_outstanding_offers():
    w = World()
    w.agent("h")
    fw = w.framework("other")
    offers = w.offers(fw)
    assert offers
    (entry,) = views.get_frameworks(w.master.book)["frameworks"]
    assert [o["id"] for o in entry["offers"]] == [o["id"] for o in offers]
    assert entry["offered_resources"]


def test_roles_are_known_with_ancestors_weights_and_holdings(world):
    world.framework("analytics", roles=["eng/analytics"])
    world.master.role_weights["batch"] = 3.0
    roles = {r["name"]: r for r in views.get_roles(world.master)["roles"]}
    assert list(roles) == sorted(roles)
    assert {"web", "eng", "eng/analytics", "batch"} <= set(roles)
    assert roles["batch"]["weight"] == 3.0
    assert roles["web"]["weight"] == 1.0
    assert roles["web"]["frameworks"] == [{"value": world.fw}]
    held = {r["name"]: r["scalar"]["value"] for r in roles["web"]["resources"]}
    assert held["cpus"] >= 1.0
    v0 = {r["name"]: r for r in views_v0.v0_roles(world.master)["roles"]}
    assert v0["web"]["frameworks"] == [world.fw]
    assert v0["web"]["allocated"] == {"cpus": 1.0, "mem": 128.0}
    assert v0["web"]["quota"]["role"] == "web"


# ---- v0 ----------------------------------------------------------------------------------


def test_v0_state_uses_flat_ids_and_flat_resources(world):
    state = views_v0.v0_state(world.master)
    master = world.master
    assert state["id"] == master.id
    assert state["pid"] == master.pid
    assert state["leader"] == master.pid
    assert state["leader_info"]["port"] == master.port
    assert state["cluster"] == "test-cluster"
    assert state["activated_slaves"] == 2
    assert (state["deactivated_slaves"], state["unreachable_slaves"]) == (0, 0)
    assert state["start_time"] == master.start_time
    for key in ("version", "elected_time", "hostname", "flags", "recovered_slaves",
                "completed_frameworks", "orphan_tasks", "unregistered_frameworks"):
        assert key in state
    slaves = {s["id"]: s for s in state["slaves"]}
    s1 = slaves[world.a1]
    assert s1["hostname"] == "host1"
    assert s1["pid"] == "slave(1)@host1:5051"
    assert s1["attributes"] == {"rack": "r1"}
    assert s1["resources"] == {"cpus": 4.0, "mem": 4096.0, "disk": 1000.0, "gpus": 0.0,
                               "ports": "[31000-31009]"}
    assert s1["used_resources"]["cpus"] == 1.0
    assert s1["unreserved_resources"] == s1["resources"]
    (fw,) = state["frameworks"]
    assert fw["id"] == world.fw
    assert fw["roles"] == ["web"] and "role" not in fw
    assert fw["capabilities"] == ["MULTI_ROLE"]
    assert fw["labels"] == [{"key": "team", "value": "x"}]
    assert fw["user"] == "alice" and fw["active"] is True
    (t1,) = fw["tasks"]
    assert t1["id"] == "t1" and t1["slave_id"] == world.a1 and t1["framework_id"] == world.fw
    assert t1["executor_id"] == "" and t1["role"] == "web"
    assert t1["resources"]["cpus"] == 1.0 and t1["resources"]["gpus"] == 0.0
    assert t1["statuses"] == [{"state": "TASK_RUNNING", "timestamp": pytest.approx(
        world.clock.time() - 2)}]
    assert t1["labels"] == [{"key": "k", "value": "v"}]
    (t2,) = fw["completed_tasks"]
    assert t2["state"] == "TASK_FINISHED"
    assert t2["resources"]["ports"] == "[31000-31001]"
    json.dumps(state)  # all plain JSON


def test_v0_flags_never_show_the_secret(world):
    flags = views.master_flags(world.master.config)
    assert "secret" not in flags
    assert "s3cret-token" not in json.dumps(views_v0.v0_state(world.master))
    assert flags["allocation_interval"] == "1secs"
    assert flags["authenticate_frameworks"] == "true"
    assert views.duration(0.1) == "100ms" and views.duration(120) == "2mins"


def test_v0_executors_offers_and_slave_filter():
    w = World()
    agent_id = w.agent("h")
    fw = w.framework("ex")
    (offer,) = w.offers(fw)
    executor = {"executor_id": {"value": "e1"}, "command": {"value": "run-exec",
                                                            "arguments": ["a"]},
                "resources": Resources.parse("cpus:0.1;mem:32").to_json("*", "*")}
    task = task_info("t1", agent_id)
    del task["command"]
    task["executor"] = executor
    w.launch(fw, offer, task)
    (entry,) = views_v0.v0_frameworks(w.master.book)["frameworks"]
    (ex,) = entry["executors"]
    assert ex["executor_id"] == "e1" and ex["framework_id"] == fw and ex["slave_id"] == agent_id
    assert ex["command"]["value"] == "run-exec" and ex["command"]["argv"] == ["a"]
    assert ex["resources"]["cpus"] == 0.1 and ex["role"] == "*"
    (v1,) = views.get_executors(w.master.book)["executors"]
    assert v1["agent_id"] == {"value": agent_id}
    assert v1["executor_info"]["executor_id"] == {"value": "e1"}
    w2 = w.framework("offered")
    (offer2,) = w.offers(w2)
    fws = {f["id"]: f for f in views_v0.v0_frameworks(w.master.book)["frameworks"]}
    (o,) = fws[w2]["offers"]
    assert o["id"] == offer2["id"]["value"] and o["slave_id"] == agent_id
    assert views_v0.v0_frameworks(w.master.book, select=w2)["frameworks"][0]["id"] == w2
    assert views_v0.v0_slaves(w.master.book, select="nope")["slaves"] == []
    (slave,) = views_v0.v0_slaves(w.master.book)["slaves"]
    assert {"used_resources_full", "unreserved_resources_full"} <= set(slave)


def test_v0_tasks_sort_by_first_status_and_page():
    w = World()
    agent_id = w.agent("h", "cpus:8;mem:8192")
    fw = w.framework("many")
    (offer,) = w.offers(fw)
    w.launch(fw, offer, *[task_info(f"t{i}", agent_id, "cpus:0.5;mem:16") for i in range(5)])
    for i in (3, 1, 4, 0):  # t2 never reports: no status, no timestamp
        w.update(agent_id, fw, f"t{i}", "TASK_RUNNING")
    book = w.master.book
    ids = [t["id"] for t in views_v0.v0_tasks(book)["tasks"]]
    assert ids == ["t0", "t4", "t1", "t3", "t2"]
    ids = [t["id"] for t in views_v0.v0_tasks(book, order="asc")["tasks"]]
    assert ids == ["t2", "t3", "t1", "t4", "t0"]
    ids = [t["id"] for t in views_v0.v0_tasks(book, limit=2, offset=1)["tasks"]]
    assert ids == ["t4", "t1"]
    assert [t["id"] for t in views_v0.v0_tasks(book, task_id="t3")["tasks"]] == ["t3"]
    assert views_v0.v0_tasks(book, framework_id="other")["tasks"] == []


def test_v0_state_summary_counts_tasks_per_agent_and_framework(world):
    summary = views_v0.v0_state_summary(world.master)
    assert summary["cluster"] == "test-cluster"
    slaves = {s["id"]: s for s in summary["slaves"]}
    assert slaves[world.a1]["TASK_RUNNING"] == 1
    assert slaves[world.a1]["TASK_FINISHED"] == 1
    assert slaves[world.a1]["framework_ids"] == [world.fw]
    assert slaves[world.a2]["framework_ids"] == []
    (fw,) = summary["frameworks"]
    assert (fw["TASK_RUNNING"], fw["TASK_FINISHED"], fw["TASK_STAGING"]) == (1, 1, 0)
    assert fw["slave_ids"] == [world.a1]
    assert "tasks" not in fw


def test_removed_framework_moves_to_completed(world):
    master = world.master
    master.remove_framework(master.book.frameworks[world.fw], "test")
    state = views_v0.v0_state(master)
    assert state["frameworks"] == []
    (done,) = state["completed_frameworks"]
    assert done["active"] is False and done["unregistered_time"] > 0
    assert {t["id"]: t["state"] for t in done["completed_tasks"]} == {
        "t1": "TASK_KILLED", "t2": "TASK_FINISHED"}
    v1 = views.get_state(master.book)
    assert len(v1["get_frameworks"]["completed_frameworks"]) == 1
    assert {t["task_id"]["value"] for t in v1["get_tasks"]["completed_tasks"]} == {"t1", "t2"}
    removed = [e for e in world.events if e["type"] == "FRAMEWORK_REMOVED"]
    assert removed[0]["framework_removed"]["framework_info"]["id"] == {"value": world.fw}


# ---- metrics -----------------------------------------------------------------------------


def test_metrics_snapshot_counts_from_the_book(world):
    world.master.allocate()
    world.master.allocate()
    m = snapshot(world.master)
    assert m["master/elected"] == 1.0
    assert m["master/slaves_active"] == 2 and m["master/slaves_connected"] == 2
    assert m["master/slaves_disconnected"] == 0 and m["master/slaves_unreachable"] == 0
    assert m["master/frameworks_active"] == 1 and m["master/frameworks_inactive"] == 0
    assert m["master/cpus_total"] == 6.0 and m["master/cpus_used"] == 1.0
    assert m["master/cpus_percent"] == pytest.approx(1 / 6)
    assert m["master/gpus_percent"] == 0.0
    assert m["master/tasks_running"] == 1 and m["master/tasks_finished"] == 1
    assert m["master/tasks_staging"] == 0 and "master/tasks_gone_by_operator" in m
    assert m["master/slave_registrations"] == 2
    assert m["master/valid_status_updates"] == 3
    assert m["master/messages_launch_tasks"] == m["master/messages_accept"] == 1
    assert m["master/outstanding_offers"] == len(world.master.book.offers)
    assert m["allocator/mesos/resources/cpus/total"] == 6.0
    assert m["allocator/mesos/resources/cpus/offered_or_allocated"] >= 1.0
    assert m["allocator/mesos/allocation_runs"] == world.master.allocation_runs >= 2
    assert m["allocator/mesos/allocation_run_ms/count"] >= 2
    assert m["system/cpus_total"] >= 1 and m["system/mem_total_bytes"] > 0
    assert m["master/operator_event_stream_subscribers"] == 1  # the World's observer
    assert all(isinstance(v, float) for v in m.values())
    assert list(m) == sorted(m)


def test_timer_and_percentiles_follow_libprocess():
    assert timer("t", []) == {}
    assert timer("t", [5.0]) == {"t": 5.0}
    out = timer("t", [4.0, 1.0, 3.0, 2.0])
    assert out["t"] == 2.0  # the latest sample
    assert (out["t/count"], out["t/min"], out["t/max"]) == (4.0, 1.0, 4.0)
    assert out["t/p50"] == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.9) == pytest.approx(3.7)


def test_disconnected_agent_and_framework_show_in_metrics(world):
    master = world.master
    agent = master.book.agents[world.a2]
    master.agents.disconnected(agent, agent.send)
    framework = master.book.frameworks[world.fw]
    framework.info.failover_timeout = 60.0
    master.calls.disconnected(framework, "stream-web-fw")
    m = snapshot(master)
    assert (m["master/slaves_active"], m["master/slaves_inactive"]) == (1, 1)
    assert m["master/slaves_disconnected"] == 1
    assert (m["master/frameworks_active"], m["master/frameworks_disconnected"]) == (0, 1)
    state = views_v0.v0_state(master)
    assert state["deactivated_slaves"] == 1
    (fw,) = state["frameworks"]
    assert (fw["active"], fw["connected"], fw["recovered"]) == (False, False, False)


# ---- operator calls ----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["*", "web", "eng/analytics", "a.b", "x-y"])
def test_valid_roles(role):
    assert validate_role(role) is None


@pytest.mark.parametrize("role", ["", "/a", "a/", "a//b", ".", "a/..", "-a", "a b", "a/*",
                                  "tab\there"])
def test_invalid_roles(role):
    assert validate_role(role)


def test_operator_call_parsing():
    assert Call.parse(b'{"type":"GET_STATE"}').type is CallType.GET_STATE
    call = Call.parse(b'{"type":"TEARDOWN","teardown":{"framework_id":{"value":"f1"}}}')
    assert call.teardown is not None and call.teardown.framework_id == "f1"
    for body, needle in [(b"{", "parse"), (b"[]", "object"), (b"{}", "'type'"),
                         (b'{"type":"UNKNOWN"}', "'type'"), (b'{"type":"NOPE"}', "NOPE"),
                         (b'{"type":"TEARDOWN"}', "'teardown'"),
                         (b'{"type":"MARK_AGENT_GONE","mark_agent_gone":{}}', "agent_id"),
                         (b'{"type":"UPDATE_WEIGHTS","update_weights":{"weight_infos":'
                          b'[{"role":"a","weight":"x"}]}}', "weight")]:
        with pytest.raises(BadRequest, match=needle):
            Call.parse(body)


# ---- scale -------------------------------------------------------------------------------


def test_state_of_a_big_book_is_built_in_one_pass():
    """1,000 agents and 10,000 tasks: every task appears once in each family."""
    w = World()
    book = w.master.book
    fw = w.framework("big")
    agent_ids = [w.agent(f"h{i}", "cpus:16;mem:65536") for i in range(1000)]
    res = Resources.parse("cpus:0.1;mem:32")
    for i in range(10_000):
        agent_id = agent_ids[i % 1000]
        info = TaskInfo.from_json(task_info(f"t{i}", agent_id, "cpus:0.1;mem:32"))
        book.add_task(Task(info=info, framework_id=fw, agent_id=agent_id, role="*",
                           resources=res))
    v0 = views_v0.v0_state(w.master)
    assert len(v0["slaves"]) == 1000 and len(v0["frameworks"][0]["tasks"]) == 10_000
    v1 = views.get_state(book)
    assert len(v1["get_tasks"]["tasks"]) == 10_000
    assert snapshot(w.master)["master/cpus_used"] == pytest.approx(1000.0)


def test_v0_completed_task_statuses_end_with_the_terminal_status(world):
    """The status update manager forwards in order: a RUNNING retried after the task
    failed carries latest_state FAILED, and the master completes the task at once. The
    TASK_FAILED update that follows must still land in the completed task's statuses (the
    web UI and tools read the terminal status there), once even if the agent resends it;
    a status of the same state as the last replaces it, as Mesos's Master::updateTask."""
    w = world
    offers = {o["agent_id"]["value"]: o for o in w.offers(w.fw)}
    w.launch(w.fw, offers[w.a1], task_info("t3", w.a1, "cpus:0.5;mem:64"))
    agent = w.master.book.agents[w.a1]

    def send(state: str, uid: bytes, latest: str | None = None, **status: Any) -> None:
        w.clock.advance(1)
        w.master.agents.handle(agent, AgentCall.from_json({
            "type": "STATUS_UPDATE", "status_update": {
                "framework_id": {"value": w.fw}, **({"latest_state": latest} if latest else {}),
                "status": {"task_id": {"value": "t3"}, "state": state,
                           "source": "SOURCE_EXECUTOR", "timestamp": w.clock.time(),
                           "uuid": base64.b64encode(uid).decode(), **status}}}))

    send("TASK_RUNNING", b"r1")
    send("TASK_RUNNING", b"r2", healthy=True)  # a health check's update replaces it
    send("TASK_RUNNING", b"r2", "TASK_FAILED", healthy=True)  # retried; failed meanwhile
    send("TASK_FAILED", b"f1", message="exit 1", reason="REASON_COMMAND_EXECUTOR_FAILED")
    failed_at = w.clock.time()
    send("TASK_FAILED", b"f1", message="exit 1", reason="REASON_COMMAND_EXECUTOR_FAILED",
         timestamp=failed_at)  # the agent's resend: not acknowledged in time
    state = views_v0.v0_state(w.master)
    (fw,) = state["frameworks"]
    t3 = next(t for t in fw["completed_tasks"] if t["id"] == "t3")
    assert t3["state"] == "TASK_FAILED"
    assert [s["state"] for s in t3["statuses"]] == ["TASK_RUNNING", "TASK_FAILED"]
    assert t3["statuses"][0]["healthy"] is True
    assert t3["statuses"][-1]["timestamp"] == pytest.approx(failed_at)
    v1 = views.task_json(w.master.book.find_completed_task(w.fw, "t3"))
    assert [s["state"] for s in v1["statuses"]] == ["TASK_RUNNING", "TASK_FAILED"]
