"""Every route of every daemon answers 401 without valid credentials, whatever the method,
and nothing is done. The routes come from the daemons' own routers (``make_app``), so a new
route cannot be forgotten; the few public ones are named here and nowhere else."""

from __future__ import annotations

import pytest
import requests
from daemon_routes import routes, sample_path

from mesonb import Cluster

pytestmark = pytest.mark.slow

SECRET = "route-sweep-secret"
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
# Open without credentials, as in Mesos: liveness, the version pymesos reads before it
# authenticates, the redirect to the leader; and the web UI's page and its static assets,
# which hold no data (the page's data comes over /ui/feed, which needs credentials).
PUBLIC = {"/health", "/master/health", "/version", "/master/redirect", "/", "/panel/a",
          "/ui/static"}


@pytest.fixture(scope="module")
def daemons():
    with Cluster.local(agents=1, secret=SECRET) as cluster:
        row = cluster.agents().iloc[0]
        yield cluster, {"master": f"http://{cluster.address}",
                        "agent": f"http://{row['hostname']}:{int(row['port'])}"}


def test_the_public_routes_are_exactly_the_named_ones(daemons):
    cluster, _ = daemons
    public = {path.rstrip("/") or "/" for _, path, is_public, _ in routes(cluster)
              if is_public}
    assert public == PUBLIC


def test_every_route_and_method_needs_credentials(daemons):
    cluster, urls = daemons
    before = requests.get(urls["master"] + "/master/state", timeout=10,
                          headers={"Authorization": f"Bearer {SECRET}"}).json()
    answered = 0
    for daemon, path, public, _ in routes(cluster):
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
