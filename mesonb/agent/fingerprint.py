"""What this machine offers: resources and attributes, with Mesos's default formulas.

Mesos (src/slave/containerizer/containerizer.cpp:150-206, src/slave/constants.hpp) gives an
agent started without ``--resources``:

* ``cpus``  the logical CPU count;
* ``mem``   total - 1 GB when total ≥ 2 GB, else half (MB);
* ``disk``  the work dir's filesystem size - 5 GB when ≥ 10 GB, else half (MB);
* ``ports`` ``[31000-32000]``.

Names given in ``--resources`` win; the others are filled in from detection, GPUs with
``nvidia-smi`` (:mod:`mesonb.agent.gpus`).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mesonb.protocol.mesos import Attribute
from mesonb.protocol.resources import Resources

log = logging.getLogger(__name__)

MB = 1024 * 1024
GB = 1024 * MB
DEFAULT_PORTS = (31000, 32000)


@dataclass(frozen=True)
class Machine:
    """The raw numbers detection reads (bytes), so the formulas are testable."""

    cpus: int
    mem_bytes: int
    disk_bytes: int
    gpus: int = 0


def default_mem_mb(total_bytes: int) -> float:
    """Mesos: leave 1 GB to the system on machines with at least 2 GB, else half."""
    if total_bytes >= 2 * GB:
        return (total_bytes - GB) / MB
    return total_bytes / 2 / MB


def default_disk_mb(total_bytes: int) -> float:
    """Mesos: leave 5 GB of the work dir's filesystem on disks of at least 10 GB, else half."""
    if total_bytes >= 10 * GB:
        return (total_bytes - 5 * GB) / MB
    return total_bytes / 2 / MB


def default_resources(machine: Machine) -> Resources:
    """The resources Mesos would advertise for ``machine`` with no ``--resources`` flag."""
    scalars = {
        "cpus": float(machine.cpus),
        "mem": float(int(default_mem_mb(machine.mem_bytes))),
        "disk": float(int(default_disk_mb(machine.disk_bytes))),
    }
    if machine.gpus:
        scalars["gpus"] = float(machine.gpus)
    return Resources(scalars, {"ports": [DEFAULT_PORTS]})


def merge_resources(given: Resources | None, detected: Resources) -> Resources:
    """``given`` with every resource name it lacks taken from ``detected``."""
    if given is None:
        return detected
    scalars = dict(given.scalars)
    ranges = {k: list(v) for k, v in given.ranges.items()}
    sets = {k: set(v) for k, v in given.sets.items()}
    named = set(scalars) | set(ranges) | set(sets)
    for name, value in detected.scalars.items():
        if name not in named:
            scalars[name] = value
    for name, rs in detected.ranges.items():
        if name not in named:
            ranges[name] = list(rs)
    for name, items in detected.sets.items():
        if name not in named:
            sets[name] = set(items)
    return Resources(scalars, ranges, sets)


def detect_gpus() -> int:
    """How many NVIDIA GPUs ``nvidia-smi`` lists (:mod:`mesonb.agent.gpus`); 0 without it."""
    from .gpus import detect

    return len(detect())


def detect_machine(work_dir: Path) -> Machine:
    """Read this machine's numbers with psutil (and the work dir's filesystem size)."""
    import psutil

    cpus = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    mem = psutil.virtual_memory().total
    probe = work_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    disk = shutil.disk_usage(probe).total
    return Machine(cpus=cpus, mem_bytes=mem, disk_bytes=disk, gpus=detect_gpus())


def agent_resources(flag: str | None, work_dir: Path, machine: Machine | None = None) -> Resources:
    """The agent's total resources from ``--resources`` (may be None) and detection.

    Raises ValueError on a malformed flag.
    """
    given = Resources.parse(flag) if flag else None
    detected = default_resources(machine or detect_machine(work_dir))
    total = merge_resources(given, detected)
    log.info("agent resources: %s", total)
    return total


def agent_attributes(flag: str | None) -> list[Attribute]:
    """``--attributes "rack:a;zone:1"``; raises ValueError when malformed."""
    return Attribute.parse(flag) if flag else []


def flat_attributes(attributes: list[Attribute]) -> dict[str, object]:
    """The v0 ``/state`` form: ``{"rack": "a", "zone": 1.0}`` (ranges as ``[a-b]``)."""
    out: dict[str, object] = {}
    for attr in attributes:
        value = attr.value()
        if attr.type == "RANGES":
            value = "[" + ", ".join(f"{b}-{e}" for b, e in value) + "]"
        elif attr.type == "SET":
            value = "{" + ",".join(value) + "}"
        out[attr.name] = value
    return out
