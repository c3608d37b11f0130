"""cgroups v2: one cgroup per container in the unified hierarchy.

Used where the unified hierarchy has the ``memory``, ``cpu`` and ``pids`` controllers and
the agent can enable them for its subtree (on these machines it has none: v1 is used).

* memory: ``memory.max`` from ``mem`` and ``memory.oom.group`` = 1 (the kernel kills the
  whole container at once, so its executor cannot report the task first); the agent polls
  ``memory.events`` for ``oom_kill`` every :data:`POLL` seconds and records the limitation
  with the peak (``memory.peak`` where the kernel has it);
* cpu: ``cpu.weight`` from the shares and ``cpu.max`` (quota and 100 ms period) with CFS;
* pids: ``pids.max``. Destroy: ``cgroup.kill`` (or SIGKILL to each member), then rmdir.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from mesonb.protocol.states import Reason

from .base import Handle, Isolator, OnLimitation, UpdateFailed, Usage
from .cgroups_v1 import JOIN_SCRIPT, _keyed, _read, _write
from .limits import CFS_PERIOD_US, Limitation, Limits, memory_message

log = logging.getLogger(__name__)

CONTROLLERS = ("memory", "cpu", "pids")
POLL = 0.05


def unified_mount(mountinfo: str = "/proc/self/mountinfo") -> Path | None:
    try:
        lines = Path(mountinfo).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        if right.split()[:1] == ["cgroup2"]:
            return Path(left.split()[4])
    return None


def weight(shares: int) -> int:
    """cgroups v1 shares as a v2 weight (the kernel's and systemd's conversion)."""
    return max(1, min(10000, 1 + ((shares - 2) * 9999) // 262142))


class CgroupsV2(Isolator):
    """The cgroups v2 backend (see the module docstring)."""

    name = "cgroups v2"

    def __init__(self, root: str = "mesonb") -> None:
        mount = unified_mount()
        if mount is None:
            raise OSError("cgroups v2: no cgroup2 filesystem is mounted")
        available = _read(mount / "cgroup.controllers").split()
        missing = [c for c in CONTROLLERS if c not in available]
        if missing:
            raise OSError(f"cgroups v2: the unified hierarchy at {mount} has no"
                          f" {', '.join(missing)} controller (the machine uses cgroups v1)")
        own = "/"
        for line in _read(Path("/proc/self/cgroup")).splitlines():
            if line.startswith("0::"):
                own = line[3:]
        parent = mount / own.lstrip("/")
        self.base = parent / root
        enable = " ".join(f"+{c}" for c in CONTROLLERS)
        self.base.mkdir(exist_ok=True)
        _write(parent / "cgroup.subtree_control", enable)  # EBUSY: parent has processes
        _write(self.base / "cgroup.subtree_control", enable)
        self._watched: dict[str, Handle] = {}
        self._poller: asyncio.Task[None] | None = None

    def isolation(self) -> list[str]:
        return ["cgroups/cpu", "cgroups/mem", "cgroups/pids"]

    def _dir(self, handle: Handle) -> Path:
        return self.base / handle.container_id

    def prepare(self, container_id: str, limits: Limits) -> Handle:
        handle = Handle(container_id, limits)
        path = self._dir(handle)
        path.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            _write(path / "memory.oom.group", "1")
        self._apply(handle, limits)
        return handle

    def _apply(self, handle: Handle, limits: Limits) -> None:
        path = self._dir(handle)
        _write(path / "cpu.weight", str(weight(limits.cpu_shares)))
        quota = limits.cfs_quota_us
        _write(path / "cpu.max", f"{quota if quota is not None else 'max'} {CFS_PERIOD_US}")
        _write(path / "memory.max", str(limits.mem_bytes) if limits.mem_bytes else "max")
        if limits.pids is not None:
            _write(path / "pids.max", str(limits.pids))
        handle.limits = limits

    def adopt(self, container_id: str, pid: int) -> Handle | None:
        """The cgroup an earlier agent run made for ``container_id`` (a container still
        running, or one whose leftovers are to be destroyed), with its limits read back."""
        path = self.base / container_id
        if not path.is_dir():
            return None
        memory = _read(path / "memory.max", "max").strip()
        quota, _, period = _read(path / "cpu.max", "max").strip().partition(" ")
        cap = int(quota) / int(period) if quota.isdigit() and period.isdigit() else None
        return Handle(container_id, Limits(cpus=cap or 0.0, cpus_cap=cap, mem_mb=int(
            memory) / (1 << 20) if memory.isdigit() else None))

    def wrap(self, handle: Handle, argv: list[str], executable: str | None
             ) -> tuple[list[str], str | None, bool]:
        if executable is not None and argv and executable != argv[0]:
            return argv, executable, False
        procs = str(self._dir(handle) / "cgroup.procs")
        return ["/bin/sh", "-c", JOIN_SCRIPT, "mesonb-join", procs, "--", *argv], None, True

    def procs_file(self, handle: Handle) -> str | None:
        return str(self._dir(handle) / "cgroup.procs")

    def join(self, handle: Handle, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # it already exited: nothing to hold
            _write(self._dir(handle) / "cgroup.procs", str(pid))

    def watch(self, handle: Handle, pid: int, on_limitation: OnLimitation) -> None:
        handle.pid = pid
        handle.on_limitation = on_limitation
        handle.extra["oom_kills"] = self._oom_kills(handle)
        self._watched[handle.container_id] = handle
        if self._poller is None or self._poller.done():
            self._poller = asyncio.ensure_future(self._poll())

    def _oom_kills(self, handle: Handle) -> int:
        return _keyed(_read(self._dir(handle) / "memory.events")).get("oom_kill", 0)

    async def _poll(self) -> None:
        while self._watched:
            await asyncio.sleep(POLL)
            for handle in list(self._watched.values()):
                if self._oom_kills(handle) > handle.extra.get("oom_kills", 0):
                    self._watched.pop(handle.container_id, None)
                    path = self._dir(handle)
                    peak = int(_read(path / "memory.peak", "0") or 0) or int(
                        _read(path / "memory.current", "0") or 0)
                    limit = handle.limits.mem_bytes or 0
                    self.limit(handle, Limitation(
                        Reason.REASON_CONTAINER_LIMITATION_MEMORY,
                        memory_message(limit, max(peak, limit), _read(path / "memory.stat"))))

    def update(self, handle: Handle, limits: Limits) -> None:
        try:
            self._apply(handle, handle.limits.raised_to(limits))
        except OSError as exc:
            log.warning("cannot update the limits of container %s: %s",
                        handle.container_id, exc)
            raise UpdateFailed(f"Failed to update the resources of container "
                               f"{handle.container_id}: {exc}") from exc

    def usage(self, handle: Handle) -> Usage:
        path = self._dir(handle)
        cpu = _keyed(_read(path / "cpu.stat"))
        memory = _keyed(_read(path / "memory.stat"))
        usage = Usage(
            cpus_user_time_secs=cpu.get("user_usec", 0) / 1e6,
            cpus_system_time_secs=cpu.get("system_usec", 0) / 1e6,
            mem_rss_bytes=memory.get("anon", 0),
            mem_cache_bytes=memory.get("file", 0),
            cpus_nr_periods=cpu.get("nr_periods", 0),
            cpus_nr_throttled=cpu.get("nr_throttled", 0),
            cpus_throttled_time_secs=cpu.get("throttled_usec", 0) / 1e6,
        )
        with contextlib.suppress(ValueError):
            usage.mem_total_bytes = int(_read(path / "memory.current", "0"))
            usage.processes = int(_read(path / "pids.current", "0"))
        return usage

    async def destroy(self, handle: Handle) -> None:
        self._watched.pop(handle.container_id, None)
        path = self._dir(handle)
        killed = False
        with contextlib.suppress(OSError):
            _write(path / "cgroup.kill", "1")
            killed = True
        for _ in range(200):
            pids = [int(p) for p in _read(path / "cgroup.procs").split()]
            if not pids:
                break
            if not killed:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.005)
        for attempt in range(50):
            try:
                path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if attempt == 49:
                    log.warning("cannot remove cgroup %s: %s", path, exc)
                await asyncio.sleep(0.01)

    def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
