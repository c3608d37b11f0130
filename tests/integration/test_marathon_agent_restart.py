"""Marathon's instances are command tasks run by the agent itself (no interpreter each),
and they outlive an agent restart: kill -9 of the agent, a new agent on the same work
dir adopts the tasks still running (same ids, same processes), kills them on request and
reports the end of one that exits; a task that died while the agent was down fails and
Marathon replaces it."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import psutil
import pytest
import requests
from marathon_support import SMALL, MarathonProcess

from mesonb.agent.containerizer import is_alive
from mesonb.testing.processes import Daemon, ProcessCluster, get_json, wait_for

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def task_pids(agent: Daemon) -> dict[str, int]:
    """Task id -> the pid leading the session in its sandbox (the task's own process)."""
    out = {}
    for framework in get_json(agent.url + "/state")["frameworks"]:
        for executor in framework["executors"]:
            for proc in psutil.process_iter(["pid", "cwd"]):
                if proc.info.get("cwd") == executor["directory"] \
                        and os.getsid(proc.pid) == proc.pid:
                    out[executor["tasks"][0]["id"]] = proc.pid
    return out


def test_instances_outlive_an_agent_restart_without_an_executor_each(tmp_path: Path) -> None:
    agent_args = ["--port", str(free_port())]
    with ProcessCluster(tmp_path, agents=1, agent_resources="cpus:4;mem:4096;disk:4096",
                        agent_args=agent_args) as cluster:
        marathon = MarathonProcess(tmp_path, cluster.address).start()
        try:
            created = marathon.request("POST", "/v2/apps", {
                "id": "/keep", "cmd": "sleep 600", "instances": 3, "backoffSeconds": 0.1,
                **SMALL})
            assert created.status_code == 201, created.text
            before = {t["id"] for t in marathon.running("/keep", 3, 30)}
            # Marathon's FrameworkInfo: checkpointing, a week of failover, the agent's runner
            answer = requests.post(cluster.url + "/api/v1", json={"type": "GET_FRAMEWORKS"},
                                   timeout=10).json()
            info = answer["get_frameworks"]["frameworks"][0]["framework_info"]
            assert info["checkpoint"] is True and info["failover_timeout"] == 604800
            assert {"key": "mesonb.command_executor", "value": "agent"} in \
                info["labels"]["labels"]
            agent = cluster.agents[0]
            pids = wait_for(lambda: (p := task_pids(agent)) and len(p) == 3 and p, 10,
                            what="the tasks' processes")
            # the agent runs each command itself: the session leader is the command, not a
            # Python command executor
            for pid in pids.values():
                assert "python" not in " ".join(psutil.Process(pid).cmdline()), pid

            agent.kill()  # kill -9: checkpointed tasks live on without the agent
            survivor, doomed, spare = sorted(pids)
            assert all(is_alive(pid) for pid in pids.values())
            os.killpg(pids[doomed], signal.SIGKILL)  # dies while the agent is down
            wait_for(lambda: not is_alive(pids[doomed]), 10, what="the doomed task to die")

            restarted = cluster.start_agent(0)
            cluster.wait_agents(1, 30)

            def replaced() -> set[str] | None:
                running = {t["id"] for t in marathon.get("/v2/apps/keep/tasks")["tasks"]
                           if t["state"] == "TASK_RUNNING"}
                return running if len(running) == 3 and doomed not in running else None

            after = wait_for(replaced, 30, what="the dead task to be replaced")
            assert {survivor, spare} <= after and after - before  # adopted, and one new
            failure = marathon.get("/v2/apps/keep?embed=app.lastTaskFailure")["app"]
            assert failure["lastTaskFailure"]["taskId"] == doomed
            assert failure["lastTaskFailure"]["state"] == "TASK_FAILED"
            assert is_alive(pids[survivor]) and is_alive(pids[spare])
            assert task_pids(restarted)[survivor] == pids[survivor]

            # an adopted task that ends is reported (its status is unknown to the agent)
            os.killpg(pids[spare], signal.SIGKILL)

            def spare_failed() -> bool:
                app = marathon.get("/v2/apps/keep?embed=app.lastTaskFailure")["app"]
                return app["lastTaskFailure"]["taskId"] == spare

            wait_for(spare_failed, 20, what="the adopted task's end")
            app = marathon.get("/v2/apps/keep?embed=app.lastTaskFailure")["app"]
            assert "exit status unknown" in app["lastTaskFailure"]["message"]

            # and an adopted task is killed on request, its process with it
            killed = marathon.request("DELETE", f"/v2/apps/keep/tasks/{survivor}?scale=true")
            assert killed.status_code == 200, killed.text
            wait_for(lambda: not is_alive(pids[survivor]), 20, what="the adopted task killed")
            wait_for(lambda: survivor not in {t["id"] for t in marathon.get(
                "/v2/apps/keep/tasks")["tasks"]}, 20, what="the killed task to go")
            marathon.running("/keep", 2, 30)
        finally:
            marathon.request("DELETE", "/v2/apps/keep?force=true")
            marathon.stop()
