"""What a container may use, and why it was stopped when it used more.

A container's limits are the sums over its executor and its live tasks, as Mesos's
containerizer ``update()`` computes them (src/slave/containerizer/mesos/containerizer.cpp):

* ``cpus``  the CPU *request*: cgroup shares (1024 per core) and, with CFS on, the hard
  cap (quota = cpus x 100 ms per 100 ms period);
* ``mem``   the memory hard limit (MB);
* ``disk``  the sandbox quota (enforced only with ``--enforce-container-disk-quota``).

A task's ``limits`` (Mesos 1.11 ``TaskInfo.limits``: ``{"cpus": {"value": 2}, "mem":
{"value": "Infinity"}}``) raise its cap above its request; an infinite limit lifts the
container's cap on that resource altogether.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mesonb.protocol.resources import Resources
from mesonb.protocol.states import Reason

MB = 1024 * 1024
CFS_PERIOD_US = 100_000  # Mesos: CPU_CFS_PERIOD (100 ms)
MIN_CFS_QUOTA_US = 1_000  # Mesos: MIN_CPU_CFS_QUOTA (1 ms)
CPU_SHARES_PER_CPU = 1024
MIN_CPU_SHARES = 2
MIN_MEMORY_MB = 32.0  # Mesos: MIN_MEMORY


@dataclass(frozen=True)
class Limits:
    """One container's limits; ``None`` means not limited."""

    cpus: float = 0.0  # the request (shares)
    cpus_cap: float | None = None  # the CFS hard cap, in cores
    mem_mb: float | None = None
    disk_mb: float | None = None
    pids: int | None = None
    gpus: int = 0

    @property
    def cpu_shares(self) -> int:
        return max(MIN_CPU_SHARES, int(self.cpus * CPU_SHARES_PER_CPU))

    @property
    def cfs_quota_us(self) -> int | None:
        if self.cpus_cap is None:
            return None
        return max(MIN_CFS_QUOTA_US, int(self.cpus_cap * CFS_PERIOD_US))

    @property
    def mem_bytes(self) -> int | None:
        if self.mem_mb is None:
            return None
        return int(max(self.mem_mb, MIN_MEMORY_MB) * MB)

    def raised_to(self, other: Limits) -> Limits:
        """``other``, except that a memory limit never goes down (Mesos lowers only the
        soft limit: lowering the hard one under the current usage would start the OOM
        killer)."""
        mem = other.mem_mb
        if mem is not None and self.mem_mb is not None:
            mem = max(mem, self.mem_mb)
        elif self.mem_mb is None:
            mem = None
        if mem == other.mem_mb:
            return other
        return Limits(other.cpus, other.cpus_cap, mem, other.disk_mb, other.pids, other.gpus)


@dataclass(frozen=True)
class Limitation:
    """Why a container was stopped: what its unfinished tasks become (TASK_FAILED)."""

    reason: Reason
    message: str


def _limit_value(limits: Any, name: str) -> float | None:
    """A task's ``limits[name]`` as a number (inf for "Infinity"), None when absent."""
    if not isinstance(limits, dict) or name not in limits:
        return None
    value = limits[name]
    if isinstance(value, dict):
        value = value.get("value")
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


EXECUTOR_OVERHEAD_CPUS = 0.1  # Mesos: DEFAULT_EXECUTOR_CPUS, added by the agent
EXECUTOR_OVERHEAD_MEM = 32.0  # MB; Mesos: DEFAULT_EXECUTOR_MEM


def container_limits(
    executor_resources: Resources,
    tasks: Iterable[tuple[Resources, Any]],
    *,
    enable_cfs: bool,
    pids_max: int | None,
    enforce_disk: bool,
) -> Limits:
    """The limits of a container running an executor (``executor_resources``) and
    ``tasks`` (each its resources and its ``limits`` field, or None)."""
    cpus = executor_resources.get("cpus")
    mem = executor_resources.get("mem")
    # An executor that declares no cpus or mem of its own (Mesos's command executor, the
    # functions executor) runs on the agent's overhead, added uncharged as Mesos does.
    overhead_cpus = 0.0 if cpus else EXECUTOR_OVERHEAD_CPUS
    overhead_mem = 0.0 if mem else EXECUTOR_OVERHEAD_MEM
    disk = executor_resources.get("disk")
    gpus = executor_resources.get("gpus")
    cap: float | None = cpus + overhead_cpus
    mem_cap: float | None = mem + overhead_mem
    for resources, task_limits in tasks:
        scalars = resources.scalars  # what Resources.get reads, once per task
        share = scalars.get("cpus", 0.0)
        grant = scalars.get("mem", 0.0)
        cpus += share
        mem += grant
        disk += scalars.get("disk", 0.0)
        gpus += scalars.get("gpus", 0.0)
        if task_limits is not None:
            cpu_limit = _limit_value(task_limits, "cpus")
            mem_limit = _limit_value(task_limits, "mem")
            share = max(share, cpu_limit) if cpu_limit is not None else share
            grant = max(grant, mem_limit) if mem_limit is not None else grant
        cap = None if cap is None or math.isinf(share) else cap + share
        mem_cap = None if mem_cap is None or math.isinf(grant) else mem_cap + grant
    return Limits(
        cpus=cpus,
        cpus_cap=cap if enable_cfs and cap is not None and cap > 0 else None,
        mem_mb=mem_cap if mem_cap is not None and mem_cap > 0 else None,
        disk_mb=disk if enforce_disk and disk > 0 else None,
        pids=pids_max,
        gpus=int(gpus),
    )


def memory_message(limit_bytes: int, peak_bytes: int, stat: str = "") -> str:
    """Mesos's memory limitation message (cgroups/mem isolator, memory.cpp)."""
    text = (f"Memory limit exceeded: Requested: {limit_bytes // MB}MB"
            f" Maximum Used: {peak_bytes // MB}MB")
    if stat:
        text += "\n\nMEMORY STATISTICS: \n" + stat
    return text


def disk_message(used_bytes: int, quota_bytes: int) -> str:
    """Mesos's disk limitation message (posix/disk isolator)."""
    return f"Disk usage ({used_bytes // MB}MB) exceeds quota ({quota_bytes // MB}MB)"
