"""Every route of every daemon answers 401 without valid credentials, whatever the method,
and nothing is done. The routes come from the daemons' own routers (``make_app``), so a new
route cannot be forgotten; the few public ones are named here and nowhere else."""

from __future__ import annotations

import re
import re._parser as sre_parse  # type: ignore[import-not-found]
from typing import Any

import pytest
import requests

from mesonb import Cluster
from mesonb.agent.http import make_app as agent_app
from mesonb.http.base import Security
from mesonb.master.http import make_app as master_app

pytestmark = pytest.mark.slow

SECRET = "route-sweep-secret"
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
# Open without credentials, as in Mesos: liveness, the version pymesos reads before it
# authenticates, and the redirect to the leader.
PUBLIC = {"/health", "/master/health", "/version", "/master/redirect"}


def sample_path(pattern: str) -> str:
    """One path the route's regex matches (optional parts left out, the first branch of
    an alternation, one character of a class, a repeat its minimum number of times)."""
    def walk(items: Any) -> str:
        out = []
        for op, arg in items:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(arg))
            elif name == "SUBPATTERN":
                out.append(walk(arg[-1]))
            elif name == "BRANCH":
                out.append(walk(arg[1][0]))
            elif name in ("MAX_REPEAT", "MIN_REPEAT"):
                low, _, body = arg
                if low == 0:
                    continue  # an optional part: leave it out
                out.append(walk(body) * low)
            elif name == "IN":
                out.append(_one_of(arg))
            elif name == "NOT_LITERAL":
                out.append("x" if chr(arg) != "x" else "y")
            elif name in ("AT", "ASSERT_NOT", "ASSERT"):
                continue
            elif name == "ANY":
                out.append("x")
            else:
                raise AssertionError(f"cannot sample {name} in {pattern}")
        return "".join(out)
    path = walk(sre_parse.parse(pattern))
    assert re.fullmatch(pattern.rstrip("$"), path), (pattern, path)
    return path


def _one_of(items: Any) -> str:
    negate = any(str(op) == "NEGATE" for op, _ in items)
    if negate:
        return "x"
    op, arg = items[0]
    if str(op) == "LITERAL":
        return chr(arg)
    if str(op) == "RANGE":
        return chr(arg[0])
    return "x"


def routes() -> list[tuple[str, str, bool]]:
    """(daemon, sample path, public) for every route of the master and the agent."""
    out = []
    for daemon, make in (("master", master_app), ("agent", agent_app)):
        app = make(None, Security(SECRET))  # the routes do not depend on the daemon
        for rule in app.wildcard_router.rules:
            out.append((daemon, sample_path(rule.matcher.regex.pattern),
                        bool(getattr(rule.target, "public", False))))
    return out


@pytest.fixture(scope="module")
def daemons():
    with Cluster.local(agents=1, secret=SECRET) as cluster:
        row = cluster.agents().iloc[0]
        yield cluster, {"master": f"http://{cluster.address}",
                        "agent": f"http://{row['hostname']}:{int(row['port'])}"}


def test_the_public_routes_are_exactly_the_named_ones():
    public = {path.rstrip("/") for _, path, is_public in routes() if is_public}
    assert public == PUBLIC


def test_every_route_and_method_needs_credentials(daemons):
    cluster, urls = daemons
    before = requests.get(urls["master"] + "/master/state", timeout=10,
                          headers={"Authorization": f"Bearer {SECRET}"}).json()
    answered = 0
    for daemon, path, public in routes():
        if public:
            continue
        for method in METHODS:
            for auth in (None, "Bearer wrong", "Basic bm9ib2R5Om5vcGU="):
                headers = {"Content-Type": "application/json"}
                if auth:
                    headers["Authorization"] = auth
                response = requests.request(method, urls[daemon] + path, timeout=10,
                                            headers=headers, data=b'{"type": "TEARDOWN"}')
                assert response.status_code == 401, (daemon, method, path, auth,
                                                      response.status_code, response.text)
                assert "WWW-Authenticate" in response.headers
                answered += 1
    assert answered > 400
    after = requests.get(urls["master"] + "/master/state", timeout=10,
                         headers={"Authorization": f"Bearer {SECRET}"}).json()
    assert len(after["frameworks"]) == len(before["frameworks"])
    assert len(after["slaves"]) == len(before["slaves"]) == 1
    assert cluster.submit(abs, -2).result(timeout=60) == 2  # the cluster still works


@pytest.mark.parametrize("pattern, path", [
    (r"(?:/slave\(1\))?/state(?:\.json)?$", "/state"),
    (r"(?:/master)?/api/v1(?:/(?!(?:scheduler|executor)/?$)[^/]+)?/?$", "/api/v1"),
    (r"/files/read(?:\.json)?$", "/files/read"),
])
def test_sample_paths_match_their_routes(pattern, path):
    assert sample_path(pattern) == path
