"""Launch latency of command tasks on one real agent: 1,000 ``true`` tasks.

* a real ``mesonb master`` and one real ``mesonb agent`` process (cgroups v1 as root here,
  else whatever ``--isolation`` the agent picks);
* a framework (mesonb's SchedulerDriver, the v1 scheduler API, implicit
  acknowledgements) launches ``--tasks`` command tasks ``true`` (cpus 0.01, mem 16) in one
  ACCEPT as soon as an offer holds them; each task gets its own container: cgroups, a
  sandbox, ``stdout``/``stderr``.

It prints launches/s (tasks TASK_RUNNING per second from the ACCEPT), the time until the
framework saw every TASK_FINISHED, until the agent had every acknowledgement (every
executor completed in its ``/state``), and until every container cgroup was removed.
Goal: all 1,000 finished in <= 3 s (Mesos 1.7: about 30 s for 1,000 containers on 24
cores).

    python bench/bench_launch.py [--tasks 1000] [--isolation auto]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mesonb.agent.isolation.cgroups_v1 import mounts, own_cgroups
from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.resources import Resources
from mesonb.testing.processes import ProcessCluster, get_json


class Launcher:
    """Launches every task on the first offer that holds them; records the timings."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.driver: SchedulerDriver | None = None
        self.launched_at: float | None = None
        self.running: set[str] = set()
        self.finished: set[str] = set()
        self.failed: list[dict[str, Any]] = []
        self.all_running_at: float | None = None
        self.all_finished_at: float | None = None
        self.done = asyncio.Event()

    async def on_offers(self, offers: list[dict[str, Any]]) -> None:
        assert self.driver is not None
        for offer in offers:
            if self.launched_at is not None:
                await self.driver.decline([offer["id"]["value"]], 3600)
                continue
            resources = Resources.parse("cpus:0.01;mem:16").to_json()
            tasks = [{"name": f"true-{i}", "task_id": {"value": f"true-{i}"},
                      "agent_id": offer["agent_id"], "command": {"value": "true"},
                      "resources": resources} for i in range(self.count)]
            self.launched_at = time.monotonic()
            await self.driver.launch([offer["id"]["value"]], tasks)

    def on_update(self, status: dict[str, Any]) -> None:
        task_id, state = status["task_id"]["value"], status["state"]
        now = time.monotonic()
        if state in ("TASK_RUNNING", "TASK_FINISHED"):
            self.running.add(task_id)
            if len(self.running) == self.count and self.all_running_at is None:
                self.all_running_at = now
        if state == "TASK_FINISHED":
            self.finished.add(task_id)
        elif state in ("TASK_FAILED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED", "TASK_KILLED"):
            self.failed.append(status)
        if len(self.finished) + len(self.failed) >= self.count and not self.done.is_set():
            self.all_finished_at = now
            self.done.set()


def cgroup_roots(pid: int, root: str) -> list[Path]:
    """The agent's ``--cgroups-root`` directory in each v1 hierarchy."""
    own = own_cgroups(f"/proc/{pid}/cgroup")
    out = []
    for controller, (mount, mount_root) in mounts().items():
        path = own.get(controller, "/")
        relative = os.path.relpath(path, mount_root) if path.startswith(mount_root) else "."
        out.append((mount if relative == "." else mount / relative) / root)
    return out


def container_cgroups(pid: int, root: str) -> list[Path]:
    """The agent's container cgroups that still exist (cgroups v1)."""
    return [p for base in cgroup_roots(pid, root) if base.is_dir()
            for p in base.iterdir() if p.is_dir()]


async def wait(condition: Any, timeout: float, step: float = 0.02) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic()
        await asyncio.sleep(step)
    return None


def agent_done(url: str) -> bool:
    """Every executor completed: each task's terminal update was acknowledged."""
    state = get_json(url + "/state", timeout=30)
    return not any(f["executors"] for f in state["frameworks"])


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
        root = f"bench-launch-{os.getpid()}"
        cluster = ProcessCluster(
            Path(tmp), agents=1, agent_resources="cpus:64;mem:65536;disk:100000",
            agent_args=["--isolation", args.isolation, "--cgroups-root", root])
        cluster.start()
        launcher = Launcher(args.tasks)
        driver = SchedulerDriver(cluster.address, {"user": getpass.getuser(),
                                                   "name": "bench-launch"}, launcher)
        launcher.driver = driver
        try:
            await driver.start()
            cpu = {name: psutil.Process(d.proc.pid) for name, d in
                   (("master", cluster.master), ("agent", cluster.agents[0]))}
            cpu["framework"] = psutil.Process()
            before = {name: sum(p.cpu_times()[:2]) for name, p in cpu.items()}
            await asyncio.wait_for(launcher.done.wait(), args.timeout)
            used = {name: sum(p.cpu_times()[:2]) - before[name] for name, p in cpu.items()}
            assert launcher.launched_at is not None
            t0 = launcher.launched_at
            agent = cluster.agents[0]
            acked = await wait(lambda: agent_done(agent.url), 120, 0.1)
            pid = agent.proc.pid
            removed = await wait(lambda: not container_cgroups(pid, root), 120)
            running = (launcher.all_running_at or launcher.all_finished_at or t0) - t0
            finished = (launcher.all_finished_at or t0) - t0
            print(f"tasks: {args.tasks} ({len(launcher.finished)} finished,"
                  f" {len(launcher.failed)} failed)")
            if launcher.failed:
                print("  first failure:", launcher.failed[0].get("message"))
            print(f"launches/s: {args.tasks / running:.0f} (all TASK_RUNNING after"
                  f" {running:.2f} s)")
            print(f"all TASK_FINISHED seen by the framework: {finished:.2f} s")
            print("all acknowledged at the agent: "
                  + (f"{acked - t0:.2f} s" if acked else "not within 120 s"))
            print("every container cgroup removed: "
                  + (f"{removed - t0:.2f} s" if removed else "not within 120 s"))
            print("CPU seconds until all finished: " + ", ".join(
                f"{name} {seconds:.2f}" for name, seconds in used.items()))
            return 0 if not launcher.failed else 1
        finally:
            await driver.stop(teardown=True)
            cluster.stop()
            for base in cgroup_roots(os.getpid(), root):  # the agent was our child: same cgroups
                with contextlib.suppress(OSError):
                    base.rmdir()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--isolation", default="auto")
    parser.add_argument("--timeout", type=float, default=300.0)
    sys.exit(asyncio.run(main(parser.parse_args())))
