"""Authorization of views, as Mesos does it: what a principal may not view is filtered out
of every state answer (``/master/state``, ``/master/frameworks``, ``/master/tasks``,
``/master/roles``, GET_STATE, GET_TASKS, GET_FRAMEWORKS, GET_ROLES, the operator event
stream, the agent's ``/state``), while sandboxes (``access_sandboxes``) and guarded
endpoints (``get_endpoints``) answer 403. A table of principals x views on a real cluster
with two frameworks of two users, each running a task."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import tornado.websocket

from mesonb import Cluster
from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol import recordio
from mesonb.protocol.resources import Resources
from mesonb.testing.frameworks import Tracker
from mesonb.testing.processes import wait_for

pytestmark = pytest.mark.slow

SECRET = "views-secret"
PRINCIPALS = {"alice": "alice-pw", "bob": "bob-pw", "ops": "ops-pw"}
ANY = {"type": "ANY"}
NONE = {"type": "NONE"}
ACLS = {
    "permissive": False,
    "register_frameworks": [{"principals": ANY, "roles": ANY}],
    "run_tasks": [{"principals": ANY, "users": ANY}],
    "view_frameworks": [{"principals": {"values": ["alice"]}, "users": {"values": ["root"]}},
                        {"principals": {"values": ["bob"]}, "users": {"values": ["nobody"]}},
                        {"principals": {"values": ["ops"]}, "users": ANY}],
    "view_tasks": [{"principals": {"values": ["alice"]}, "users": {"values": ["root"]}},
                   {"principals": {"values": ["bob"]}, "users": NONE},
                   {"principals": {"values": ["ops"]}, "users": ANY}],
    "view_executors": [{"principals": {"values": ["alice"]}, "users": {"values": ["root"]}},
                       {"principals": {"values": ["ops"]}, "users": ANY}],
    "view_roles": [{"principals": {"values": ["alice"]}, "roles": {"values": ["batch"]}},
                   {"principals": {"values": ["ops"]}, "roles": ANY}],
    "access_sandboxes": [{"principals": {"values": ["alice"]}, "users": {"values": ["root"]}},
                         {"principals": {"values": ["ops"]}, "users": ANY}],
    "get_endpoints": [{"principals": {"values": ["alice"]},
                       "paths": {"values": ["/metrics/snapshot"]}},
                      {"principals": {"values": ["ops"]}, "paths": ANY}],
}
# principal -> (frameworks' users it sees, tasks' users it sees, roles it sees,
#               sandboxes' users it may read, GET /metrics/snapshot, GET /master/flags)
TABLE: dict[str, tuple[set[str], set[str], set[str], set[str], int, int]] = {
    "alice": ({"root"}, {"root"}, {"batch"}, {"root"}, 200, 403),
    "bob": ({"nobody"}, set(), set(), set(), 403, 403),
    "ops": ({"root", "nobody"}, {"root", "nobody"}, {"batch", "dev"}, {"root", "nobody"},
            200, 200),
    "operator": ({"root", "nobody"}, {"root", "nobody"}, {"batch", "dev"}, {"root", "nobody"},
                 200, 200),  # the cluster's shared secret
}


def auth(principal: str) -> dict[str, str]:
    if principal == "operator":
        return {"Authorization": f"Bearer {SECRET}"}
    token = f"{principal}:{PRINCIPALS[principal]}".encode()
    return {"Authorization": "Basic " + base64.b64encode(token).decode()}


class Setup:
    def __init__(self, cluster: Cluster, drivers: list[SchedulerDriver]) -> None:
        self.cluster = cluster
        self.drivers = drivers
        self.master = cluster.local.url
        self.agent = f"http://127.0.0.1:{cluster.local.agents[0].port}"
        self.framework_users: dict[str, str] = {}  # framework id -> user
        self.sandboxes: dict[str, str] = {}  # user -> its task's sandbox on the agent


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("views")
    credentials = folder / "credentials.json"
    credentials.write_text(json.dumps({"credentials": [
        {"principal": p, "secret": s} for p, s in PRINCIPALS.items()]}))
    os.chmod(credentials, 0o600)
    security = {"credentials": credentials, "acls": json.dumps(ACLS)}
    with Cluster.local(agents=1, secret=SECRET, warm=False, master_options=security,
                       agent_options=security, resources="cpus:2;mem:1024;disk:100") as cluster:
        drivers: list[SchedulerDriver] = []
        trackers: dict[str, Tracker] = {}
        for principal, user, role in (("alice", "root", "batch"), ("bob", "nobody", "dev")):
            task = {"name": f"{user}-task", "task_id": {"value": f"{user}-task"},
                    "command": {"value": "sleep 120"},
                    "resources": Resources.parse("cpus:0.1;mem:32").to_json()}
            tracker = trackers[user] = Tracker([task])
            driver = SchedulerDriver(cluster.address, {"user": user, "name": f"{user}-fw",
                                                       "roles": [role],
                                                       "capabilities": [{"type": "MULTI_ROLE"}]},
                                     tracker, secret=f"{principal}:{PRINCIPALS[principal]}")
            tracker.driver = driver
            cluster._lt.run(driver.start(), 30)
            drivers.append(driver)
        for user, tracker in trackers.items():
            wait_for(lambda t=tracker, u=user: "TASK_RUNNING" in t.states(f"{u}-task"), 30,
                     what=f"{user}'s task running")
        state = Setup(cluster, drivers)
        full = requests.get(state.master + "/master/state", headers=auth("operator"),
                            timeout=10).json()
        state.framework_users = {f["id"]: f["user"] for f in full["frameworks"]}
        agent_state = requests.get(state.agent + "/state", headers=auth("operator"),
                                   timeout=10).json()
        for framework in agent_state["frameworks"]:
            for executor in framework["executors"]:
                state.sandboxes[framework["user"]] = executor["directory"]
        assert set(state.sandboxes) >= {"root", "nobody"}
        try:
            yield state
        finally:
            for driver in drivers:
                cluster._lt.run(driver.stop(teardown=True), 30)


def get(setup: Setup, url: str, principal: str, **params: Any) -> requests.Response:
    return requests.get(url, headers=auth(principal), params=params, timeout=10)


def operator_call(setup: Setup, principal: str, kind: str) -> dict[str, Any]:
    answer = requests.post(setup.master + "/api/v1", json={"type": kind},
                           headers=auth(principal), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()[kind.lower()]


def task_users(setup: Setup, tasks: list[dict[str, Any]]) -> set[str]:
    out = set()
    for task in tasks:
        framework = task["framework_id"]
        framework = framework["value"] if isinstance(framework, dict) else framework
        out.add(setup.framework_users[framework])
    return out


MINE = {"root", "nobody"}  # the users of this test's frameworks (the client's is left out)


@pytest.mark.parametrize("principal", sorted(TABLE))
def test_state_answers_show_only_what_the_principal_may_view(setup: Setup,
                                                            principal: str) -> None:
    frameworks, tasks, roles, _, _, _ = TABLE[principal]
    state = get(setup, setup.master + "/master/state", principal).json()
    assert {f["user"] for f in state["frameworks"]} & MINE == frameworks
    assert task_users(setup, [t for f in state["frameworks"] for t in f["tasks"]]) == tasks
    listed = get(setup, setup.master + "/master/frameworks", principal).json()
    assert {f["user"] for f in listed["frameworks"]} & MINE == frameworks
    assert task_users(setup, get(setup, setup.master + "/master/tasks", principal).json()[
        "tasks"]) & MINE == tasks
    assert {r["name"] for r in get(setup, setup.master + "/master/roles", principal).json()[
        "roles"]} & {"batch", "dev"} == roles
    # the operator API
    v1 = operator_call(setup, principal, "GET_STATE")
    assert {f["framework_info"]["user"] for f in v1["get_frameworks"]["frameworks"]} & MINE \
        == frameworks
    assert task_users(setup, v1["get_tasks"]["tasks"]) & MINE == tasks
    assert task_users(setup, operator_call(setup, principal, "GET_TASKS")["tasks"]) & MINE \
        == tasks
    assert {f["framework_info"]["user"] for f in
            operator_call(setup, principal, "GET_FRAMEWORKS")["frameworks"]} & MINE == frameworks
    assert {r["name"] for r in operator_call(setup, principal, "GET_ROLES")["roles"]} & {
        "batch", "dev"} == roles
    # the agent's state
    agent = get(setup, setup.agent + "/state", principal).json()
    assert {f["user"] for f in agent["frameworks"]} & MINE == frameworks
    shown = {f["user"] for f in agent["frameworks"] for e in f["executors"] for _ in e["tasks"]}
    assert shown & MINE == tasks & frameworks


@pytest.mark.parametrize("principal", sorted(TABLE))
def test_the_event_stream_starts_from_what_the_principal_may_view(setup: Setup,
                                                                  principal: str) -> None:
    frameworks, tasks, *_ = TABLE[principal]
    with requests.post(setup.master + "/api/v1", json={"type": "SUBSCRIBE"}, stream=True,
                       headers=auth(principal), timeout=10) as response:
        assert response.status_code == 200
        decoder = recordio.Decoder()
        first: dict[str, Any] | None = None
        for chunk in response.iter_content(chunk_size=None):
            records = list(decoder.feed(chunk))
            if records:
                first = json.loads(records[0])
                break
    assert first is not None and first["type"] == "SUBSCRIBED"
    get_state = first["subscribed"]["get_state"]
    assert {f["framework_info"]["user"] for f in get_state["get_frameworks"]["frameworks"]} \
        & MINE == frameworks
    assert task_users(setup, get_state["get_tasks"]["tasks"]) & MINE == tasks


@pytest.mark.parametrize("principal", sorted(TABLE))
def test_sandboxes_and_endpoints_answer_403_unless_allowed(setup: Setup,
                                                           principal: str) -> None:
    _, _, _, sandboxes, metrics, flags = TABLE[principal]
    for user, directory in setup.sandboxes.items():
        if user not in MINE:
            continue
        answer = get(setup, setup.agent + "/files/browse", principal, path=directory)
        expected = 200 if user in sandboxes else 403
        assert answer.status_code == expected, (user, answer.text)
        if expected == 403:
            assert "not authorized to access sandboxes" in answer.text
            read = get(setup, setup.agent + "/files/read", principal,
                       path=directory + "/stdout", offset=0)
            assert read.status_code == 403
    assert get(setup, setup.master + "/metrics/snapshot", principal).status_code == metrics
    assert get(setup, setup.agent + "/metrics/snapshot", principal).status_code == metrics
    assert get(setup, setup.master + "/master/flags", principal).status_code == flags
    assert get(setup, setup.agent + "/flags", principal).status_code == flags


@pytest.mark.parametrize("principal", sorted(TABLE))
def test_the_web_ui_applies_the_same_rules(setup: Setup, principal: str) -> None:
    frameworks, tasks, roles, sandboxes, _, _ = TABLE[principal]
    # the master's files proxy asks the agent with the caller's credentials, not its own
    agent_id = get(setup, setup.agent + "/state", "operator").json()["id"]

    async def with_a_page_open() -> None:  # (the UI's model knows agents while watched)
        page = await tornado.websocket.websocket_connect(
            setup.master.replace("http://", "ws://") + f"/ui/feed?token={SECRET}")
        try:
            await page.read_message()
            for user, directory in setup.sandboxes.items():
                if user in MINE:
                    answer = get(setup, setup.master + "/ui/files/browse", principal,
                                 agent_id=agent_id, path=directory)
                    assert answer.status_code == (200 if user in sandboxes else 403), (
                        user, answer.text)
        finally:
            page.close()

    asyncio.run(with_a_page_open())
    # the feed carries the whole cluster: refused to a principal confined to part of it
    feed = get(setup, setup.master + "/ui/feed", principal)
    sees_all = frameworks == tasks == MINE and roles == {"batch", "dev"}
    if sees_all:
        assert feed.status_code == 400  # past the gate: only the WebSocket upgrade missing
    else:
        assert feed.status_code == 403 and "web UI's feed" in feed.text
