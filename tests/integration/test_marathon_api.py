"""The Marathon v2 API of ``mesonb marathon`` against a real master and two agents.

Validation answers, relaunch with backoff, health-check kills, rolling restarts,
constraints, a deployment deadline, the event stream, and persistence across a restart
of the framework process (its tasks keep running).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests
from marathon_support import SMALL, MarathonProcess, cluster_with_racks, sse_events

from mesonb.testing.processes import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def marathon(tmp_path_factory: pytest.TempPathFactory):
    directory: Path = tmp_path_factory.mktemp("marathon-api")
    with cluster_with_racks(directory) as cluster:
        process = MarathonProcess(directory, cluster.address).start()
        try:
            yield process
        finally:
            process.stop()


def test_bad_input_gets_marathons_answers(marathon: MarathonProcess) -> None:
    bad = marathon.request("POST", "/v2/apps", {"id": "/v", "cmd": "x", "cpus": 0,
                                                "upgradeStrategy": {"minimumHealthCapacity": 2}})
    assert bad.status_code == 422
    body = bad.json()
    assert body["message"] == "Object is not valid"
    assert {d["path"] for d in body["details"]} == {"/cpus",
                                                    "/upgradeStrategy/minimumHealthCapacity"}
    assert marathon.request("POST", "/v2/apps", "{not json").status_code == 400
    typed = marathon.request("POST", "/v2/apps", {"id": "/v", "cmd": "x", "mem": "big"})
    assert typed.status_code == 400 and typed.json()["details"][0]["path"] == "/mem"
    assert marathon.get("/v2/apps") == {"apps": []}  # nothing was kept

    ok = marathon.request("POST", "/v2/apps", {"id": "/v", "cmd": "sleep 600", "instances": 1,
                                               **SMALL})
    assert ok.status_code == 201 and ok.headers["Marathon-Deployment-Id"]
    assert marathon.request("POST", "/v2/apps", {"id": "/v", "cmd": "sleep 1"}).status_code == 409
    marathon.deployed()
    # a deployment holds the app: 409 unless force (booleans as marathon-python sends them)
    held = marathon.request("PUT", "/v2/apps/v", {"cpus": 64})
    assert held.status_code == 200
    locked = marathon.request("PUT", "/v2/apps/v", {"instances": 2})
    assert locked.status_code == 409 and locked.json()["deployments"]
    forced = marathon.request("PUT", "/v2/apps//v?force=True", {"cpus": 0.01})
    assert forced.status_code == 200
    marathon.deployed()
    assert marathon.get("/v2/apps//v")["app"]["cpus"] == 0.01
    no_accept = requests.get(marathon.url + "/v2/events", timeout=5)
    assert no_accept.status_code == 405
    assert marathon.request("DELETE", "/v2/apps/v?force=true").status_code == 200
    assert marathon.request("GET", "/v2/apps/nope").status_code == 404
    marathon.deployed()


def test_failed_tasks_are_relaunched_with_backoff(marathon: MarathonProcess) -> None:
    app = {"id": "/crash", "cmd": "sleep 0.2; exit 3", "instances": 1, **SMALL,
           "backoffSeconds": 1, "backoffFactor": 2, "maxLaunchDelaySeconds": 30}
    assert marathon.request("POST", "/v2/apps", app).status_code == 201
    seen: set[str] = set()

    def failures(count: int):
        def check():
            got = marathon.get("/v2/apps/crash?embed=app.lastTaskFailure")["app"]
            failure = got.get("lastTaskFailure")
            if failure:
                seen.add(failure["taskId"])
            return len(seen) >= count
        return check

    started = time.monotonic()
    wait_for(failures(3), 30, what="three failures")
    elapsed = time.monotonic() - started
    assert elapsed >= 1 + 2 - 0.5  # delays of 1 s and 2 s between the launches
    queue = marathon.get("/v2/queue")["queue"]
    item = next(i for i in queue if i["app"]["id"] == "/crash")
    assert item["delay"]["timeLeftSeconds"] >= 1  # 4 s after the third failure
    assert marathon.request("DELETE", "/v2/queue/crash/delay").status_code == 204
    wait_for(failures(4), 3, what="a launch at once after the delay was reset")
    marathon.request("DELETE", "/v2/apps/crash?force=true")
    marathon.deployed()


SERVER = "exec python3 -m http.server $PORT0 --bind 127.0.0.1"


def test_unhealthy_instances_are_killed_and_replaced(marathon: MarathonProcess) -> None:
    check = {"protocol": "HTTP", "path": "/missing", "portIndex": 0, "gracePeriodSeconds": 0,
             "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 2}
    app = {"id": "/sick", "cmd": SERVER, "instances": 1, "cpus": 0.05, "mem": 64,
           "healthChecks": [check], "backoffSeconds": 0.1}
    kills: list[dict] = []
    reader = threading.Thread(target=lambda: kills.extend(sse_events(
        marathon.url, ["unhealthy_task_kill_event"], lambda e: bool(e))), daemon=True)
    reader.start()
    time.sleep(0.3)  # the stream opens before the app exists (not a result wait)
    assert marathon.request("POST", "/v2/apps", app).status_code == 201
    first = marathon.running("/sick", 1)[0]["id"]
    reader.join(30)
    assert kills and kills[0]["taskId"] == first and kills[0]["appId"] == "/sick"
    wait_for(lambda: any(t["id"] != first for t in
                         marathon.get("/v2/apps/sick/tasks")["tasks"]), 20,
             what="a replacement")
    failure = marathon.get("/v2/apps/sick?embed=app.lastTaskFailure")["app"]["lastTaskFailure"]
    assert failure["taskId"] == first
    # the same app checking "/" is healthy
    fine = marathon.request("PUT", "/v2/apps/sick?force=true",
                            {"healthChecks": [{**check, "path": "/"}]})
    assert fine.status_code == 200
    wait_for(lambda: marathon.get("/v2/apps/sick")["app"]["tasksHealthy"] == 1, 30,
             what="a healthy task")
    marathon.deployed()
    task = marathon.get("/v2/apps/sick/tasks")["tasks"][0]
    assert task["healthCheckResults"][0]["alive"] is True
    marathon.request("DELETE", "/v2/apps/sick?force=true")
    marathon.deployed()


def test_rolling_restart_replaces_every_instance(marathon: MarathonProcess) -> None:
    app = {"id": "/roll", "cmd": "sleep 600", "instances": 4, **SMALL,
           "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}}
    marathon.request("POST", "/v2/apps", app)
    marathon.deployed()
    before = {t["id"] for t in marathon.running("/roll", 4)}
    peak = [0]
    restart = marathon.request("POST", "/v2/apps/roll/restart")
    assert restart.status_code == 200 and restart.json()["deploymentId"]

    def done() -> bool:
        tasks = marathon.get("/v2/apps/roll/tasks")["tasks"]
        live = [t for t in tasks if t["state"] != "TASK_KILLING"]
        peak[0] = max(peak[0], len(live))
        return marathon.get("/v2/deployments") == []

    wait_for(done, 30, what="the restart")
    after = {t["id"] for t in marathon.running("/roll", 4)}
    assert not before & after
    assert peak[0] <= 4  # maximumOverCapacity 0: never more than 4 at once
    marathon.request("DELETE", "/v2/apps/roll")
    marathon.deployed()


def test_constraints_place_and_explain(marathon: MarathonProcess) -> None:
    app = {"id": "/spread", "cmd": "sleep 600", "instances": 3, **SMALL,
           "constraints": [["hostname", "UNIQUE"]]}
    marathon.request("POST", "/v2/apps", app)
    tasks = marathon.running("/spread", 2)
    assert sorted(t["host"] for t in tasks) == ["host-0", "host-1"]

    def explained():
        queue = marathon.get("/v2/queue")["queue"]
        for item in queue:
            summary = {r["reason"]: r["declined"] for r in
                       item["processedOffersSummary"]["rejectSummaryLaunchAttempt"]}
            if summary.get("UnfulfilledConstraint"):
                return item
        return None

    assert wait_for(explained, 20)["count"] == 1
    racked = {"id": "/rack1", "cmd": "sleep 600", "instances": 2, **SMALL,
              "constraints": [["rack", "CLUSTER", "r1"]]}
    marathon.request("POST", "/v2/apps", racked)
    assert {t["host"] for t in marathon.running("/rack1", 2)} == {"host-1"}
    marathon.request("DELETE", "/v2/apps/spread?force=true")
    marathon.request("DELETE", "/v2/apps/rack1?force=true")
    marathon.deployed()


def test_a_stuck_deployment_fails_at_its_deadline(marathon: MarathonProcess) -> None:
    app = {"id": "/stuck", "cmd": "sleep 600", "instances": 1, "cpus": 64, "mem": 8,
           "labels": {"MESONB_DEPLOY_TIMEOUT": "1.5"}}
    failed: list[dict] = []
    reader = threading.Thread(target=lambda: failed.extend(sse_events(
        marathon.url, ["deployment_failed"], lambda e: bool(e))), daemon=True)
    reader.start()
    time.sleep(0.3)  # the stream opens first
    created = marathon.request("POST", "/v2/apps", app)
    dep_id = created.headers["Marathon-Deployment-Id"]
    reader.join(20)
    assert failed and failed[0]["id"] == dep_id
    assert "MESONB_DEPLOY_TIMEOUT" in failed[0]["reason"]
    assert marathon.get("/v2/deployments") == []
    marathon.request("DELETE", "/v2/apps/stuck")
    marathon.deployed()


def test_state_survives_a_restart_of_the_framework(marathon: MarathonProcess) -> None:
    marathon.request("POST", "/v2/apps", {"id": "/keep/web", "cmd": "sleep 600",
                                          "instances": 2, **SMALL})
    marathon.deployed()
    before = {t["id"] for t in marathon.running("/keep/web", 2)}
    app = marathon.get("/v2/apps/keep/web")["app"]
    framework_id = marathon.get("/v2/info")["frameworkId"]
    marathon.stop()
    marathon.start()
    after = marathon.get("/v2/apps/keep/web")["app"]
    assert after["version"] == app["version"]
    assert marathon.get("/v2/apps/keep/web/versions")["versions"] == [app["version"]]
    assert {t["id"] for t in marathon.running("/keep/web", 2)} == before  # none killed
    wait_for(lambda: marathon.get("/v2/info")["frameworkId"] == framework_id, 10)
    # reconciliation has answered for both (explicitly, then implicitly): the same two
    # tasks, no extra
    wait_for(lambda: marathon.get("/metrics")["counters"][
        "marathon.tasks.reconciled.counter"]["count"] >= 4, 20, what="reconciliation")
    assert {t["id"] for t in marathon.get("/v2/apps/keep/web/tasks")["tasks"]} == before
    marathon.request("DELETE", "/v2/groups/keep")
    marathon.deployed()


def test_a_shared_executor_runs_the_instances_of_an_agent(marathon: MarathonProcess) -> None:
    shared = MarathonProcess(marathon.directory, marathon.master, ["--shared-executor"],
                             name="shared").start()
    try:
        shared.request("POST", "/v2/apps", {"id": "/pool", "cmd": "sleep 600", "instances": 6,
                                            **SMALL})
        shared.deployed()
        tasks = shared.running("/pool", 6)
        framework_id = shared.get("/v2/info")["frameworkId"]
        state = requests.get(f"http://{marathon.master}/master/state", timeout=10).json()
        ours = next(f for f in state["frameworks"] if f["id"] == framework_id)
        executors = {(t["slave_id"], t["executor_id"]) for t in ours["tasks"]}
        agents = {t["slave_id"] for t in ours["tasks"]}
        assert len(executors) == len(agents)  # one executor per agent, all its instances
        killed = shared.request("DELETE", f"/v2/apps/pool/tasks/{tasks[0]['id']}?scale=true")
        assert killed.status_code == 200
        shared.deployed()
        assert len(shared.running("/pool", 5)) == 5
        shared.request("DELETE", "/v2/apps/pool")
        shared.deployed()
    finally:
        shared.stop()


def test_readiness_checks_gate_the_deployment(marathon: MarathonProcess) -> None:
    ready = {"id": "/ready", "cmd": SERVER, "instances": 1, "cpus": 0.05, "mem": 64,
             "portDefinitions": [{"port": 0, "name": "http"}],
             "readinessChecks": [{"portName": "http", "path": "/", "intervalSeconds": 1}]}
    created = marathon.request("POST", "/v2/apps", ready)
    assert created.status_code == 201
    marathon.deployed(30)  # the server answered 200 on "/"
    never = {**ready, "id": "/never", "labels": {"MESONB_DEPLOY_TIMEOUT": "4"},
             "readinessChecks": [{"portName": "http", "path": "/missing",
                                  "intervalSeconds": 1}]}
    dep = marathon.request("POST", "/v2/apps", never).headers["Marathon-Deployment-Id"]
    marathon.running("/never", 1, 30)
    assert [d["id"] for d in marathon.get("/v2/deployments")] == [dep]  # running, not ready
    marathon.deployed(30)  # the deadline ends it
    marathon.request("DELETE", "/v2/apps/ready")
    marathon.request("DELETE", "/v2/apps/never")
    marathon.deployed()


def test_a_group_starts_dependencies_first(marathon: MarathonProcess) -> None:
    group = {"id": "/stack", "apps": [
        {"id": "web", "cmd": "sleep 600", "instances": 1, **SMALL,
         "dependencies": ["/stack/db"]},
        {"id": "db", "cmd": "sleep 600", "instances": 1, **SMALL}]}
    created = marathon.request("POST", "/v2/groups", group)
    assert created.status_code == 201
    steps = marathon.get("/v2/deployments")[0]["steps"]
    assert [[a["app"] for a in s["actions"]] for s in steps] == [["/stack/db"], ["/stack/web"]]
    marathon.deployed()
    tasks = {t["appId"]: t for t in marathon.get("/v2/tasks")["tasks"]
             if t["appId"].startswith("/stack/")}
    assert tasks["/stack/web"]["stagedAt"] >= tasks["/stack/db"]["startedAt"]
    tree = marathon.get("/v2/groups/stack")
    assert sorted(a["id"] for a in tree["apps"]) == ["/stack/db", "/stack/web"]
    assert marathon.request("POST", "/v2/groups", group).status_code == 409
    marathon.request("DELETE", "/v2/groups/stack")
    marathon.deployed()


def test_an_instance_gets_its_fetch_args_env_ports_and_labels(
        marathon: MarathonProcess, tmp_path: Path) -> None:
    payload = tmp_path / "payload.txt"
    payload.write_text("fetched by the agent\n")
    script = ("cat payload.txt > seen; "
              "echo $PORT0 $PORT_HTTP $GREETING $MARATHON_APP_LABEL_TEAM $MARATHON_APP_ID > envs; "
              "exec sleep 600")
    created = marathon.request("POST", "/v2/apps", {
        "id": "/fetching", "args": ["/bin/sh", "-c", script], "instances": 1, **SMALL,
        "fetch": [{"uri": f"file://{payload}"}], "env": {"GREETING": "hi"},
        "labels": {"team": "blue"}, "portDefinitions": [{"port": 0, "name": "http"}],
        "taskKillGracePeriodSeconds": 1, "acceptedResourceRoles": ["*"]})
    assert created.status_code == 201, created.text
    task = marathon.running("/fetching", 1, 30)[0]

    def written() -> tuple[str, str] | None:
        for envs in Path(marathon.directory).rglob("envs"):
            if task["id"] in str(envs) and envs.read_text().strip():
                return (envs.parent / "seen").read_text(), envs.read_text().split()
        return None

    seen, envs = wait_for(written, 20, what="the task's files")
    assert seen == "fetched by the agent\n"
    port = task["ports"][0]
    assert envs == [str(port), str(port), "hi", "blue", "/fetching"]
    # PATCH changes what it names only; wipe kills an instance, which is replaced
    patched = marathon.request("PATCH", "/v2/apps/fetching", {"instances": 2})
    assert patched.status_code == 200, patched.text
    marathon.deployed(30)
    assert marathon.get("/v2/apps/fetching")["app"]["env"] == {"GREETING": "hi"}
    two = {t["id"] for t in marathon.running("/fetching", 2, 30)}
    wiped = marathon.request("DELETE", f"/v2/apps/fetching/tasks/{task['id']}?wipe=true")
    assert wiped.status_code == 200, wiped.text
    wait_for(lambda: (ids := {t["id"] for t in marathon.running("/fetching", 2, 30)})
             and task["id"] not in ids and ids - two, 30, what="the wiped task's successor")
    assert marathon.request("DELETE", "/v2/apps/fetching?force=true").status_code == 200
    marathon.deployed(30)
