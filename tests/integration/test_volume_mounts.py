"""Persistent volumes bind-mounted by a real agent process (as root): a task writes into
its RW volume, a task writing into an RO volume fails (EROFS); the agent killed with
SIGKILL leaves its mounts behind, and the restarted agent unmounts them before its
sandbox GC, which then removes the sandbox and never empties the volume."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
import requests

from mesonb.agent import mounts
from mesonb.frameworks.driver import SchedulerDriver
from mesonb.testing.processes import ProcessCluster, until

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")]
JSON = {"Content-Type": "application/json", "Accept": "application/json"}


def disk(value: float, **extra: Any) -> dict[str, Any]:
    return {"name": "disk", "type": "SCALAR", "scalar": {"value": value},
            "reservations": [{"type": "DYNAMIC", "role": "db", "principal": "ops"}], **extra}


def vol(pid: str, path: str, mode: str) -> dict[str, Any]:
    return disk(10, disk={"persistence": {"id": pid, "principal": "ops"},
                          "volume": {"container_path": path, "mode": mode}})


def operator(cluster: ProcessCluster, body: dict[str, Any]) -> None:
    answer = requests.post(cluster.url + "/api/v1", json=body, headers=JSON, timeout=10)
    assert answer.status_code == 202, answer.text


class Launcher:
    """Launches ``tasks`` on the first offer holding the volumes; records statuses."""

    def __init__(self, tasks: list[dict[str, Any]]) -> None:
        self.tasks = tasks
        self.statuses: dict[str, list[dict[str, Any]]] = {}
        self.driver: SchedulerDriver | None = None

    async def on_offers(self, offers: list[dict[str, Any]]) -> None:
        assert self.driver is not None
        for offer in offers:
            held = {(r.get("disk") or {}).get("persistence", {}).get("id")
                    for r in offer["resources"]}
            if not self.tasks or not {"rw", "ro"} <= held:
                await self.driver.decline([offer["id"]["value"]], 1)
                continue
            tasks, self.tasks = self.tasks, []
            for task in tasks:
                task["agent_id"] = offer["agent_id"]
            await self.driver.launch([offer["id"]["value"]], tasks)

    def on_update(self, status: dict[str, Any]) -> None:
        self.statuses.setdefault(status["task_id"]["value"], []).append(status)

    def states(self, task_id: str) -> list[str]:
        return [s["state"] for s in self.statuses.get(task_id, [])]


def task(task_id: str, command: str, volume: dict[str, Any]) -> dict[str, Any]:
    plain = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
             {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]
    return {"name": task_id, "task_id": {"value": task_id}, "command": {"value": command},
            "resources": [*plain, volume]}




async def test_bind_mounted_volumes_ro_and_a_killed_agents_stale_mounts(tmp_path: Path):
    cluster = ProcessCluster(tmp_path, agents=1, agent_resources="cpus:2;mem:1024;disk:1024",
                             agent_args=["--gc-delay", "0secs"])
    work = tmp_path / "agent0"
    volumes = work / "volumes" / "roles" / "db"
    launcher = Launcher([
        task("writer", "echo written > data/f && exec sleep 600", vol("rw", "data", "RW")),
        task("ro-writer", f"(echo no > ref/g) 2> {tmp_path}/ro.err", vol("ro", "ref", "RO"))])
    try:
        await asyncio.to_thread(cluster.start)
        [agent] = await asyncio.to_thread(cluster.wait_agents, 1)
        state = requests.get(cluster.agents[0].url + "/state", timeout=10).json()
        assert state["flags"]["persistent_volumes"] == "bind_mount"
        agent_id = {"value": agent["id"]}
        operator(cluster, {"type": "RESERVE_RESOURCES", "reserve_resources": {
            "agent_id": agent_id, "resources": [disk(100)]}})
        operator(cluster, {"type": "CREATE_VOLUMES", "create_volumes": {
            "agent_id": agent_id, "volumes": [vol("rw", "data", "RW"), vol("ro", "ref", "RO")]}})
        launcher.driver = SchedulerDriver(cluster.address, {
            "user": "root", "name": "vols", "roles": ["db"],
            "capabilities": [{"type": "MULTI_ROLE"}]}, launcher)
        await launcher.driver.start()

        await until(lambda: (volumes / "rw" / "f").exists(), "the writer's file")
        assert (volumes / "rw" / "f").read_text() == "written\n"
        await until(lambda: "TASK_FAILED" in launcher.states("ro-writer"), "the RO write to fail")
        sandboxes = work / "slaves"
        assert len(mounts.mount_points(sandboxes)) == 1  # the writer's; ro-writer's went
        assert "Read-only file system" in (tmp_path / "ro.err").read_text()
        assert not (volumes / "ro" / "g").exists()

        # SIGKILL: nothing unmounts; the writer's mount stays behind.
        cluster.agents[0].kill()
        cluster.agents.clear()
        await until(lambda: mounts.mount_points(sandboxes), "the mount left behind", 5)
        cluster.start_agent(0)
        # Recovery unmounts it (the framework did not checkpoint: its executor is not
        # recovered); the GC (delay 0) then removes the old sandboxes, not the data.
        await until(lambda: not mounts.mount_points(sandboxes), "the stale mount to go")
        await until(lambda: not list(sandboxes.glob("*/frameworks/*/executors/writer")),
                    "the GC to remove the writer's sandbox")
        assert (volumes / "rw" / "f").read_text() == "written\n"
        assert "unmounted 1 stale persistent volume mounts" in cluster.agents[0].output()
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        if launcher.driver is not None:
            await launcher.driver.stop()
        cluster.stop()
        mounts.unmount_under(tmp_path)
