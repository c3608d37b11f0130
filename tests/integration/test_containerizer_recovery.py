"""A container that reaches its memory limit while its agent is down waits for it: the
restarted agent takes the container's cgroups back and fails its task at once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_agent_recovery import Tracker, free_port, until
from test_containerizer_limits import V1

from mesonb.agent.isolation.cgroups_v1 import CgroupsV1
from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.resources import Resources
from mesonb.testing.processes import ProcessCluster, get_json

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(V1 is not None, reason=f"cgroups v1 not usable here: {V1}")]


async def test_a_limit_reached_while_the_agent_is_down(tmp_path: Path) -> None:
    go = tmp_path / "go"
    code = (f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
            "b = bytearray(300 * 2**20)\ntime.sleep(60)\n")
    script = tmp_path / "hog.py"
    script.write_text(code)
    port = free_port()
    cluster = ProcessCluster(tmp_path, agents=1, agent_args=["--port", str(port)])
    cluster.start()
    tracker = Tracker([{"name": "hog", "task_id": {"value": "hog"},
                        "command": {"value": f"{sys.executable} {script}"},
                        "resources": Resources.parse("cpus:0.1;mem:64").to_json()}])
    driver = SchedulerDriver(cluster.address, {
        "user": "tester", "name": "ckpt", "checkpoint": True, "failover_timeout": 60}, tracker)
    tracker.driver = driver
    try:
        await driver.start()
        await until(lambda: "TASK_RUNNING" in tracker.states("hog"), 30, "hog running")
        (executor,) = [e for f in get_json(cluster.agents[0].url + "/state")["frameworks"]
                       for e in f["executors"]]
        oom_control = CgroupsV1().bases["memory"] / executor["container"] / "memory.oom_control"
        cluster.agents[0].kill()  # kill -9
        go.touch()  # the hog reaches its limit with nobody listening: it waits
        await until(lambda: "under_oom 1" in oom_control.read_text(), 30, "the hog at its limit")
        assert "TASK_FAILED" not in tracker.states("hog")
        cluster.start_agent(0)
        await until(lambda: "TASK_FAILED" in tracker.states("hog"), 30, "hog FAILED")
        failed = tracker.last("hog")
        assert failed["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY"
        assert failed["source"] == "SOURCE_AGENT"
        assert failed["message"].startswith("Memory limit exceeded: Requested: 96MB")
    finally:
        await driver.stop(teardown=True)
        cluster.stop()
