"""cgroups v1: one cgroup per container in each controller's hierarchy.

Layout (``--cgroups-root``, default ``mesonb``, under the agent's own cgroup so that a
machine-level limit on the agent still covers its containers)::

    /sys/fs/cgroup/memory/<agent's cgroup>/mesonb/<container id>
    /sys/fs/cgroup/cpu/<agent's cgroup>/mesonb/<container id>      (and cpuacct, pids, ...)

* memory: ``memory.limit_in_bytes`` from ``mem``, with the kernel's OOM killer *disabled*
  for the cgroup (``memory.oom_control``) and an eventfd listener on it (Mesos's OOM
  listener): at the limit the container's allocation waits, the agent hears of it at once,
  records the limitation (so the executor cannot report its task first) and destroys the
  container;
* cpu: ``cpu.shares`` (1024 per cpu) and, with CFS on, ``cpu.cfs_quota_us`` of a 100 ms
  period and ``cpu.cfs_burst_us`` equal to the quota where the kernel has it (5.14+; the
  largest it takes): a container idle for a while may run a short spike (a 100 MB value
  written or read, a start-up) at up to twice its quota in one period, while its average
  stays capped. Mesos sets no burst (there, such a spike waits for the next periods);
  usage from ``cpuacct.stat``, throttling from ``cpu.stat``;
* pids: ``pids.max``; freezer: used to stop a container before killing it, so a fork bomb
  cannot outrun the kill; devices: left as the parent's (GPUs narrow it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path

from mesonb.protocol.states import Reason

from .base import Handle, Isolator, OnLimitation, UpdateFailed, Usage
from .limits import CFS_PERIOD_US, Limitation, Limits, memory_message

log = logging.getLogger(__name__)

WANTED = ("memory", "cpu", "cpuacct", "pids", "freezer", "devices")
MEMORY_STAT = ("total_rss", "total_cache", "rss", "cache")
OPTIONAL = ("pids", "freezer", "devices")  # the freezer is not used: kills loop instead
REQUIRED = ("memory", "cpu")
# Writes its own pid into each cgroup.procs given before "--", then execs the rest.
JOIN_SCRIPT = ('for f; do shift; [ "$f" = -- ] && break; echo $$ > "$f" || exit 127; done;'
               ' exec "$@"')
STALE_AFTER = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def mounts(mountinfo: str = "/proc/self/mountinfo") -> dict[str, tuple[Path, str]]:
    """v1 controller → (mount point, root of the hierarchy that mount shows)."""
    found: dict[str, tuple[Path, str]] = {}
    try:
        lines = Path(mountinfo).read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] != "cgroup":
            continue
        for option in tail[2].split(","):
            if option in WANTED:
                found.setdefault(option, (Path(fields[4]), fields[3]))
    return found


def own_cgroups(path: str = "/proc/self/cgroup") -> dict[str, str]:
    """Controller → this process's cgroup path in that v1 hierarchy."""
    out: dict[str, str] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[1]:
            for controller in parts[1].split(","):
                out[controller] = parts[2]
    return out


def _write(path: Path | str, value: str) -> None:
    """Write ``value`` to a cgroup file: one open, write and close (no Python file object:
    the agent writes limits on its loop)."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: Path | str, default: str = "") -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return default
    try:
        return os.read(fd, 1 << 16).decode()
    except OSError:
        return default
    finally:
        os.close(fd)


def _keyed(text: str, wanted: tuple[str, ...] | None = None) -> dict[str, int]:
    """``key value`` lines as a dict (only the ``wanted`` keys, when given)."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if (wanted is None or key in wanted) and value.lstrip("-").isdigit():
            out[key] = int(value)
    return out


def _remove_all(paths: list[Path]) -> list[Path]:
    """rmdir each cgroup; those that are still busy."""
    busy = []
    for path in paths:
        try:
            path.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            busy.append(path)
    return busy


class CgroupsV1(Isolator):
    """The cgroups v1 backend (see the module docstring)."""

    name = "cgroups v1"

    def __init__(self, root: str = "mesonb", *, pids: bool = True) -> None:
        found = mounts()
        own = own_cgroups()
        self.bases: dict[str, Path] = {}
        for controller in WANTED:
            if controller not in found or (controller == "pids" and not pids):
                continue
            mount, mount_root = found[controller]
            path = own.get(controller, "/")
            if not path.startswith(mount_root):
                path = mount_root
            relative = os.path.relpath(path, mount_root)
            base = mount if relative == "." else mount / relative
            self.bases[controller] = base / root
        missing = [c for c in REQUIRED if c not in self.bases]
        if missing:
            raise OSError(f"cgroups v1: no {' or '.join(missing)} hierarchy is mounted")
        for base in set(self.bases.values()):
            base.mkdir(parents=True, exist_ok=True)  # OSError when not writable (not root)
        probe = self.bases["memory"] / f".probe-{os.getpid()}"
        probe.mkdir(exist_ok=True)
        probe.rmdir()
        self.sweep()

    def sweep(self, older_than: float = STALE_AFTER) -> None:
        """Remove empty container cgroups left by agents that died (older than
        ``older_than`` seconds: a cgroup being prepared right now is never empty for long)."""
        now = time.time()
        for base in set(self.bases.values()):
            with contextlib.suppress(OSError):
                for path in base.iterdir():
                    with contextlib.suppress(OSError):
                        if path.is_dir() and now - path.stat().st_mtime > older_than and \
                                not _read(path / "cgroup.procs").split():
                            path.rmdir()

    def isolation(self) -> list[str]:
        names = ["cgroups/cpu", "cgroups/mem"]
        names += [f"cgroups/{c}" for c in ("pids", "devices") if c in self.bases]
        return names

    def _dirs(self, handle: Handle) -> dict[str, Path]:
        """The container's cgroup in each hierarchy it uses (making a memory cgroup costs
        the kernel most: only what the limits need; devices only to narrow GPUs)."""
        dirs: dict[str, Path] | None = handle.extra.get("dirs")
        if dirs is None:
            used = [c for c in self.bases if c not in OPTIONAL
                    or (c == "devices" and handle.limits.gpus > 0)
                    or (c == "pids" and handle.limits.pids is not None)]
            dirs = handle.extra["dirs"] = {c: self.bases[c] / handle.container_id
                                           for c in used}
        return dirs

    def prepare(self, container_id: str, limits: Limits) -> Handle:
        handle = Handle(container_id, limits)
        for path in set(self._dirs(handle).values()):
            path.mkdir(exist_ok=True)
        memory = self._dirs(handle)["memory"]
        _write(memory / "memory.oom_control", "1")  # the agent, not the kernel, kills
        self._apply(handle, limits, first=True)
        return handle

    def _apply(self, handle: Handle, limits: Limits, first: bool = False) -> None:
        """Write ``limits`` (all of them when ``first``; later only the values that
        differ from those applied, ``handle.limits``: a burst of calls changes the CPU
        share and cap, and each write is a syscall on the agent's loop)."""
        dirs = self._dirs(handle)
        old = handle.limits
        if first or limits.cpu_shares != old.cpu_shares:
            _write(self._file(handle, "cpu", "cpu.shares"), str(limits.cpu_shares))
        quota = limits.cfs_quota_us
        if first or quota != old.cfs_quota_us:
            self._set_quota(handle, quota, old.cfs_quota_us,
                            first=first or old.cfs_quota_us is None)
        memory = dirs["memory"]
        wanted = limits.mem_bytes
        if wanted is None:
            if first or old.mem_bytes is not None:
                _write(memory / "memory.limit_in_bytes", "-1")
        elif first or wanted != old.mem_bytes:
            current = int(_read(memory / "memory.limit_in_bytes", "0") or 0)
            if first or wanted > current:
                _write(memory / "memory.limit_in_bytes", str(wanted))
        if "pids" in dirs and limits.pids is not None and (first or limits.pids != old.pids):
            _write(dirs["pids"] / "pids.max", str(limits.pids))
        handle.limits = limits

    def _file(self, handle: Handle, controller: str, name: str) -> str:
        """The path of one of the container's cgroup files, joined once per container."""
        files: dict[str, str] = handle.extra.setdefault("files", {})
        path = files.get(name)
        if path is None:
            path = files[name] = str(self._dirs(handle)[controller] / name)
        return path

    def _set_quota(self, handle: Handle, quota: int | None, old: int | None = None,
                   first: bool = False) -> None:
        """The CFS quota (None: no cap) and its burst: a short burst (a start-up) may use
        a period's unused quota, the kernel wanting burst <= quota at each step.
        ``first`` (a new cgroup, an adopted one, or one that had no cap): the period
        too, and the quota in place read back. Else ``old`` is the quota applied, and a
        change costs two writes: the burst first when the quota goes down (the new burst
        fits under the old quota), last when it goes up."""
        burst = self._file(handle, "cpu", "cpu.cfs_burst_us")
        quota_file = self._file(handle, "cpu", "cpu.cfs_quota_us")
        if first:
            _write(self._file(handle, "cpu", "cpu.cfs_period_us"), str(CFS_PERIOD_US))
            old = int(_read(quota_file, "-1") or -1)
        if quota is None or (old is not None and old >= 0 and quota < old):
            with contextlib.suppress(OSError):
                _write(burst, "0" if quota is None or first else str(quota))
            _write(quota_file, str(quota if quota is not None else -1))
            if first and quota is not None:
                with contextlib.suppress(OSError):
                    _write(burst, str(quota))
            return
        _write(quota_file, str(quota))
        with contextlib.suppress(OSError):
            _write(burst, str(quota))

    def adopt(self, container_id: str, pid: int) -> Handle | None:
        dirs = {c: base / container_id for c, base in self.bases.items()
                if (base / container_id).is_dir()}
        if "memory" not in dirs or "cpu" not in dirs:
            return None
        memory = dirs["memory"]
        limit = int(_read(memory / "memory.limit_in_bytes", "0") or 0)
        shares = int(_read(dirs["cpu"] / "cpu.shares", "1024") or 1024)
        limits = Limits(cpus=shares / 1024, mem_mb=limit / (1 << 20) if limit < 1 << 60
                        else None)
        handle = Handle(container_id, limits)
        handle.extra["dirs"] = dirs
        log.info("container %s: took its cgroups back", container_id)
        return handle

    def wrap(self, handle: Handle, argv: list[str], executable: str | None
             ) -> tuple[list[str], str | None, bool]:
        if executable is not None and argv and executable != argv[0]:
            return argv, executable, False  # sh cannot set argv[0]: join after the spawn
        procs = sorted({str(d / "cgroup.procs") for d in self._dirs(handle).values()})
        return ["/bin/sh", "-c", JOIN_SCRIPT, "mesonb-join", *procs, "--", *argv], None, True

    def restrict_devices(self, handle: Handle, deny: list[str], allow: list[str]) -> bool:
        devices = self._dirs(handle).get("devices")
        if devices is None:
            return False
        for rule in deny:
            _write(devices / "devices.deny", rule)
        for rule in allow:
            _write(devices / "devices.allow", rule)
        return True

    def procs_file(self, handle: Handle) -> str | None:
        return str(self._dirs(handle)["memory"] / "cgroup.procs")

    def join(self, handle: Handle, pid: int) -> None:
        for path in sorted(set(self._dirs(handle).values())):
            try:
                _write(path / "cgroup.procs", str(pid))
            except ProcessLookupError:  # it already exited (a fast command): nothing to hold
                return

    def watch(self, handle: Handle, pid: int, on_limitation: OnLimitation) -> None:
        handle.pid = pid
        handle.on_limitation = on_limitation
        memory = self._dirs(handle)["memory"]
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        ofd = os.open(memory / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _write(memory / "cgroup.event_control", f"{efd} {ofd}")
        except OSError:
            os.close(efd)
            os.close(ofd)
            raise
        handle.extra.update(efd=efd, ofd=ofd)
        loop = asyncio.get_running_loop()
        loop.add_reader(efd, self._oom_event, handle)
        loop.call_soon(self._oom_event, handle)  # already at its limit (adopted): act now

    def _oom_event(self, handle: Handle) -> None:
        efd = handle.extra.get("efd")
        if efd is None:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.eventfd_read(efd)
        memory = self._dirs(handle)["memory"]
        control = _keyed(_read(memory / "memory.oom_control"))
        if not control.get("under_oom") and not control.get("oom_kill"):
            if not memory.exists():
                self._unwatch(handle)
            return
        limit = int(_read(memory / "memory.limit_in_bytes", "0") or 0)
        peak = int(_read(memory / "memory.max_usage_in_bytes", "0") or 0)
        handle.peak_rss = max(handle.peak_rss, peak)
        log.warning("container %s is out of memory (limit %d MB, peak %d MB)",
                    handle.container_id, limit >> 20, peak >> 20)
        self._unwatch(handle)
        self.limit(handle, Limitation(Reason.REASON_CONTAINER_LIMITATION_MEMORY,
                                      memory_message(limit, peak, _read(memory / "memory.stat"))))

    def _unwatch(self, handle: Handle) -> None:
        efd = handle.extra.pop("efd", None)
        ofd = handle.extra.pop("ofd", None)
        if efd is not None:
            with contextlib.suppress(RuntimeError, ValueError):
                asyncio.get_running_loop().remove_reader(efd)
            os.close(efd)
        if ofd is not None:
            os.close(ofd)

    def update(self, handle: Handle, limits: Limits) -> None:
        try:
            self._apply(handle, handle.limits.raised_to(limits))
        except OSError as exc:
            log.warning("cannot update the limits of container %s: %s",
                        handle.container_id, exc)
            raise UpdateFailed(f"Failed to update the resources of container "
                               f"{handle.container_id}: {exc}") from exc

    def pids(self, handle: Handle) -> list[int]:
        text = _read(self._dirs(handle)["memory"] / "cgroup.procs")
        return [int(p) for p in text.split()]

    def usage(self, handle: Handle) -> Usage:
        dirs = self._dirs(handle)
        usage = Usage()
        acct = _keyed(_read(dirs.get("cpuacct", dirs["cpu"]) / "cpuacct.stat"))
        usage.cpus_user_time_secs = acct.get("user", 0) / CLK_TCK
        usage.cpus_system_time_secs = acct.get("system", 0) / CLK_TCK
        cpu = _keyed(_read(dirs["cpu"] / "cpu.stat"))
        if cpu:
            usage.cpus_nr_periods = cpu.get("nr_periods", 0)
            usage.cpus_nr_throttled = cpu.get("nr_throttled", 0)
            usage.cpus_throttled_time_secs = cpu.get("throttled_time", 0) / 1e9
        memory = dirs["memory"]
        stat = _keyed(_read(memory / "memory.stat"), MEMORY_STAT)
        usage.mem_rss_bytes = stat.get("total_rss", stat.get("rss", 0))
        usage.mem_cache_bytes = stat.get("total_cache", stat.get("cache", 0))
        with contextlib.suppress(ValueError):
            usage.mem_total_bytes = int(_read(memory / "memory.usage_in_bytes", "0"))
            usage.mem_max_bytes = int(_read(memory / "memory.max_usage_in_bytes", "0"))
        if "pids" in dirs:
            with contextlib.suppress(ValueError):
                usage.processes = int(_read(dirs["pids"] / "pids.current", "0"))
        return usage

    async def destroy(self, handle: Handle) -> None:
        self._unwatch(handle)
        dirs = self._dirs(handle)
        freezer = dirs.get("freezer")
        for _ in range(200):
            pids = self.pids(handle)
            if not pids:
                break
            if freezer is not None:
                with contextlib.suppress(OSError):
                    _write(freezer / "freezer.state", "FROZEN")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if freezer is not None:
                with contextlib.suppress(OSError):
                    _write(freezer / "freezer.state", "THAWED")
            await asyncio.sleep(0.005)
        remaining = await asyncio.get_running_loop().run_in_executor(
            None, _remove_all, sorted(set(dirs.values())))  # off the event loop
        for path in remaining:
            for attempt in range(50):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:  # EBUSY: the killed are not reaped yet
                    if attempt == 49:
                        log.warning("cannot remove cgroup %s: %s", path, exc)
                    await asyncio.sleep(0.01)
