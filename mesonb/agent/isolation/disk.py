"""``disk/du``: sandbox usage measured as Mesos does, and optionally enforced.

Every ``--container-disk-watch-interval`` (15 s, Mesos's default) each live container's
sandbox is measured like ``du`` (allocated blocks, hard links once), off the event loop.
The result is ``disk_used_bytes`` in ``/monitor/statistics``. With
``--enforce-container-disk-quota`` a sandbox over the container's ``disk`` is a
limitation: REASON_CONTAINER_LIMITATION_DISK, "Disk usage (X) exceeds quota (Y)".
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from mesonb.protocol.states import Reason

from .base import Handle, OnLimitation
from .limits import MB, Limitation, disk_message

log = logging.getLogger(__name__)


def du(path: Path) -> int:
    """Bytes allocated under ``path`` (``du -s``: blocks, each inode once, no symlinks)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [str(path)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total


@dataclass
class Watched:
    handle: Handle
    sandbox: Path
    on_limitation: OnLimitation
    used: int | None = None
    gone: bool = field(default=False)


class DiskWatcher:
    """Measures (and with ``enforce``, limits) the sandboxes of live containers."""

    def __init__(self, interval: float = 15.0, enforce: bool = False) -> None:
        self.interval = interval
        self.enforce = enforce
        self._watched: dict[str, Watched] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, handle: Handle, sandbox: Path, on_limitation: OnLimitation) -> None:
        self._watched[handle.container_id] = Watched(handle, sandbox, on_limitation)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def forget(self, container_id: str) -> None:
        self._watched.pop(container_id, None)

    def used(self, container_id: str) -> int | None:
        """The last measurement of the container's sandbox (bytes), None before the first."""
        watched = self._watched.get(container_id)
        return watched.used if watched else None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._watched:
            for watched in list(self._watched.values()):
                if watched.handle.container_id not in self._watched:
                    continue
                try:
                    watched.used = await loop.run_in_executor(None, du, watched.sandbox)
                except Exception:  # a vanished sandbox and the like: try again later
                    log.debug("cannot measure %s", watched.sandbox, exc_info=True)
                    continue
                self._check(watched)
            await asyncio.sleep(self.interval)

    def _check(self, watched: Watched) -> None:
        quota = watched.handle.limits.disk_mb
        if not self.enforce or quota is None or watched.used is None:
            return
        quota_bytes = int(quota * MB)
        if watched.used > quota_bytes and watched.handle.limited is None:
            log.warning("container %s uses %d MB of disk, over its %d MB",
                        watched.handle.container_id, watched.used // MB, quota_bytes // MB)
            self.forget(watched.handle.container_id)
            watched.handle.limited = limitation = Limitation(
                Reason.REASON_CONTAINER_LIMITATION_DISK, disk_message(watched.used, quota_bytes))
            watched.on_limitation(limitation)

    def close(self) -> None:
        self._watched.clear()
        if self._task is not None:
            self._task.cancel()
