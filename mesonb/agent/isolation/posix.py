"""The posix backend: a monitor of each container's processes, for machines where no
cgroup is writable (not root, inside a container).

A container is its first process's *session* (the executor leads a new session; tasks
stay in it). Every :data:`INTERVAL` seconds one pass over ``/proc`` sums the resident
memory of each watched session; a container over its ``mem`` is reported
(REASON_CONTAINER_LIMITATION_MEMORY with the limit and the peak seen) and destroyed.
Memory is enforced after the fact, at that granularity (less the pages of a client's
shared-memory files that workers keep mapped to write results into: the client's, see
:mod:`mesonb.procmem`); CPU and pids are not capped,
only measured (Mesos's ``posix/cpu`` and ``posix/mem`` do not enforce at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from mesonb import procmem
from mesonb.protocol.states import Reason

from .base import Handle, Isolator, OnLimitation, Usage
from .limits import Limitation, Limits, memory_message

log = logging.getLogger(__name__)

INTERVAL = 0.1
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def scan(sessions: set[int]) -> dict[int, list[tuple[int, int, int, int]]]:
    """For each session id in ``sessions``: ``(pid, rss bytes, utime ticks, stime ticks)``
    of its processes, from one pass over ``/proc``."""
    out: dict[int, list[tuple[int, int, int, int]]] = {s: [] for s in sessions}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2:].split()
        try:
            sid = int(fields[3])
            if sid in out and fields[0] != b"Z":
                out[sid].append((int(name), int(fields[21]) * PAGE,
                                 int(fields[11]) + int(fields[13]),
                                 int(fields[12]) + int(fields[14])))
        except (IndexError, ValueError):
            continue
    return out


class PosixMonitor(Isolator):
    """The posix backend (see the module docstring)."""

    name = "posix"

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._watched: dict[str, Handle] = {}
        self._loop_task: asyncio.Task[None] | None = None

    def isolation(self) -> list[str]:
        return ["posix/cpu", "posix/mem"]

    def prepare(self, container_id: str, limits: Limits) -> Handle:
        return Handle(container_id, limits)

    def watch(self, handle: Handle, pid: int, on_limitation: OnLimitation) -> None:
        handle.pid = pid
        handle.on_limitation = on_limitation
        self._watched[handle.container_id] = handle
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.ensure_future(self._run())

    def update(self, handle: Handle, limits: Limits) -> None:
        handle.limits = handle.limits.raised_to(limits)

    async def _run(self) -> None:
        while self._watched:
            await asyncio.sleep(self.interval)
            try:
                self.check()
            except Exception:  # keep watching whatever one pass hit
                log.exception("the container monitor failed a pass")

    def check(self) -> None:
        """One pass: report every watched container over its memory limit."""
        handles = {h.pid: h for h in self._watched.values() if h.pid is not None}
        for sid, procs in scan(set(handles)).items():
            handle = handles[sid]
            rss = sum(p[1] for p in procs)
            handle.peak_rss = max(handle.peak_rss, rss)
            limit = handle.limits.mem_bytes
            if limit is not None and rss > limit:  # less the clients' pages kept mapped
                rss -= sum(procmem.kept_shm_rss(p[0]) for p in procs)
            if limit is not None and rss > limit and handle.limited is None:
                log.warning("container %s uses %d MB, over its %d MB: destroying it",
                            handle.container_id, rss >> 20, limit >> 20)
                self._watched.pop(handle.container_id, None)
                self.limit(handle, Limitation(Reason.REASON_CONTAINER_LIMITATION_MEMORY,
                                              memory_message(limit, handle.peak_rss)))

    def usage(self, handle: Handle) -> Usage:
        if handle.pid is None:
            return Usage()
        procs = scan({handle.pid})[handle.pid]
        rss = sum(p[1] for p in procs)
        handle.peak_rss = max(handle.peak_rss, rss)
        return Usage(
            cpus_user_time_secs=sum(p[2] for p in procs) / CLK_TCK,
            cpus_system_time_secs=sum(p[3] for p in procs) / CLK_TCK,
            mem_rss_bytes=rss, mem_max_bytes=handle.peak_rss, processes=len(procs))

    async def destroy(self, handle: Handle) -> None:
        self._watched.pop(handle.container_id, None)
        if handle.pid is None:
            return
        for _ in range(100):
            procs = scan({handle.pid})[handle.pid]
            if not procs:
                return
            for pid, *_ in procs:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.01)

    def close(self) -> None:
        self._watched.clear()
        if self._loop_task is not None:
            self._loop_task.cancel()
