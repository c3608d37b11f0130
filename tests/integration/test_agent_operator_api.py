"""The agent's v1 operator API (``POST /api/v1`` on the agent), driven against a real agent.

Every call of ``mesos.v1.agent.Call`` either answers as Mesos does or is refused with a 400
that names it; a command runs inside a running task's container and its output streams
back (what ``mesos task exec`` does)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid

import pytest
import requests

from mesonb import Cluster
from mesonb.protocol import recordio
from mesonb.testing.processes import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def running():
    """A local cluster with one agent running one long command task."""
    with Cluster.local(agents=1) as cluster:
        run = cluster.run("echo started; sleep 120", cpus=0.1, mem=32)
        row = cluster.agents().iloc[0]
        url = f"http://{row['hostname']}:{int(row['port'])}"
        try:
            yield cluster, url
        finally:
            run.cancel()


def call(url: str, body: dict, path: str = "/api/v1") -> requests.Response:
    return requests.post(url + path, data=json.dumps(body), timeout=10,
                         headers={"Content-Type": "application/json",
                                  "Accept": "application/json"})


def ok(url: str, body: dict) -> dict:
    response = call(url, body)
    assert response.status_code == 200, response.text
    return response.json() if response.content else {}


def running_container(url: str) -> dict:
    def found():
        containers = ok(url, {"type": "GET_CONTAINERS"})["get_containers"]["containers"]
        return containers[0] if containers else None
    return wait_for(found, 20, what="a running container")


def test_read_only_calls_answer_in_mesos_shapes(running):
    _, url = running
    assert ok(url, {"type": "GET_HEALTH"}) == {"type": "GET_HEALTH",
                                               "get_health": {"healthy": True}}
    flags = {f["name"]: f["value"] for f in ok(url, {"type": "GET_FLAGS"})["get_flags"]["flags"]}
    assert flags["work_dir"]
    assert ok(url, {"type": "GET_VERSION"})["get_version"]["version_info"]["version"]
    metrics = {m["name"]: m["value"]
               for m in ok(url, {"type": "GET_METRICS", "get_metrics": {}})
               ["get_metrics"]["metrics"]}
    assert metrics["slave/registered"] == 1.0
    info = ok(url, {"type": "GET_AGENT"})["get_agent"]["agent_info"]
    assert info["id"]["value"] and info["hostname"]

    container = running_container(url)
    assert container["framework_id"]["value"] and container["container_id"]["value"]
    assert container["resource_statistics"]["mem_limit_bytes"] > 0

    def launched():
        tasks = ok(url, {"type": "GET_TASKS"})["get_tasks"]
        running = [t for t in tasks["launched_tasks"] if t["state"] == "TASK_RUNNING"]
        return tasks if running else None
    tasks = wait_for(launched, 20, what="a launched, running task")
    (task,) = tasks["launched_tasks"]
    assert task["state"] == "TASK_RUNNING"
    assert task["agent_id"]["value"] == info["id"]["value"]
    assert any(r["name"] == "cpus" for r in task["resources"])
    state = ok(url, {"type": "GET_STATE"})["get_state"]
    assert state["get_tasks"]["launched_tasks"][0]["task_id"] == task["task_id"]
    (framework,) = state["get_frameworks"]["frameworks"]
    assert framework["framework_info"]["id"] == task["framework_id"]
    executors = ok(url, {"type": "GET_EXECUTORS"})["get_executors"]["executors"]
    assert executors[0]["executor_info"]["executor_id"]["value"]
    assert ok(url, {"type": "GET_OPERATIONS"}) == {"type": "GET_OPERATIONS",
                                                   "get_operations": {}}


def test_files_are_listed_and_read_inside_sandboxes_only(running):
    _, url = running
    state = requests.get(url + "/state", timeout=10).json()
    # the command task's own executor (the functions executor warmed up beside it)
    (sandbox,) = [e["directory"] for f in state["frameworks"] for e in f["executors"]
                  if not e["id"].startswith("functions-")]
    infos = ok(url, {"type": "LIST_FILES", "list_files": {"path": sandbox}})
    names = {i["path"].rsplit("/", 1)[-1] for i in infos["list_files"]["file_infos"]}
    assert {"stdout", "stderr"} <= names

    def started():
        answer = ok(url, {"type": "READ_FILE",
                          "read_file": {"path": sandbox + "/stdout", "offset": 0}})
        data = base64.b64decode(answer["read_file"]["data"])
        return answer if b"started" in data else None
    answer = wait_for(started, 20, what="the task's output in stdout")
    assert answer["read_file"]["size"] >= len("started\n")

    outside = call(url, {"type": "READ_FILE", "read_file": {"path": "/etc/passwd", "offset": 0}})
    assert outside.status_code == 403
    dotdot = call(url, {"type": "LIST_FILES", "list_files": {"path": sandbox + "/../.."}})
    assert dotdot.status_code == 403


def test_logging_level_is_set_for_a_duration(running):
    _, url = running
    assert ok(url, {"type": "GET_LOGGING_LEVEL"})["get_logging_level"]["level"] == 0
    ok(url, {"type": "SET_LOGGING_LEVEL",
             "set_logging_level": {"level": 2, "duration": {"nanoseconds": 400_000_000}}})
    assert ok(url, {"type": "GET_LOGGING_LEVEL"})["get_logging_level"]["level"] == 2
    wait_for(lambda: ok(url, {"type": "GET_LOGGING_LEVEL"})["get_logging_level"]["level"] == 0,
             10, what="the level to revert after its duration")
    toggled = requests.get(url + "/logging/toggle", params={"level": 1, "duration": "5secs"},
                           timeout=10)
    assert toggled.status_code == 200
    assert ok(url, {"type": "GET_LOGGING_LEVEL"})["get_logging_level"]["level"] == 1
    bad = requests.get(url + "/logging/toggle", params={"level": 1, "duration": "soon"},
                       timeout=10)
    assert bad.status_code == 400 and "duration" in bad.text


def _session_output(url: str, parent: str, command: dict) -> tuple[str, dict[str, bytes]]:
    child = str(uuid.uuid4())
    response = requests.post(
        url + "/api/v1", timeout=30, stream=True,
        data=json.dumps({"type": "LAUNCH_NESTED_CONTAINER_SESSION",
                         "launch_nested_container_session": {
                             "container_id": {"value": child, "parent": {"value": parent}},
                             "command": command}}),
        headers={"Content-Type": "application/json", "Accept": "application/recordio",
                 "Message-Accept": "application/json"})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/recordio"
    out: dict[str, bytes] = {"STDOUT": b"", "STDERR": b""}
    decoder = recordio.Decoder()
    for chunk in response.iter_content(None):
        for record in decoder.feed_json(chunk):
            assert record["type"] == "DATA"
            out[record["data"]["type"]] += base64.b64decode(record["data"]["data"])
    return child, out


def test_a_command_runs_inside_a_running_tasks_container(running):
    _, url = running
    parent = running_container(url)["container_id"]["value"]
    child, out = _session_output(url, parent, {
        "value": "pwd; echo to-err >&2; echo $MESOS_SANDBOX; exit 3"})
    lines = out["STDOUT"].decode().split()
    assert lines[0] == lines[1] and "/runs/" in lines[0]  # the task's own sandbox
    assert out["STDERR"] == b"to-err\n"
    waited = ok(url, {"type": "WAIT_NESTED_CONTAINER",
                      "wait_nested_container": {"container_id": {"value": child,
                                                                 "parent": {"value": parent}}}})
    assert waited["wait_nested_container"]["exit_status"] == 3 << 8


def test_nested_sessions_are_refused_clearly(running):
    _, url = running
    unknown = call(url, {"type": "LAUNCH_NESTED_CONTAINER_SESSION",
                         "launch_nested_container_session": {
                             "container_id": {"value": "c", "parent": {"value": "nope"}},
                             "command": {"value": "true"}}})
    assert unknown.status_code == 404 and "nope" in unknown.text
    no_parent = call(url, {"type": "LAUNCH_NESTED_CONTAINER_SESSION",
                           "launch_nested_container_session": {
                               "container_id": {"value": "c"}, "command": {"value": "true"}}})
    assert no_parent.status_code == 400 and "parent" in no_parent.text
    kill = call(url, {"type": "KILL_NESTED_CONTAINER",
                      "kill_nested_container": {"container_id": {"value": "missing"}}})
    assert kill.status_code == 404


@pytest.mark.parametrize("body, status, words", [
    (b"{", 400, "JSON"),
    (b"[]", 400, "object"),
    (b'{"type": "NOT_A_CALL"}', 400, "NOT_A_CALL"),
    (b'{"type": "READ_FILE"}', 400, "read_file"),
    (b'{"type": "LAUNCH_CONTAINER", "launch_container": {}}', 400, "standalone"),
    (b'{"type": "PRUNE_IMAGES"}', 400, "PRUNE_IMAGES"),
])
def test_bad_calls_get_a_4xx_with_the_reason(running, body, status, words):
    _, url = running
    response = requests.post(url + "/api/v1", data=body, timeout=10,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert words in response.text


def test_mesos_paths_and_the_executor_heartbeat(running):
    _, url = running
    assert call(url, {"type": "GET_HEALTH"}, "/slave(1)/api/v1").status_code == 200
    assert call(url, {"type": "GET_HEALTH"}, "/api/v1/agent").status_code == 200
    assert requests.get(url + "/api/v1", timeout=10).status_code == 405
    state = requests.get(url + "/state", timeout=10).json()
    executor = state["frameworks"][0]["executors"][0]
    heartbeat = {"type": "HEARTBEAT", "framework_id": {"value": state["frameworks"][0]["id"]},
                 "executor_id": {"value": executor["id"]}}
    # The executor API at Mesos's own path (no secret on this agent: no token needed).
    answer = call(url, heartbeat, "/slave(1)/api/v1/executor")
    assert answer.status_code == 202, answer.text


def test_mesonb_task_exec_runs_a_command_in_a_running_task(running):
    cluster, _ = running
    tasks = cluster.tasks()
    task_id = str(tasks[tasks["state"] == "TASK_RUNNING"]["task_id"].iloc[0])
    done = subprocess.run(
        [sys.executable, "-m", "mesonb", "task", "exec", "--master", cluster.address, task_id,
         "--", "sh", "-c", "cat stdout; echo oops >&2; exit 4"],
        capture_output=True, timeout=60, text=True)
    assert done.returncode == 4, done.stderr
    assert "started" in done.stdout  # the task's own stdout file, read from its sandbox
    assert done.stderr == "oops\n"
    missing = subprocess.run(
        [sys.executable, "-m", "mesonb", "task", "exec", "--master", cluster.address,
         "no-such-task", "--", "true"], capture_output=True, timeout=60, text=True)
    assert missing.returncode == 1
    assert "no-such-task" in missing.stderr and "Traceback" not in missing.stderr
