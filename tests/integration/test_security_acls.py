"""Authentication and authorization end to end on a real master: principals from a Mesos
credentials file (HTTP Basic, as pymesos sends them), Mesos ACLs deciding what each may do,
a framework acting only on its own tasks; a table of principals x actions, each denial a
403 with its reason and nothing done."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest
import requests

from mesonb import Cluster
from mesonb.protocol import recordio

pytestmark = pytest.mark.slow

SECRET = "cluster-secret"
PRINCIPALS = {"etl": "etl-pw", "web": "web-pw", "ops": "ops-pw"}
ACLS = {
    "permissive": False,
    "register_frameworks": [
        {"principals": {"values": ["etl"]}, "roles": {"values": ["batch"]}},
        {"principals": {"values": ["web"]}, "roles": {"values": ["dev"]}},
        {"principals": {"type": "ANY"}, "roles": {"values": ["*"]}},
    ],
    "run_tasks": [{"principals": {"type": "ANY"}, "users": {"values": ["nobody"]}}],
    "teardown_frameworks": [{"principals": {"values": ["ops"]},
                             "framework_principals": {"type": "ANY"}}],
    "update_weights": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
    # not permissive: what a principal may view is listed too (tests/integration/
    # test_security_views.py covers the view_* actions)
    "view_frameworks": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}],
}


def basic(principal: str, secret: str | None = None) -> dict[str, str]:
    token = f"{principal}:{secret or PRINCIPALS[principal]}".encode()
    return {"Authorization": "Basic " + base64.b64encode(token).decode()}


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    folder = tmp_path_factory.mktemp("security")
    credentials = folder / "credentials.json"
    credentials.write_text(json.dumps({"credentials": [
        {"principal": p, "secret": s} for p, s in PRINCIPALS.items()]}))
    os.chmod(credentials, 0o600)
    options = {"credentials": credentials, "acls": json.dumps(ACLS)}
    with Cluster.local(agents=1, secret=SECRET, master_options=options) as cluster:
        yield f"http://{cluster.address}", cluster


class Subscribed:
    """A framework subscribed over the scheduler API, its stream kept open."""

    def __init__(self, url: str, principal: str, role: str) -> None:
        self.url = url
        self.auth = basic(principal)
        self.response = requests.post(
            url + "/api/v1/scheduler", stream=True, timeout=10,
            headers={**self.auth, "Content-Type": "application/json"},
            data=json.dumps({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
                "user": "nobody", "name": f"{principal}-fw", "roles": [role],
                "principal": principal, "capabilities": [{"type": "MULTI_ROLE"}]}}}))
        assert self.response.status_code == 200, self.response.text
        self.stream_id = self.response.headers["Mesos-Stream-Id"]
        decoder = recordio.Decoder()
        self.chunks = self.response.iter_content(None)  # kept: the stream stays open
        events: list = []
        while not events:
            events = list(decoder.feed_json(next(self.chunks)))
        self.framework_id = events[0]["subscribed"]["framework_id"]["value"]
        self.decoder = decoder

    def next_event(self, kind: str, timeout: float = 30.0) -> dict:
        """The next event of ``kind`` on the stream (others are skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.decoder.feed_json(next(self.chunks)):
                if event.get("type") == kind:
                    return event
        raise TimeoutError(f"no {kind} event within {timeout:g}s")

    def call(self, body: dict, auth: dict[str, str] | None = None) -> requests.Response:
        return requests.post(self.url + "/api/v1/scheduler", data=json.dumps(
            {"framework_id": {"value": self.framework_id}, **body}), timeout=10,
            headers={**(auth or self.auth), "Content-Type": "application/json",
                     "Mesos-Stream-Id": self.stream_id})

    def close(self) -> None:
        self.response.close()


def subscribe(url: str, principal: str, role: str, name_as: str | None = None,
              secret: str | None = None) -> requests.Response:
    response = requests.post(
        url + "/api/v1/scheduler", stream=True, timeout=10,
        headers={**basic(principal, secret), "Content-Type": "application/json"},
        data=json.dumps({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "nobody", "name": "x", "roles": [role],
            "principal": name_as or principal}}}))
    if response.status_code != 200:
        response.content  # read the refusal's reason before closing  # noqa: B018
    response.close()
    return response


@pytest.mark.parametrize("principal, role, name_as, secret, status, words", [
    ("etl", "batch", None, None, 200, ""),
    ("web", "batch", None, None, 403, "not authorized to register frameworks"),
    ("web", "dev", None, None, 200, ""),
    ("ops", "*", None, None, 200, ""),
    ("ops", "batch", None, None, 403, "Principal 'ops'"),
    ("etl", "batch", "web", None, 403, "does not match authenticated principal 'etl'"),
    ("etl", "batch", None, "wrong", 401, "Invalid credentials"),
    ("nobody", "batch", None, "x", 401, "Invalid credentials"),
])
def test_who_may_register_which_roles(master, principal, role, name_as, secret, status, words):
    url, _ = master
    response = subscribe(url, principal, role, name_as, secret)
    assert response.status_code == status, response.text
    if words:
        assert words in response.text


def test_a_framework_acts_only_on_its_own(master):
    url, _ = master
    etl = Subscribed(url, "etl", "batch")
    web = Subscribed(url, "web", "dev")
    try:
        revive = {"type": "REVIVE", "revive": {"roles": []}}
        first = etl.call(revive)
        assert first.status_code == 202, first.text
        stolen = etl.call(revive, auth=basic("web"))  # web drives etl's framework: no
        assert stolen.status_code == 403
        assert f"may not act on framework '{etl.framework_id}'" in stolen.text
        teardown = {"type": "TEARDOWN"}
        assert web.call(teardown, auth=basic("etl")).status_code == 403
        state = requests.get(url + "/master/state", headers=basic("ops"), timeout=10).json()
        assert {etl.framework_id, web.framework_id} <= {f["id"] for f in state["frameworks"]}
    finally:
        etl.close()
        web.close()


def test_run_tasks_is_decided_per_task_with_task_unauthorized(master):
    """As Mesos's master: the ACCEPT is taken, the task whose user ``run_tasks`` refuses
    gets TASK_ERROR with REASON_TASK_UNAUTHORIZED (and its message), nothing runs."""
    url, _ = master
    fw = Subscribed(url, "web", "dev")
    try:
        fw.call({"type": "REVIVE", "revive": {"roles": []}})
        offer = fw.next_event("OFFERS")["offers"]["offers"][0]
        accepted = fw.call({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [{
                "name": "t", "task_id": {"value": "t1"}, "agent_id": offer["agent_id"],
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
                "command": {"value": "true", "user": "root"}}]}}]}})
        assert accepted.status_code == 202, accepted.text
        status = fw.next_event("UPDATE")["update"]["status"]
        assert (status["state"], status["reason"]) == ("TASK_ERROR", "REASON_TASK_UNAUTHORIZED")
        assert "run tasks (users: 'root')" in status["message"]
    finally:
        fw.close()


@pytest.mark.parametrize("principal, status", [("etl", 403), ("web", 403), ("ops", 200)])
def test_operators_teardown_and_weights_by_acl(master, principal, status):
    url, _ = master
    victim = Subscribed(url, "web", "dev")
    try:
        teardown = requests.post(url + "/api/v1", timeout=10, data=json.dumps(
            {"type": "TEARDOWN", "teardown": {"framework_id": {"value": victim.framework_id}}}),
            headers={**basic(principal), "Content-Type": "application/json"})
        assert teardown.status_code == status, teardown.text
        weights = requests.post(url + "/api/v1", timeout=10, data=json.dumps(
            {"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [
                {"role": "batch", "weight": 2.0}]}}),
            headers={**basic(principal), "Content-Type": "application/json"})
        assert weights.status_code == status, weights.text
        if status == 403:
            assert f"Principal '{principal}' is not authorized" in teardown.text
            state = requests.get(url + "/master/state", headers=basic("ops"), timeout=10).json()
            assert victim.framework_id in {f["id"] for f in state["frameworks"]}
    finally:
        victim.close()


def test_the_cluster_secret_still_drives_the_cluster(master):
    _, cluster = master
    assert cluster.submit(abs, -7).result(timeout=60) == 7
