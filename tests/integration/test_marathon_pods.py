"""``/v2/pods`` against a real master and agent: a pod of two containers runs as one task
group under Mesos's default executor; ``::status``, ``::instances`` (kill one: it is
replaced), scaling through PUT, deletion; pods stay out of ``/v2/apps``; bad specs get
Marathon's 422; ``/v2/plugins`` is an empty list."""

from __future__ import annotations

from pathlib import Path

import pytest
from marathon_support import MarathonProcess

from mesonb.testing.processes import ProcessCluster, wait_for

pytestmark = pytest.mark.slow

POD = {"id": "/web/pod", "scaling": {"kind": "fixed", "instances": 1},
       "containers": [
           {"name": "main", "resources": {"cpus": 0.01, "mem": 16},
            "exec": {"command": {"shell": "echo main $MARATHON_APP_ID > out; sleep 600"}}},
           {"name": "sidecar", "resources": {"cpus": 0.01, "mem": 16},
            "exec": {"command": {"shell": "sleep 600"}}, "environment": {"ROLE": "side"}}]}


def stable(marathon: MarathonProcess, count: int) -> dict:
    def check() -> dict | None:
        status = marathon.get("/v2/pods/web/pod::status")
        running = [i for i in status["instances"] if i["status"] == "STABLE"]
        return status if status["status"] == "STABLE" and len(running) == count else None

    return wait_for(check, 30, what=f"{count} stable pod instances")


def test_a_pod_runs_as_a_task_group_and_scales_and_goes(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path, agents=1,
                        agent_resources="cpus:4;mem:4096;disk:4096") as cluster:
        marathon = MarathonProcess(tmp_path, cluster.address).start()
        try:
            assert marathon.get("/v2/plugins") == {"plugins": []}
            assert marathon.request("GET", "/v2/plugins/x").status_code == 404
            bad = marathon.request("POST", "/v2/pods", {"id": "/p", "containers": [
                {"name": "Bad_Name", "resources": {"cpus": 0}, "exec": {}}]})
            assert bad.status_code == 422, bad.text
            assert {d["path"] for d in bad.json()["details"]} == {
                "/containers(0)/name", "/containers(0)/resources/cpus",
                "/containers(0)/exec/command/shell"}
            assert marathon.request("POST", "/v2/pods", "{not json").status_code == 400

            created = marathon.request("POST", "/v2/pods", POD)
            assert created.status_code == 201, created.text
            assert created.headers["Marathon-Deployment-Id"]
            assert created.json()["containers"][1]["name"] == "sidecar"
            assert marathon.request("POST", "/v2/pods", POD).status_code == 409
            status = stable(marathon, 1)
            instance = status["instances"][0]
            assert [c["status"] for c in instance["containers"]] == ["RUNNING", "RUNNING"]
            # one task group: both tasks under one DEFAULT executor on the agent
            state = cluster.state()
            ours = next(f for f in state["frameworks"] if f["name"] == "marathon")
            tasks = {t["name"]: t for t in ours["tasks"]}
            assert set(tasks) == {"main", "sidecar"}
            assert tasks["main"]["executor_id"] == tasks["sidecar"]["executor_id"] \
                == f"instance-{instance['id']}"
            assert marathon.get("/v2/apps") == {"apps": []}  # pods are not apps
            assert marathon.get("/v2/tasks") == {"tasks": []}
            assert [p["id"] for p in marathon.get("/v2/pods")] == ["/web/pod"]
            assert marathon.get("/v2/pods/web/pod")["scaling"]["instances"] == 1
            marathon.deployed(30)

            # kill the instance: the pod replaces it
            killed = marathon.request("DELETE",
                                      f"/v2/pods/web/pod::instances/{instance['id']}")
            assert killed.status_code == 200, killed.text
            assert killed.json()["id"] == instance["id"]
            again = stable(marathon, 1)
            assert again["instances"][0]["id"] != instance["id"]

            # scale through PUT (same containers: a ScalePod deployment)
            scaled = marathon.request("PUT", "/v2/pods/web/pod",
                                      {**POD, "scaling": {"kind": "fixed", "instances": 2}})
            assert scaled.status_code == 200, scaled.text
            stable(marathon, 2)
            assert len(marathon.get("/v2/pods/web/pod::versions")) == 2
            assert marathon.get("/v2/pods/::status")[0]["id"] == "/web/pod"

            gone = marathon.request("DELETE", "/v2/pods/web/pod")
            assert gone.status_code == 202, gone.text
            marathon.deployed(30)
            assert marathon.request("GET", "/v2/pods/web/pod").status_code == 404

            def no_tasks() -> bool:
                frameworks = cluster.state()["frameworks"]
                return not any(f["tasks"] for f in frameworks if f["name"] == "marathon")

            wait_for(no_tasks, 30, what="the pod's tasks to end")
        finally:
            marathon.stop()
