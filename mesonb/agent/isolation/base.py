"""What every isolation backend does for a container (cgroups v1, cgroups v2, posix).

A backend is chosen once, when the agent starts (:func:`mesonb.agent.isolation.choose`).
For each container the containerizer calls, in order:

1. :meth:`Isolator.prepare` with the container's :class:`~.limits.Limits` (cgroups made
   and limited before anything runs in them);
2. :meth:`Isolator.wrap` to get the command that starts the container's first process
   *already inside* it (a ``/bin/sh`` that writes its own pid into the cgroups and then
   ``exec``s the real command: no ``preexec_fn``, no race with its first ``fork``); when a
   backend cannot, :meth:`Isolator.join` moves the process right after the spawn;
3. :meth:`Isolator.watch` with a callback that receives a :class:`~.limits.Limitation`
   when the container goes over a limit (the callback destroys it);
4. :meth:`Isolator.update` whenever tasks come or go (limits follow the resources);
5. :meth:`Isolator.usage` for ``/monitor/statistics``;
6. :meth:`Isolator.destroy`: every process killed, the cgroups removed.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .limits import Limitation, Limits

OnLimitation = Callable[[Limitation], None]


class UpdateFailed(Exception):
    """A running container's new limits could not be applied (the kernel refused a cgroup
    write): Mesos fails the tasks that needed them with REASON_CONTAINER_UPDATE_FAILED
    and destroys the container."""


@dataclass
class Handle:
    """One container as its backend knows it."""

    container_id: str
    limits: Limits
    pid: int | None = None  # the container's first process (a session leader)
    peak_rss: int = 0
    on_limitation: OnLimitation | None = field(default=None, repr=False)
    limited: Limitation | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Usage:
    """A container's measured usage, in Mesos's ``ResourceStatistics`` names."""

    cpus_user_time_secs: float = 0.0
    cpus_system_time_secs: float = 0.0
    mem_rss_bytes: int = 0
    mem_total_bytes: int | None = None
    mem_cache_bytes: int | None = None
    mem_max_bytes: int | None = None  # the peak
    cpus_nr_periods: int | None = None
    cpus_nr_throttled: int | None = None
    cpus_throttled_time_secs: float | None = None
    processes: int | None = None
    threads: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class Isolator(abc.ABC):
    """An isolation backend."""

    #: how the agent reports it: "cgroups v1", "cgroups v2" or "posix"
    name: str = ""

    @abc.abstractmethod
    def isolation(self) -> list[str]:
        """Mesos's isolator names for what this backend enforces (``flags.isolation``)."""

    @abc.abstractmethod
    def prepare(self, container_id: str, limits: Limits) -> Handle:
        """Make the container's isolation before its first process starts; OSError when
        it cannot be made."""

    def wrap(self, handle: Handle, argv: list[str], executable: str | None
             ) -> tuple[list[str], str | None, bool]:
        """``(argv, executable, joined)``: the command that starts inside the container;
        ``joined`` False when :meth:`join` must move the process after the spawn."""
        return argv, executable, True

    def procs_file(self, handle: Handle) -> str | None:
        """A file listing the container's processes (a cgroup's), if the backend has one."""
        return None

    def restrict_devices(self, handle: Handle, deny: list[str], allow: list[str]) -> bool:
        """Let the container open only the ``allow``ed of the ``deny``ed devices (cgroup
        ``devices`` rules); False where the backend cannot."""
        return False

    def join(self, handle: Handle, pid: int) -> None:  # noqa: B027 - optional hook
        """Move ``pid`` into the container (when :meth:`wrap` could not)."""

    def adopt(self, container_id: str, pid: int) -> Handle | None:
        """The isolation an earlier agent run made for a container still running (None
        when there is none to take back)."""
        return None

    @abc.abstractmethod
    def watch(self, handle: Handle, pid: int, on_limitation: OnLimitation) -> None:
        """Start enforcing: call ``on_limitation`` once when a limit is passed."""

    @abc.abstractmethod
    def update(self, handle: Handle, limits: Limits) -> None:
        """Apply new limits (memory limits only ever rise); :class:`UpdateFailed` when the
        kernel refuses them."""

    @abc.abstractmethod
    def usage(self, handle: Handle) -> Usage:
        """What the container uses now."""

    @abc.abstractmethod
    async def destroy(self, handle: Handle) -> None:
        """Kill every process of the container and remove its isolation."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """The agent stops: stop any background work."""

    def limit(self, handle: Handle, limitation: Limitation) -> None:
        """Report ``limitation`` once (the first one wins)."""
        if handle.limited is not None:
            return
        handle.limited = limitation
        if handle.on_limitation is not None:
            handle.on_limitation(limitation)
