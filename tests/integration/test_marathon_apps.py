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
