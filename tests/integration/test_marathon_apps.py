"""``cluster.apps``: the Marathon framework driven from Python on an embedded cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from mesonb import Cluster
from mesonb.frameworks.marathon.apps_client import AppError

pytestmark = pytest.mark.slow


def test_deploy_scale_restart_destroy(tmp_path: Path) -> None:
    spec = tmp_path / "web.json"
    spec.write_text(json.dumps({"id": "/web", "cmd": "sleep 600", "instances": 2,
                                "cpus": 0.01, "mem": 8}))
    with Cluster.local(agents=1, resources="cpus:2;mem:2048;ports:[32000-32099]") as cluster:
        apps = cluster.apps
        first = apps.deploy(spec)                      # from a JSON file
        assert first.wait(30).status == "succeeded"
        frame = apps.list()
        assert frame.loc[0, "id"] == "/web" and frame.loc[0, "running"] == 2
        assert "2/2" in first.progress()               # text outside a kernel
        apps.scale("/web", 3).wait(30)
        assert len(apps.tasks("/web")) == 3
        before = set(apps.tasks("/web")["id"])
        apps.restart("/web").wait(30)
        assert not before & set(apps.tasks("/web")["id"])
        # the REST API serves the same framework
        listed = requests.get(apps.url + "/v2/apps", timeout=5).json()["apps"]
        assert [a["id"] for a in listed] == ["/web"]
        other = apps.deploy({"id": "/batch", "cmd": "sleep 600", "instances": 1,
                             "cpus": 0.01, "mem": 8})  # from a dict
        other.wait(30)
        assert sorted(apps.list()["id"]) == ["/batch", "/web"]
        with pytest.raises(AppError) as bad:
            apps.deploy({"id": "/x", "cmd": "y", "cpus": -1})
        assert bad.value.status == 422 and bad.value.details[0]["path"] == "/cpus"
        apps.destroy("/web").wait(30)
        apps.destroy("/batch").wait(30)
        assert apps.list().empty and apps.tasks().empty


def test_the_rest_api_can_require_a_secret(tmp_path: Path) -> None:
    from marathon import MarathonClient
    from marathon.exceptions import MarathonHttpError

    from mesonb.testing.processes import Daemon, ProcessCluster

    with ProcessCluster(tmp_path, agents=1) as cluster:
        daemon = Daemon(["marathon", "--master", cluster.address, "--port", "0",
                         "--work-dir", str(tmp_path / "m"), "--secret", "s3cret"],
                        tmp_path / "marathon.log")
        try:
            daemon.wait_listening()
            assert requests.get(daemon.url + "/v2/apps", timeout=5).status_code == 401
            bearer = {"Authorization": "Bearer s3cret"}
            assert requests.get(daemon.url + "/v2/apps", headers=bearer,
                                timeout=5).json() == {"apps": []}
            assert MarathonClient(daemon.url, auth_token="s3cret").list_apps() == []
            with pytest.raises(MarathonHttpError):
                MarathonClient(daemon.url, auth_token="wrong").list_apps()
        finally:
            daemon.stop()
    refused = Daemon(["marathon", "--master", "127.0.0.1:5050", "--ip", "0.0.0.0",
                      "--port", "0"], tmp_path / "open.log")
    assert refused.proc.wait(20) == 2
    refused.stop()  # joins the thread that copies its output
    assert "--secret" in refused.output()
