"""The operator API (``/api/v1``), the legacy ``/master/*`` endpoints and ``/metrics``
over real HTTP against a real master daemon on ``127.0.0.1:0``.

The daemon runs on its own event loop in a thread of the test process; agents are
WebSocket clients speaking the agent protocol, frameworks are v1 scheduler streams.
Nothing sleeps to synchronise: every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import collections
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from mesonb.config import VERSION, MasterConfig
from mesonb.master.daemon import MasterDaemon
from mesonb.master.http.operator import OperatorHandler
from mesonb.protocol import recordio
from mesonb.protocol.agent import AGENT_PATH
from mesonb.protocol.resources import Resources

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class MasterThread:
    """A MasterDaemon serving on its own event loop in a background thread."""

    def __init__(self, config: MasterConfig) -> None:
        self.config = config
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.daemon: MasterDaemon | None = None
        self.thread = threading.Thread(target=self._run, name="mesonb-master", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.daemon = MasterDaemon(self.config)
        await self.daemon.start()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.daemon.stop()

    def start(self) -> MasterThread:
        self.thread.start()
        assert self._ready.wait(30), "master did not start"
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)

    @property
    def url(self) -> str:
        assert self.daemon is not None
        return self.daemon.url

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn(*args)`` on the master's loop and return its result."""
        assert self.loop is not None

        async def call() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)


@pytest.fixture
def master(tmp_path: Path) -> Iterator[MasterThread]:
    running = MasterThread(MasterConfig(port=0, work_dir=tmp_path, heartbeat_interval=0.3,
                                        cluster="itest"))
    try:
        yield running.start()
    finally:
        running.stop()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)


def op(master: MasterThread, body: Any, path: str = "/api/v1",
       headers: dict[str, str] | None = None) -> requests.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(master.url + path, data=data, headers=headers or JSON_HEADERS,
                         timeout=10)


def metric(master: MasterThread, name: str) -> float:
    return requests.get(master.url + "/metrics/snapshot", timeout=10).json()[name]


class EventStream:
    """A RecordIO event stream read with deadlines (operator or scheduler SUBSCRIBE)."""

    def __init__(self, master: MasterThread, path: str, body: dict[str, Any]) -> None:
        self.response = requests.post(master.url + path, data=json.dumps(body),
                                      headers=JSON_HEADERS, stream=True, timeout=(10, 10))
        assert self.response.status_code == 200, self.response.text
        assert self.response.headers.get("Transfer-Encoding") == "chunked"
        self._chunks = self.response.iter_content(chunk_size=None)
        self._decoder = recordio.Decoder()
        self._events: collections.deque[dict[str, Any]] = collections.deque()

    def next(self, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not self._events:
            assert time.monotonic() < deadline, "no event before the deadline"
            self._events.extend(self._decoder.feed_json(next(self._chunks)))
        return self._events.popleft()

    def next_of(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.1, deadline - time.monotonic()))
            if event["type"] == kind:
                return event

    def ended(self) -> bool:
        """True once the server has closed the stream (reads until EOF)."""
        try:
            for chunk in self._chunks:
                self._events.extend(self._decoder.feed_json(chunk))
        except requests.exceptions.ConnectionError:
            pass
        return True

    def close(self) -> None:
        self.response.close()


class FakeAgent:
    """An agent's link: a WebSocket to the master speaking the agent protocol."""

    def __init__(self, master: MasterThread, hostname: str,
                 resources: str = "cpus:2;mem:1024;disk:100") -> None:
        url = master.url.replace("http://", "ws://") + AGENT_PATH
        self.ws = websocket.create_connection(url, timeout=10)
        self.pending: list[dict[str, Any]] = []
        self.ws.send(json.dumps({"type": "REGISTER", "register": {
            "agent_info": {"hostname": hostname, "port": 5051,
                           "resources": Resources.parse(resources).to_json()},
            "version": VERSION}}))
        registered = self.recv_of("REGISTERED")
        self.agent_id = registered["registered"]["agent_id"]["value"]

    def recv_of(self, kind: str) -> dict[str, Any]:
        while True:
            if not self.pending:
                frame = json.loads(self.ws.recv())  # one message, or an array of several
                self.pending.extend(frame if isinstance(frame, list) else [frame])
            message = self.pending.pop(0)
            if message["type"] == kind:
                return message

    def close(self) -> None:
        self.ws.close()


# ---- synchronous calls -------------------------------------------------------------------


def test_simple_calls_answer_with_master_proto_responses(master):
    def call(kind: str) -> dict[str, Any]:
        response = op(master, {"type": kind})
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        body = response.json()
        assert body["type"] == kind
        return body[kind.lower()]

    assert call("GET_HEALTH") == {"healthy": True}
    assert call("GET_VERSION")["version_info"]["version"] == VERSION
    flags = {f["name"]: f["value"] for f in call("GET_FLAGS")["flags"]}
    assert flags["cluster"] == "itest" and flags["port"] == str(master.daemon.port)
    metrics = {m["name"]: m["value"] for m in call("GET_METRICS")["metrics"]}
    assert metrics["master/elected"] == 1.0
    got = call("GET_MASTER")
    assert got["master_info"]["address"]["port"] == master.daemon.port
    assert got["start_time"] > 0 and got["elected_time"] > 0
    assert call("GET_WEIGHTS") == {"weight_infos": []}
    assert call("GET_ROLES") == {"roles": []}
    assert call("GET_OPERATIONS") == {}
    assert set(call("GET_STATE")) == {"get_tasks", "get_executors", "get_frameworks",
                                      "get_agents"}
    assert call("GET_AGENTS") == {"agents": [], "recovered_agents": []}
    assert call("GET_FRAMEWORKS") == {"frameworks": [], "completed_frameworks": []}
    assert call("GET_EXECUTORS") == {"executors": []}
    assert call("GET_TASKS") == {"tasks": [], "unreachable_tasks": [], "completed_tasks": []}


def test_every_api_v1_path_but_scheduler_and_executor_is_the_operator_api(master):
    for path in ("/api/v1", "/api/v1/", "/api/v1/operator", "/api/v1/operator/",
                 "//api/v1//operator"):
        response = op(master, {"type": "GET_HEALTH"}, path)
        assert response.status_code == 200, path
        assert response.json()["type"] == "GET_HEALTH"
    assert op(master, {"type": "GET_HEALTH"}, "/api/v1/executor").status_code == 404
    scheduler = op(master, {"type": "GET_HEALTH"}, "/api/v1/scheduler")
    assert scheduler.status_code == 400  # the scheduler API does not know GET_HEALTH
    assert op(master, {"type": "GET_HEALTH"}, "/api/v1/operator/deeper").status_code == 404


def test_bad_calls_get_4xx_with_a_message(master):
    url = master.url + "/api/v1"
    assert requests.get(url, timeout=10).status_code == 405
    no_type = requests.post(url, data=b"{}", timeout=10)
    assert no_type.status_code == 400 and "Content-Type" in no_type.text
    text = op(master, b"{}", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    proto = op(master, b"\x08\x01", headers={"Content-Type": "application/x-protobuf"})
    assert proto.status_code == 415
    accept = op(master, {"type": "GET_HEALTH"}, headers={
        "Content-Type": "application/json", "Accept": "application/x-protobuf"})
    assert accept.status_code == 406
    for body, needle in [(b"{not json", "JSON"), ({}, "'type'"), ({"type": "GET_SOMETHING"},
                         "GET_SOMETHING"), ({"type": "TEARDOWN"}, "'teardown'")]:
        response = op(master, body)
        assert response.status_code == 400, body
        assert needle in response.text
    for kind in ("UPDATE_MAINTENANCE_SCHEDULE", "DRAIN_AGENT", "RESERVE_RESOURCES",
                 "CREATE_VOLUMES"):  # carried out: a body is due
        response = op(master, {"type": kind})
        assert response.status_code == 400 and kind.lower() in response.text
    assert op(master, {"type": "GET_QUOTA"}).status_code == 200
    unknown_fw = op(master, {"type": "TEARDOWN", "teardown": {"framework_id": {"value": "x"}}})
    assert unknown_fw.status_code == 400 and "No framework" in unknown_fw.text
    unknown_agent = op(master, {"type": "MARK_AGENT_GONE",
                                "mark_agent_gone": {"agent_id": {"value": "nope"}}})
    assert unknown_agent.status_code == 404
    for weight_info in ({"role": "a b", "weight": 2}, {"role": "web", "weight": 0},
                        {"role": "/web", "weight": 1}, {"role": "web", "weight": -1}):
        response = op(master, {"type": "UPDATE_WEIGHTS",
                               "update_weights": {"weight_infos": [weight_info]}})
        assert response.status_code == 400, weight_info


def test_update_weights_shows_in_weights_and_roles(master):
    response = op(master, {"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [
        {"role": "web", "weight": 2.5}, {"role": "eng/batch", "weight": 0.5}]}})
    assert response.status_code == 200
    weights = op(master, {"type": "GET_WEIGHTS"}).json()["get_weights"]["weight_infos"]
    assert weights == [{"role": "eng/batch", "weight": 0.5}, {"role": "web", "weight": 2.5}]
    roles = {r["name"]: r["weight"] for r in
             op(master, {"type": "GET_ROLES"}).json()["get_roles"]["roles"]}
    assert roles == {"eng": 1.0, "eng/batch": 0.5, "web": 2.5}
    v0 = requests.get(master.url + "/master/roles", timeout=10).json()["roles"]
    assert {r["name"] for r in v0} == set(roles)
    assert requests.get(master.url + "/master/weights", timeout=10).json() == weights


# ---- SUBSCRIBE -----------------------------------------------------------------------------


def test_subscribe_streams_state_then_agent_events(master):
    stream = EventStream(master, "/api/v1", {"type": "SUBSCRIBE"})
    agent = None
    try:
        first = stream.next()
        assert first["type"] == "SUBSCRIBED"
        assert first["subscribed"]["heartbeat_interval_seconds"] == 0.3
        assert first["subscribed"]["get_state"]["get_agents"]["agents"] == []
        assert stream.next()["type"] == "HEARTBEAT"
        assert stream.next_of("HEARTBEAT")  # and they keep coming
        assert metric(master, "master/operator_event_stream_subscribers") == 1

        agent = FakeAgent(master, "agent-1.test")
        added = stream.next_of("AGENT_ADDED")["agent_added"]["agent"]
        assert added["agent_info"]["hostname"] == "agent-1.test"
        assert added["agent_info"]["id"] == {"value": agent.agent_id}
        agents = op(master, {"type": "GET_AGENTS"}).json()["get_agents"]["agents"]
        assert [a["agent_info"]["id"]["value"] for a in agents] == [agent.agent_id]

        gone = {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {
            "value": agent.agent_id}}}
        assert op(master, gone).status_code == 200
        removed = stream.next_of("AGENT_REMOVED")["agent_removed"]
        assert removed == {"agent_id": {"value": agent.agent_id}}
        assert "marked gone" in agent.recv_of("SHUTDOWN")["shutdown"]["message"]
        assert op(master, {"type": "GET_AGENTS"}).json()["get_agents"]["agents"] == []
        assert op(master, gone).status_code == 200  # idempotent
    finally:
        stream.close()
        if agent is not None:
            agent.close()
    wait_for(lambda: metric(master, "master/operator_event_stream_subscribers") == 0,
             what="the closed subscriber to be forgotten")


def test_task_events_follow_a_launch_and_its_status_updates(master):
    events = EventStream(master, "/api/v1", {"type": "SUBSCRIBE"})
    agent = FakeAgent(master, "worker.test")
    scheduler = EventStream(master, "/api/v1/scheduler", {"type": "SUBSCRIBE", "subscribe": {
        "framework_info": {"user": "alice", "name": "launcher"}}})
    try:
        framework_id = scheduler.next_of("SUBSCRIBED")["subscribed"]["framework_id"]["value"]
        stream_id = scheduler.response.headers["Mesos-Stream-Id"]
        (offer,) = scheduler.next_of("OFFERS")["offers"]["offers"]
        accept = {"type": "ACCEPT", "framework_id": {"value": framework_id}, "accept": {
            "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {
                "task_infos": [{"name": "sleeper", "task_id": {"value": "t1"},
                                "agent_id": offer["agent_id"], "command": {"value": "sleep 9"},
                                "resources": Resources.parse("cpus:1;mem:64").to_json()}]}}]}}
        response = op(master, accept, "/api/v1/scheduler",
                      {**JSON_HEADERS, "Mesos-Stream-Id": stream_id})
        assert response.status_code == 202, response.text
        task = events.next_of("TASK_ADDED")["task_added"]["task"]
        assert task["task_id"] == {"value": "t1"} and task["state"] == "TASK_STAGING"
        assert task["agent_id"] == {"value": agent.agent_id}
        run = agent.recv_of("RUN_TASK")["run_task"]
        assert run["task"]["task_id"] == {"value": "t1"}
        agent.ws.send(json.dumps({"type": "STATUS_UPDATE", "status_update": {
            "framework_id": {"value": framework_id},
            "status": {"task_id": {"value": "t1"}, "state": "TASK_RUNNING",
                       "source": "SOURCE_EXECUTOR", "timestamp": time.time(),
                       "uuid": "AAAAAAAAAAAAAAAAAAAAAA==",
                       "agent_id": {"value": agent.agent_id}}}}))
        updated = events.next_of("TASK_UPDATED")["task_updated"]
        assert updated["framework_id"] == {"value": framework_id}
        assert updated["state"] == "TASK_RUNNING"
        assert updated["status"]["task_id"] == {"value": "t1"}
        tasks = op(master, {"type": "GET_TASKS"}).json()["get_tasks"]["tasks"]
        assert [(t["task_id"]["value"], t["state"]) for t in tasks] == [("t1", "TASK_RUNNING")]
        legacy = requests.get(master.url + "/master/tasks", timeout=10).json()["tasks"]
        assert [(t["id"], t["state"], t["slave_id"]) for t in legacy] == [
            ("t1", "TASK_RUNNING", agent.agent_id)]
        assert metric(master, "master/tasks_running") == 1
    finally:
        events.close()
        scheduler.close()
        agent.close()


def test_teardown_ends_a_framework_and_subscribers_see_it(master):
    events = EventStream(master, "/api/v1/operator", {"type": "SUBSCRIBE"})
    subscribe = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {
        "user": "alice", "name": "to-tear-down", "roles": ["web"],
        "capabilities": [{"type": "MULTI_ROLE"}]}}}
    schedulers = [EventStream(master, "/api/v1/scheduler", subscribe) for _ in range(2)]
    try:
        ids = [s.next_of("SUBSCRIBED")["subscribed"]["framework_id"]["value"] for s in schedulers]
        added = [events.next_of("FRAMEWORK_ADDED")["framework_added"]["framework"]
                 for _ in ids]
        assert [a["framework_info"]["id"]["value"] for a in added] == ids
        frameworks = op(master, {"type": "GET_FRAMEWORKS"}).json()["get_frameworks"]
        assert {f["framework_info"]["id"]["value"] for f in frameworks["frameworks"]} == set(ids)

        teardown = {"type": "TEARDOWN", "teardown": {"framework_id": {"value": ids[0]}}}
        assert op(master, teardown).status_code == 200
        removed = events.next_of("FRAMEWORK_REMOVED")["framework_removed"]
        assert removed["framework_info"]["id"] == {"value": ids[0]}
        assert schedulers[0].ended()

        legacy = requests.post(master.url + "/master/teardown", data={"frameworkId": ids[1]},
                               timeout=10)
        assert legacy.status_code == 200
        assert schedulers[1].ended()
        frameworks = op(master, {"type": "GET_FRAMEWORKS"}).json()["get_frameworks"]
        assert frameworks["frameworks"] == []
        done = [f["framework_info"]["id"]["value"] for f in frameworks["completed_frameworks"]]
        assert sorted(done) == sorted(ids)
        state = requests.get(master.url + "/master/state", timeout=10).json()
        assert sorted(f["id"] for f in state["completed_frameworks"]) == sorted(ids)
    finally:
        events.close()
        for scheduler in schedulers:
            scheduler.close()


def test_a_subscriber_that_does_not_read_is_dropped(master, monkeypatch):
    monkeypatch.setattr(OperatorHandler, "max_pending_bytes", 1024 * 1024)
    observers = master.daemon.master.observers
    healthy = EventStream(master, "/api/v1", {"type": "SUBSCRIBE"})
    assert healthy.next()["type"] == "SUBSCRIBED"
    received = collections.Counter()

    def read() -> None:
        try:
            while True:
                received[healthy.next(timeout=30)["type"]] += 1
        except Exception:  # the stream closed at the end of the test
            return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    host, port = master.url.removeprefix("http://").split(":")
    body = b'{"type":"SUBSCRIBE"}'
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    big = {"type": "TASK_UPDATED", "task_updated": {"padding": "x" * (128 * 1024)}}

    def burst() -> None:
        for _ in range(4):
            master.daemon.master.emit(big)

    try:
        stalled.connect((host, int(port)))
        stalled.sendall(b"POST /api/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                        b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        wait_for(lambda: master.run(len, observers) == 2, what="two subscribers")
        sent = 0
        while master.run(len, observers) == 2:
            assert sent < 128 * 4, "the stalled subscriber was never dropped"
            master.run(burst)  # 512 KiB a round; the healthy reader keeps up
            sent += 4
            wait_for(lambda n=sent: received["TASK_UPDATED"] == n, what="the healthy reader")
        assert received["TASK_UPDATED"] == sent
        assert metric(master, "master/operator_event_stream_subscribers") == 1
    finally:
        stalled.close()
        healthy.close()
        reader.join(10)
    wait_for(lambda: master.run(len, observers) == 0, what="both subscribers to be gone")


# ---- legacy endpoints and metrics ----------------------------------------------------------


def test_legacy_state_endpoints(master):
    agent = FakeAgent(master, "legacy.test", "cpus:3;mem:2048;ports:[31000-31004]")
    try:
        bodies = [requests.get(master.url + path, timeout=10).json() for path in
                  ("/master/state", "/master/state.json", "/state.json", "/state")]
        for body in bodies:
            assert body["id"] == bodies[0]["id"]
            assert body["leader"] == body["pid"]
            assert body["activated_slaves"] == 1
        (slave,) = bodies[0]["slaves"]
        assert slave["id"] == agent.agent_id and slave["hostname"] == "legacy.test"
        assert slave["resources"] == {"cpus": 3.0, "mem": 2048.0, "disk": 0.0, "gpus": 0.0,
                                      "ports": "[31000-31004]"}
        jsonp = requests.get(master.url + "/master/state?jsonp=show", timeout=10)
        assert jsonp.text.startswith("show(") and jsonp.text.endswith(");")
        assert jsonp.headers["Content-Type"].startswith("text/javascript")
        summary = requests.get(master.url + "/master/state-summary", timeout=10).json()
        assert summary["slaves"][0]["TASK_RUNNING"] == 0
        slaves = requests.get(master.url + "/master/slaves", timeout=10).json()
        assert slaves["slaves"][0]["unreserved_resources_full"]
        assert requests.get(master.url + "/master/frameworks", timeout=10).json() == {
            "frameworks": [], "completed_frameworks": [], "unregistered_frameworks": []}
        tasks = requests.get(master.url + "/master/tasks?limit=5&offset=x&order=asc",
                             timeout=10)
        assert tasks.json() == {"tasks": []}
        flags = requests.get(master.url + "/master/flags", timeout=10).json()["flags"]
        assert flags["cluster"] == "itest"
        m = requests.get(master.url + "/metrics/snapshot", timeout=10).json()
        assert m["master/slaves_active"] == 1 and m["master/cpus_total"] == 3.0
        assert m["master/slave_registrations"] == 1
        assert requests.post(master.url + "/master/state", timeout=10).status_code == 405
        assert requests.get(master.url + "/master/teardown", timeout=10).status_code == 405
        missing = requests.post(master.url + "/master/teardown", data={}, timeout=10)
        assert missing.status_code == 400 and "frameworkId" in missing.text
        unknown = requests.post(master.url + "/master/teardown", data={"frameworkId": "f"},
                                timeout=10)
        assert unknown.status_code == 400
    finally:
        agent.close()


def test_a_master_with_a_secret_wants_it_everywhere(tmp_path):
    running = MasterThread(MasterConfig(port=0, work_dir=tmp_path, secret="hunter22"))
    try:
        running.start()
        for path in ("/master/state", "/metrics/snapshot", "/master/flags"):
            assert requests.get(running.url + path, timeout=10).status_code == 401
        assert op(running, {"type": "GET_HEALTH"}).status_code == 401
        auth = {**JSON_HEADERS, "Authorization": "Bearer hunter22"}
        assert op(running, {"type": "GET_HEALTH"}, headers=auth).status_code == 200
        flags = op(running, {"type": "GET_FLAGS"}, headers=auth).text
        state = requests.get(running.url + "/master/state", headers=auth, timeout=10).text
        assert "hunter22" not in flags and "hunter22" not in state
        assert '"authenticate_frameworks","value":"true"' in flags
    finally:
        running.stop()


# ---- an unchanged Mesos client -------------------------------------------------------------


@pytest.mark.compat
def test_pymesos_operator_driver_reads_calls_and_events(master):
    pymesos = pytest.importorskip("pymesos")
    added: list[dict[str, Any]] = []
    removed: list[str] = []

    class Recorder(pymesos.OperatorMaster):
        def agentAdded(self, agent):
            added.append(agent)

        def agentRemoved(self, agent_id):
            removed.append(agent_id)

    address = master.url.removeprefix("http://")
    driver = pymesos.MesosOperatorMasterDriver(address, Recorder())
    agent = None
    try:
        driver.start()
        wait_for(lambda: metric(master, "master/operator_event_stream_subscribers") == 1,
                 what="pymesos to subscribe")
        agent = FakeAgent(master, "pymesos-agent.test")
        wait_for(lambda: added, what="pymesos to see AGENT_ADDED")
        assert added[0]["agent_info"]["id"]["value"] == agent.agent_id
        state = driver.getState()["get_state"]
        assert state["get_agents"]["agents"][0]["agent_info"]["hostname"] == "pymesos-agent.test"
        assert driver.getMaster()["get_master"]["master_info"]["port"] == master.daemon.port
        assert driver.getHealth() == {"type": "GET_HEALTH", "get_health": {"healthy": True}}
        driver.updateWeights([{"role": "web", "weight": 2.0}])
        assert driver.getWeights()["get_weights"]["weight_infos"] == [
            {"role": "web", "weight": 2.0}]
        driver.markAgentGone(agent.agent_id)
        wait_for(lambda: removed == [agent.agent_id], what="pymesos to see AGENT_REMOVED")
    finally:
        driver.stop()
        driver.join()
        if agent is not None:
            agent.close()
