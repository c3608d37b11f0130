"""``network/ports``: a container listening on a port it was not given is killed.

As Mesos's ``network/ports`` isolator: every :data:`INTERVAL` seconds the TCP sockets in
LISTEN state (``/proc/net/tcp`` and ``tcp6``) are matched to the processes of each
watched container through their file descriptors; a listening port inside the agent's
``ports`` resource that is not among the container's own ``ports`` is a limitation
(REASON_CONTAINER_LIMITATION, "Container is listening on port N, which it was not
given"). Ports outside the agent's range (ephemeral ones, say) are not checked.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from mesonb.protocol.states import Reason

from .base import Handle, OnLimitation
from .limits import Limitation

log = logging.getLogger(__name__)

INTERVAL = 0.5
LISTEN = "0A"


def listening() -> dict[int, int]:
    """Socket inode → port of every TCP socket in LISTEN state on this machine."""
    out: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 9 and fields[3] == LISTEN:
                        out[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
        except (OSError, ValueError):
            continue
    return out


def socket_inodes(pid: int) -> set[int]:
    """The socket inodes process ``pid`` holds open."""
    inodes: set[int] = set()
    base = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(base)
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"{base}/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


@dataclass
class Watched:
    handle: Handle
    pids: Callable[[], list[int]]
    allowed: Callable[[], set[int]]
    on_limitation: OnLimitation


class PortsWatcher:
    """Kills containers that listen on agent ports they were not given."""

    def __init__(self, agent_ports: Callable[[], list[tuple[int, int]]],
                 interval: float = INTERVAL) -> None:
        self.agent_ports = agent_ports
        self.interval = interval
        self._watched: dict[str, Watched] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, handle: Handle, pids: Callable[[], list[int]],
              allowed: Callable[[], set[int]], on_limitation: OnLimitation) -> None:
        self._watched[handle.container_id] = Watched(handle, pids, allowed, on_limitation)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def forget(self, container_id: str) -> None:
        self._watched.pop(container_id, None)

    async def _run(self) -> None:
        while self._watched:
            await asyncio.sleep(self.interval)
            try:
                self.check()
            except Exception:
                log.exception("the ports check failed a pass")

    def check(self) -> None:
        """One pass over every watched container."""
        ranges = self.agent_ports()
        sockets = listening()
        if not sockets:
            return
        for watched in list(self._watched.values()):
            ports = {sockets[i] for pid in watched.pids() for i in socket_inodes(pid)
                     if i in sockets}
            isolated = {p for p in ports if any(b <= p <= e for b, e in ranges)}
            bad = sorted(isolated - watched.allowed())
            if bad and watched.handle.limited is None:
                self.forget(watched.handle.container_id)
                message = (f"Container is listening on port {bad[0]}, which it was not"
                           " given (network/ports)")
                log.warning("container %s: %s", watched.handle.container_id, message)
                watched.handle.limited = limitation = Limitation(
                    Reason.REASON_CONTAINER_LIMITATION, message)
                watched.on_limitation(limitation)

    def close(self) -> None:
        self._watched.clear()
        if self._task is not None:
            self._task.cancel()
