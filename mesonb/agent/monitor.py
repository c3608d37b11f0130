"""What executors actually use, measured with psutil (Mesos's ``/monitor/statistics``).

Each container is an executor's session: the executor and every process it started.
A sample sums their CPU times and resident memory. CPU *usage* in cores is the change
in CPU time between two samples over the wall time between them; the first sample of a
container averages over its processes' lifetimes.

``/monitor/statistics`` answers Mesos's shape (a list of ``{executor_id, framework_id,
statistics: {timestamp, cpus_user_time_secs, cpus_system_time_secs, cpus_limit,
mem_rss_bytes, mem_limit_bytes}}``) plus ``cpus_usage`` (cores, a mesonb addition).
The agent's ``/metrics/snapshot`` adds the totals as ``slave/cpus_usage`` and
``slave/mem_usage`` (MB).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psutil

from .containerizer import session_members


@dataclass
class Sample:
    wall: float
    user: float
    system: float
    rss: int
    cpus_usage: float


def measure(pids: Iterable[int]) -> tuple[float, float, int, float]:
    """Summed user and system CPU seconds, RSS bytes and earliest start of ``pids``."""
    user = system = 0.0
    rss = 0
    started = time.time()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                times = proc.cpu_times()
                user += times.user + times.children_user
                system += times.system + times.children_system
                rss += proc.memory_info().rss
                started = min(started, proc.create_time())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return user, system, rss, started


class ResourceMonitor:
    """Samples containers on demand and remembers the last sample of each."""

    MIN_INTERVAL = 0.2  # closer samples than this reuse the previous rate

    def __init__(self) -> None:
        self._last: dict[str, Sample] = {}

    def sample(self, container_id: str, session: int) -> Sample:
        now = time.time()
        previous = self._last.get(container_id)
        if previous is not None and now - previous.wall < self.MIN_INTERVAL:
            return previous
        user, system, rss, started = measure(session_members(session))
        if previous is not None:
            elapsed = now - previous.wall
            used = (user + system) - (previous.user + previous.system)
        else:
            elapsed, used = now - started, user + system
        usage = max(0.0, used / elapsed) if elapsed > 0 else 0.0
        sample = Sample(now, user, system, rss, round(usage, 3))
        self._last[container_id] = sample
        return sample

    def forget(self, live: set[str]) -> None:
        """Drop the samples of containers that are gone."""
        for container_id in list(self._last):
            if container_id not in live:
                del self._last[container_id]

    def statistics(self, executors: Iterable[Any]) -> list[dict[str, Any]]:
        """Mesos's ``/monitor/statistics`` for the running ``executors`` (agent book)."""
        out = []
        live = set()
        for executor in executors:
            container = executor.container
            if container is None or not container.running:
                continue
            live.add(executor.container_id)
            sample = self.sample(executor.container_id, container.pid)
            limits = executor.resources
            for task in executor.tasks():
                if not task.state.terminal:
                    limits = limits + task.resources
            out.append({
                "executor_id": executor.executor_id,
                "executor_name": executor.info.name or "",
                "framework_id": executor.framework_id,
                "source": executor.info.source or "",
                "statistics": {
                    "timestamp": sample.wall,
                    "cpus_user_time_secs": round(sample.user, 3),
                    "cpus_system_time_secs": round(sample.system, 3),
                    "cpus_limit": limits.get("cpus"),
                    "cpus_usage": sample.cpus_usage,
                    "mem_rss_bytes": sample.rss,
                    "mem_limit_bytes": int(limits.get("mem") * 1024 * 1024),
                },
            })
        self.forget(live)
        return out

    @staticmethod
    def totals(statistics: list[dict[str, Any]]) -> dict[str, float]:
        """Cores and MB in use over all containers."""
        cpus = sum(s["statistics"]["cpus_usage"] for s in statistics)
        mem = sum(s["statistics"]["mem_rss_bytes"] for s in statistics) / (1024 * 1024)
        return {"cpus": round(cpus, 3), "mem": round(mem, 1)}
