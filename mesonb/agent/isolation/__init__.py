"""Container isolation: which backend enforces limits on this machine, chosen at start-up.

``--isolation`` takes Mesos's isolator names (docs/mesos-containerizer.md), comma
separated, or ``auto`` (the default):

* ``auto``: cgroups v1 when its hierarchies are mounted and writable (these machines, as
  root), else cgroups v2 when the unified hierarchy has the memory, cpu and pids
  controllers, else the posix monitor; plus ``disk/du``;
* ``cgroups/cpu``, ``cgroups/mem``, ``cgroups/pids``, ``cgroups/devices``,
  ``cgroups/all``: cgroups (v1 or v2, ``--cgroups-version``), start-up fails without them;
* ``posix/cpu``, ``posix/mem``: the psutil-style monitor even where cgroups work;
* ``disk/du``, ``network/ports``, ``gpu/nvidia``, ``filesystem/linux``,
  ``namespaces/pid``: accepted and shown; what each enforces is in the README.

The resolved list is logged and shown as ``flags.isolation`` in the agent's ``/state``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .base import Handle, Isolator, Usage
from .limits import Limitation, Limits

log = logging.getLogger(__name__)

__all__ = ["ContainerizerConfig", "Handle", "Isolator", "Limitation", "Limits", "Usage",
           "choose", "resolve"]

CGROUPS = {"cgroups/cpu", "cgroups/mem", "cgroups/pids", "cgroups/devices", "cgroups/all"}
POSIX = {"posix/cpu", "posix/mem"}
OTHERS = {"disk/du", "network/ports", "gpu/nvidia", "filesystem/linux", "filesystem/posix",
          "namespaces/pid", "posix/rlimits"}


@dataclass
class ContainerizerConfig:
    """The agent's containerizer flags, with Mesos's names (``--cgroups-enable-cfs``...)."""

    isolation: str = "auto"
    cgroups_version: str = "auto"  # "v1", "v2" or "auto"
    cgroups_root: str = "mesonb"
    cgroups_enable_cfs: bool = True  # Mesos's default is false
    container_pids_limit: int | None = 8192
    enforce_container_disk_quota: bool = False
    container_disk_watch_interval: float = 15.0
    fetcher_cache_size: int = 2 * 1024**3  # bytes
    fetcher_cache_dir: str | None = None  # default: <work_dir>/fetch_cache
    fetcher_stall_timeout: float = 60.0
    command_executor: str = "agent"  # "agent": in the agent; "process": python -m ...
    nvidia_gpu_devices: str | None = None  # e.g. "0,2": only these GPUs
    gc_delay: float = 7 * 86400.0  # seconds a finished sandbox is kept (Mesos: 1 week)
    gc_disk_headroom: float = 0.1
    disk_watch_interval: float = 60.0
    logrotate_max_size: int | None = 10 * 1024**2  # stdout/stderr; None: never rotated
    logrotate_max_files: int = 5


def resolve(isolation: str) -> tuple[str, list[str]]:
    """``(kind, extras)``: kind ``auto``, ``cgroups`` or ``posix``; the other isolators.
    ValueError on an unknown name or on cgroups and posix together."""
    names = [n.strip() for n in isolation.split(",") if n.strip()]
    if not names or names == ["auto"]:
        return "auto", ["disk/du"]
    unknown = [n for n in names if n not in CGROUPS | POSIX | OTHERS | {"auto"}]
    if unknown:
        raise ValueError(f"unknown isolator {unknown[0]!r} in --isolation; known: "
                         f"{', '.join(sorted(CGROUPS | POSIX | OTHERS))}")
    cgroups = any(n in CGROUPS for n in names)
    posix = any(n in POSIX for n in names)
    if cgroups and posix:
        raise ValueError("--isolation cannot mix cgroups/* and posix/* isolators")
    kind = "cgroups" if cgroups else "posix" if posix else "auto"
    return kind, [n for n in names if n in OTHERS]


def _cgroups(config: ContainerizerConfig) -> tuple[Isolator | None, list[str]]:
    """The cgroups backend the machine allows, or None with each version's reason."""
    from .cgroups_v1 import CgroupsV1
    from .cgroups_v2 import CgroupsV2

    reasons: list[str] = []
    versions = {"v1": ["v1"], "v2": ["v2"]}.get(config.cgroups_version, ["v1", "v2"])
    for version in versions:
        try:
            if version == "v1":
                return CgroupsV1(config.cgroups_root,
                                 pids=config.container_pids_limit is not None), reasons
            return CgroupsV2(config.cgroups_root), reasons
        except OSError as exc:
            reasons.append(f"{version}: {exc}")
    return None, reasons


def choose(config: ContainerizerConfig) -> tuple[Isolator, list[str]]:
    """The backend for ``config`` and the full isolator list to show; ValueError when the
    isolators asked for cannot run here."""
    from .posix import PosixMonitor

    kind, extras = resolve(config.isolation)
    backend: Isolator | None = None
    if kind in ("auto", "cgroups"):
        backend, reasons = _cgroups(config)
        if backend is None and kind == "cgroups":
            raise ValueError("--isolation asks for cgroups, which cannot be used here: "
                             + "; ".join(reasons))
        if backend is None:
            log.warning("no writable cgroups (%s): limits are enforced by the posix"
                        " monitor", "; ".join(reasons))
    if backend is None:
        backend = PosixMonitor()
    names = backend.isolation() + [n for n in extras if n not in backend.isolation()]
    log.info("isolation: %s (%s)", ",".join(names), backend.name)
    return backend, names
