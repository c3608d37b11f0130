"""A task that asks for a container image is refused, never run on the host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from agent_peer import command_task, new_id, run

from mesonb.protocol.mesos import ExecutorInfo
from mesonb.protocol.states import Reason, Source, TaskState

pytestmark = pytest.mark.slow

DOCKER = {"type": "DOCKER", "docker": {"image": "busybox:1.36", "network": "HOST"}}
MESOS_IMAGE = {"type": "MESOS",
               "mesos": {"image": {"type": "DOCKER", "docker": {"name": "alpine"}}}}
MESOS_PLAIN = {"type": "MESOS", "mesos": {}}


def with_container(task: Any, container: dict[str, Any]) -> Any:
    task.extra["container"] = container  # TaskInfo.container, passed through as in Mesos
    return task


def test_images_are_refused_and_plain_mesos_containers_run(tmp_path: Path) -> None:
    async def body(h) -> None:
        m = h.master
        marker = tmp_path / "ran"
        for container in (DOCKER, MESOS_IMAGE):
            task_id = new_id()
            m.run_task(with_container(command_task(task_id, f"touch {marker}"), container))
            failed = await m.terminal(task_id)
            status = failed.status
            assert status.state is TaskState.TASK_FAILED
            assert status.reason is Reason.REASON_CONTAINER_LAUNCH_FAILED
            assert status.source is Source.SOURCE_AGENT
            assert "container images are not supported by this agent" in status.message
        # A custom executor whose ExecutorInfo names an image is refused the same way.
        task_id = new_id()
        executor = ExecutorInfo.from_json({
            "executor_id": {"value": "custom"}, "container": DOCKER,
            "command": {"value": "sleep 30"}})
        custom = command_task(task_id, None)
        custom.command = None
        m.run_task(custom, executor=executor)
        failed = await m.terminal(task_id)
        assert failed.status.reason is Reason.REASON_CONTAINER_LAUNCH_FAILED
        assert not marker.exists()
        plain = new_id()
        m.run_task(with_container(command_task(plain, f"touch {marker}"), MESOS_PLAIN))
        assert (await m.terminal(plain)).status.state is TaskState.TASK_FINISHED
        assert marker.exists()

    run(body, tmp_path)
