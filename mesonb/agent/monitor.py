"""What containers actually use (Mesos's ``/monitor/statistics`` and ``/containers``).

A container's usage comes from its isolation backend (:mod:`mesonb.agent.isolation`):
cgroup counters under cgroups (``cpuacct.stat``, ``cpu.stat``, ``memory.stat``,
``pids.current``), one ``/proc`` pass under the posix monitor, psutil over its session for
a container recovered from an earlier agent run. ``disk_used_bytes`` is the last
``disk/du`` measurement of its sandbox. CPU *usage* in cores (``cpus_usage``, a mesonb
addition) is the change in CPU time between two samples over the wall time between them;
the first sample of a container averages over its life.

Both endpoints answer Mesos's shapes: ``/monitor/statistics`` a list of ``{executor_id,
executor_name, framework_id, source, statistics}``, ``/containers`` the same with
``container_id`` and ``status``. ``statistics`` holds ``timestamp, cpus_user_time_secs,
cpus_system_time_secs, cpus_limit, cpus_nr_periods, cpus_nr_throttled,
cpus_throttled_time_secs, mem_rss_bytes, mem_limit_bytes, mem_total_bytes,
mem_cache_bytes, mem_max_bytes, disk_used_bytes, disk_limit_bytes, processes`` (those the
backend knows). The agent's ``/metrics/snapshot`` adds the totals as ``slave/cpus_usage``
and ``slave/mem_usage`` (MB).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psutil

from .containerizer import session_members
from .isolation import Usage

if TYPE_CHECKING:
    from .containers import Containerizer

MB = 1024 * 1024
log = logging.getLogger(__name__)


@dataclass
class Sample:
    wall: float
    user: float
    system: float
    rss: int
    cpus_usage: float
    usage: Usage | None = None


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


def _create_time(pid: int, default: float) -> float:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return default


class ResourceMonitor:
    """Samples containers on demand and remembers the last sample of each."""

    MIN_INTERVAL = 0.5  # closer requests than this get the previous sample
    # A sample older than this (nobody asked for a while: a script reading usage now and
    # then) is taken anew before answering, for up to INLINE_MAX containers a request;
    # the others are answered as they are and refreshed on a thread.
    STALE_AFTER = 5.0
    INLINE_MAX = 50

    def __init__(self, containerizer: Containerizer | None = None) -> None:
        self.containerizer = containerizer
        self._last: dict[str, Sample] = {}
        self._started: dict[str, float] = {}
        self._refreshing: asyncio.Future[None] | None = None

    def sample(self, container_id: str, session: int, container: Any = None,
               fresh: bool = False) -> Sample:
        """The container's last sample, or a new one when there is none (or ``fresh``)."""
        now = time.time()
        previous = self._last.get(container_id)
        if previous is not None and not fresh:
            return previous
        usage = None
        handle = getattr(container, "handle", None)
        isolator = getattr(container, "isolator", None)
        if handle is not None and isolator is not None:
            usage = isolator.usage(handle)
            user, system = usage.cpus_user_time_secs, usage.cpus_system_time_secs
            rss = usage.mem_rss_bytes
            started = self._started.get(container_id) or _create_time(session, now)
            self._started[container_id] = started
        else:
            user, system, rss, started = measure(session_members(session))
        if previous is not None:
            elapsed = now - previous.wall
            used = (user + system) - (previous.user + previous.system)
        else:
            elapsed, used = now - started, user + system
        rate = max(0.0, used / elapsed) if elapsed > 0 else 0.0
        sample = Sample(now, user, system, rss, round(rate, 3), usage)
        self._last[container_id] = sample
        return sample

    def forget(self, live: set[str]) -> None:
        """Drop the samples of containers that are gone."""
        for container_id in list(self._last):
            if container_id not in live:
                del self._last[container_id]
                self._started.pop(container_id, None)

    def containers(self, executors: Iterable[Any]) -> list[dict[str, Any]]:
        """Mesos's ``/containers`` for the running ``executors`` (agent book).

        A container's first sample is taken now; after that, samples older than
        :data:`MIN_INTERVAL` are answered as they are and refreshed on a thread for the
        next request, so an answer never waits for hundreds of cgroup reads; those older
        than :data:`STALE_AFTER` (up to :data:`INLINE_MAX` of them) are taken anew first,
        so an occasional reader does not get the usage of its previous visit."""
        out = []
        live = set()
        stale = []
        inline = self.INLINE_MAX
        now = time.time()
        for executor in executors:
            container = executor.container
            if container is None or not container.running:
                continue
            live.add(executor.container_id)
            previous = self._last.get(executor.container_id)
            if previous is not None and now - previous.wall >= self.STALE_AFTER and inline:
                inline -= 1
                self.sample(executor.container_id, container.pid, container, fresh=True)
            elif previous is not None and now - previous.wall >= self.MIN_INTERVAL:
                stale.append((executor.container_id, container.pid, container))
            out.append({
                "container_id": executor.container_id,
                "executor_id": executor.executor_id,
                "executor_name": executor.info.name or "",
                "framework_id": executor.framework_id,
                "source": executor.info.source or "",
                "statistics": self._statistics(executor, container),
                "status": {"container_id": {"value": executor.container_id},
                           "executor_pid": container.pid},
            })
        self.forget(live)
        if stale:
            self._refresh_soon(stale)
        return out

    def _refresh_soon(self, stale: list[tuple[str, int, Any]]) -> None:
        if self._refreshing is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._refreshing = loop.run_in_executor(None, self._refresh, stale)
        self._refreshing.add_done_callback(self._refreshed)

    def _refresh(self, stale: list[tuple[str, int, Any]]) -> None:
        for container_id, session, container in stale:
            self.sample(container_id, session, container, fresh=True)

    def _refreshed(self, fut: asyncio.Future[None]) -> None:
        self._refreshing = None
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("refreshing container usage failed: %s", fut.exception())

    def statistics(self, executors: Iterable[Any]) -> list[dict[str, Any]]:
        """Mesos's ``/monitor/statistics`` for the running ``executors``."""
        return [{k: v for k, v in c.items() if k not in ("container_id", "status")}
                for c in self.containers(executors)]

    def _statistics(self, executor: Any, container: Any) -> dict[str, Any]:
        sample = self.sample(executor.container_id, container.pid, container)
        handle = getattr(container, "handle", None)
        if handle is not None:  # the limits in force (memory limits only ever rise)
            cpus, mem = handle.limits.cpus, (handle.limits.mem_bytes or 0) / MB
            disk = self.containerizer.disk_mb(executor) if self.containerizer else 0.0
        else:
            limits = executor.resources
            for task in executor.tasks():
                if not task.state.terminal:
                    limits = limits + task.resources
            cpus, mem, disk = limits.get("cpus"), limits.get("mem"), limits.get("disk")
        stats: dict[str, Any] = {
            "timestamp": sample.wall,
            "cpus_user_time_secs": round(sample.user, 3),
            "cpus_system_time_secs": round(sample.system, 3),
            "cpus_limit": round(cpus, 6),
            "cpus_usage": sample.cpus_usage,
            "mem_rss_bytes": sample.rss,
            "mem_limit_bytes": int(mem * MB),
        }
        if sample.usage is not None:
            extra = sample.usage.to_json()
            for key in ("cpus_user_time_secs", "cpus_system_time_secs", "mem_rss_bytes"):
                extra.pop(key, None)
            stats.update(extra)
        watcher = self.containerizer.disk if self.containerizer is not None else None
        used = watcher.used(executor.container_id) if watcher is not None else None
        if used is not None:
            stats["disk_used_bytes"] = used
        if disk:
            stats["disk_limit_bytes"] = int(disk * MB)
        return stats

    @staticmethod
    def totals(statistics: list[dict[str, Any]]) -> dict[str, float]:
        """Cores and MB in use over all containers."""
        cpus = sum(s["statistics"]["cpus_usage"] for s in statistics)
        mem = sum(s["statistics"]["mem_rss_bytes"] for s in statistics) / MB
        return {"cpus": round(cpus, 3), "mem": round(mem, 1)}
