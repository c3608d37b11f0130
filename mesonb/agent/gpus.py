"""NVIDIA GPUs: found with ``nvidia-smi``, handed to containers one device at a time.

Detection runs ``nvidia-smi --query-gpu=index,minor_number,uuid,name --format=csv,noheader``
(the first ``nvidia-smi`` on ``PATH``, or ``$MESONB_NVIDIA_SMI``), so a fake one on
``PATH`` makes an agent with GPUs on any machine. ``--nvidia-gpu-devices 0,2`` (Mesos's
``--nvidia_gpu_devices``) keeps only those indices. The agent offers ``gpus`` = the count
(``--resources gpus:N`` still wins).

A container asking for ``gpus: N`` (whole numbers only, as in Mesos) gets N free devices:
``CUDA_VISIBLE_DEVICES``/``NVIDIA_VISIBLE_DEVICES`` name them for its processes and, under
cgroups v1, its ``devices`` cgroup lets it open only those ``/dev/nvidia<minor>`` (plus the
control devices). The devices come back when the container is destroyed.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

NVIDIA_MAJOR = 195
CONTROL_MINORS = (254, 255)  # nvidia-modeset, nvidiactl
QUERY = ["--query-gpu=index,minor_number,uuid,name", "--format=csv,noheader"]


@dataclass(frozen=True)
class Gpu:
    index: int
    minor: int
    uuid: str
    name: str


def detect(only: str | None = None) -> list[Gpu]:
    """This machine's NVIDIA GPUs (none when ``nvidia-smi`` is missing or fails)."""
    tool = os.environ.get("MESONB_NVIDIA_SMI") or shutil.which("nvidia-smi")
    if not tool:
        return []
    try:
        out = subprocess.run([tool, *QUERY], capture_output=True, text=True, timeout=10,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("nvidia-smi failed (%s): no GPUs detected", exc)
        return []
    gpus = []
    for line in out.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 4 and fields[0].isdigit() and fields[1].isdigit():
            gpus.append(Gpu(int(fields[0]), int(fields[1]), fields[2], ", ".join(fields[3:])))
    if only:
        wanted = {int(i) for i in only.split(",") if i.strip().isdigit()}
        gpus = [g for g in gpus if g.index in wanted]
    if gpus:
        log.info("GPUs: %s", ", ".join(f"{g.index}: {g.name}" for g in gpus))
    return gpus


def invalid_gpus(value: float) -> str | None:
    """Mesos: ``gpus`` must be a whole number."""
    if value != int(value):
        return f"The 'gpus' resource must be an unsigned integer, not {value:g}"
    return None


class GpuAllocator:
    """Which container holds which devices."""

    def __init__(self, gpus: list[Gpu]) -> None:
        self.gpus = gpus
        self.held: dict[str, list[Gpu]] = {}

    def allocate(self, container_id: str, count: int) -> list[Gpu]:
        """``count`` free devices for the container; ValueError when there are not enough."""
        if count <= 0:
            return []
        busy = {g.index for held in self.held.values() for g in held}
        free = [g for g in self.gpus if g.index not in busy]
        if len(free) < count:
            raise ValueError(f"asked for {count} GPUs, {len(free)} of {len(self.gpus)} free")
        self.held[container_id] = free[:count]
        return free[:count]

    def release(self, container_id: str) -> None:
        self.held.pop(container_id, None)


def visible_env(gpus: list[Gpu]) -> dict[str, str]:
    indices = ",".join(str(g.index) for g in gpus)
    return {"CUDA_VISIBLE_DEVICES": indices, "NVIDIA_VISIBLE_DEVICES": indices}


# Mesos's default device whitelist (cgroups/devices isolator): mknod anything, and use
# null, zero, full, random, urandom, the ttys, pts, ptmx and tun.
DEFAULT_ALLOWED = ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm",
                   "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm",
                   "c 4:0 rwm", "c 4:1 rwm", "c 136:* rwm", "c 10:200 rwm"]


def device_rules(gpus: list[Gpu]) -> tuple[list[str], list[str]]:
    """``(deny, allow)`` lines for a v1 ``devices`` cgroup: everything denied, then Mesos's
    default whitelist and these GPUs (with the NVIDIA control devices) allowed."""
    allow = DEFAULT_ALLOWED + [f"c {NVIDIA_MAJOR}:{g.minor} rwm" for g in gpus]
    allow += [f"c {NVIDIA_MAJOR}:{m} rwm" for m in CONTROL_MINORS]
    return ["a"], allow
