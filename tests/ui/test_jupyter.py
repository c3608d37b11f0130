"""The jupyter-server extension, in a real ``jupyter server`` process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from mesonb.testing.processes import wait_for

pytest.importorskip("jupyter_server")
websocket = pytest.importorskip("websocket")
pytestmark = pytest.mark.slow
TOKEN = "jupyter-test-token"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyter(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    log = open(tmp_path / "jupyter.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", f"--port={port}", "--ip=127.0.0.1",
         "--no-browser", "--allow-root", f"--IdentityProvider.token={TOKEN}",
         f"--ServerApp.root_dir={tmp_path}",
         "--ServerApp.jpserver_extensions={'mesonb.jupyter': True}"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError("jupyter server exited: "
                                     + (tmp_path / "jupyter.log").read_text()[-2000:])
            return requests.get(url + "/api", timeout=1).ok

        wait_for(up, 30, what="jupyter server to start")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)
        log.close()
        print((tmp_path / "jupyter.log").read_text()[-3000:])


def auth() -> dict[str, str]:
    return {"Authorization": f"token {TOKEN}"}


def test_clusters_and_proxy_behind_jupyter_auth(jupyter, ui_page):
    # Nothing without Jupyter's credentials.
    assert requests.get(jupyter + "/mesonb/clusters").status_code == 403
    assert requests.put(jupyter + "/mesonb/clusters", data="{}").status_code == 403
    assert requests.get(jupyter + "/mesonb/clusters", headers=auth()).json() == []
    for bad in ("not json", "[]", '{"agents": 0}', '{"address": "10.1.2.3:5050"}'):
        refused = requests.put(jupyter + "/mesonb/clusters", headers=auth(), data=bad)
        assert refused.status_code == 400, bad

    answer = requests.put(jupyter + "/mesonb/clusters", headers=auth(), timeout=60,
                          data=json.dumps({"agents": 1, "resources": "cpus:1;mem:256;disk:100"}))
    assert answer.status_code == 201, answer.text
    cluster = answer.json()
    key = cluster["id"]
    assert cluster["dashboard_link"] == f"/mesonb/proxy/{key}/"
    assert [c["id"] for c in requests.get(jupyter + "/mesonb/clusters", headers=auth()).json()
            ] == [key]
    proxy = f"{jupyter}/mesonb/proxy/{key}"

    # HTTP through the proxy, only with credentials.
    state = requests.get(proxy + "/master/state", headers=auth())
    assert state.status_code == 200 and len(state.json()["slaves"]) == 1
    unauthenticated = requests.get(proxy + "/master/state", allow_redirects=False)
    assert unauthenticated.status_code in (302, 403)
    assert "slaves" not in unauthenticated.text
    by_address = requests.get(f"{jupyter}/mesonb/proxy/{cluster['address']}/master/state",
                              headers=auth())
    assert by_address.status_code == 200
    assert requests.get(f"{jupyter}/mesonb/proxy/10.1.2.3:5050/master/state",
                        headers=auth()).status_code == 404

    # An event stream passes through as it comes (the operator API's SUBSCRIBE).
    with requests.post(proxy + "/api/v1", json={"type": "SUBSCRIBE"}, stream=True, timeout=10,
                       headers={**auth(), "Accept": "application/json"}) as events:
        assert events.status_code == 200
        raw = events.raw
        length = int(b"".join(iter(lambda: raw.read(1), b"\n")))
        first = json.loads(raw.read(length))
        assert first["type"] == "SUBSCRIBED"
        assert len(first["subscribed"]["get_state"]["get_agents"]["agents"]) == 1

    # WebSocket: an upgrade without credentials is refused before it happens.
    ws_url = proxy.replace("http://", "ws://") + "/ui/feed"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(ws_url, timeout=5)
    assert refused.value.status_code == 403
    with pytest.raises(websocket.WebSocketBadStatusException) as cross_site:
        websocket.create_connection(ws_url, timeout=5, origin="http://evil.example",
                                    header=[f"Authorization: token {TOKEN}"])
    assert cross_site.value.status_code == 403
    ws = websocket.create_connection(ws_url, timeout=10, header=[f"Authorization: token {TOKEN}"])
    try:
        snapshot = json.loads(ws.recv())
        assert snapshot["type"] == "snapshot"
        assert len(snapshot["tables"]["agents"]) == 1
    finally:
        ws.close()

    # The web UI itself, through the proxy, in the browser.
    page = ui_page.page
    page.goto(f"{proxy}/?token={TOKEN}")
    page.wait_for_function("document.querySelector('#agents-activated')?.textContent === '1'",
                           timeout=15_000)
    ui_page.screenshot("jupyter-proxy")
    # A panel, as JupyterLab would embed it, through the same proxy.
    page.goto(f"{proxy}/panel/usage?token={TOKEN}")
    page.wait_for_function("document.querySelectorAll('#usage-table tbody tr').length === 1",
                           timeout=15_000)
    assert ui_page.outside_loopback() == []
    assert ui_page.failed == []

    assert requests.delete(f"{jupyter}/mesonb/clusters/{key}", headers=auth()).status_code == 204
    assert requests.get(jupyter + "/mesonb/clusters", headers=auth()).json() == []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the master is gone with its cluster
        try:
            requests.get(f"http://{cluster['address']}/health", timeout=1)
        except requests.ConnectionError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the local cluster's master still answers after DELETE")


def test_installing_mesonb_enables_the_extension():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    files = project["tool"]["setuptools"]["data-files"]["etc/jupyter/jupyter_server_config.d"]
    (config,) = files
    enabled = json.loads((ROOT / config).read_text())["ServerApp"]["jpserver_extensions"]
    assert enabled == {"mesonb.jupyter": True}
    assert "jupyter_server>=2.0" in project["project"]["optional-dependencies"]["notebook"]


def test_dashboard_link_follows_jupyterhub(monkeypatch):
    from mesonb.client.cluster import Cluster

    cluster = Cluster.__new__(Cluster)
    cluster.address = "127.0.0.1:5050"
    cluster.secret = None
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    assert cluster.dashboard_link == "http://127.0.0.1:5050/"
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ann/")
    assert cluster.dashboard_link == "/user/ann/mesonb/proxy/127.0.0.1:5050/"


def test_a_local_cluster_links_its_dashboard_and_records_history(tmp_path, monkeypatch):
    from mesonb import Cluster

    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    with Cluster.local(agents=1, resources="cpus:1;mem:512;disk:100",
                       history_dir=str(tmp_path / "history")) as cluster:
        link = cluster.dashboard_link
        # secure by default: the link carries the cluster's secret, which the page needs
        assert cluster.secret and link == cluster.local.url + f"/?token={cluster.secret}"
        assert requests.get(link, timeout=5).status_code == 200
        assert f'href="{link}"' in cluster._repr_html_()
    assert list((tmp_path / "history").glob("history-*.jsonl"))


def test_mesonb_ui_without_a_history_says_so(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mesonb", "ui", "--history", str(tmp_path),
                           "--port", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "no history-*.jsonl file" in done.stderr
