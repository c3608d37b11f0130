"""Sandboxes outlive their executors for a while, then go; logs are rotated meanwhile.

Garbage collection (Mesos's ``--gc_delay``, ``--gc_disk_headroom``, ``--disk_watch_interval``):
a sandbox is removed ``gc_delay`` (a week) after its container ended, and sooner when the
work directory's disk fills up: every ``disk_watch_interval`` (60 s) the age allowed is
``gc_delay x max(0, 1 - headroom - used fraction)``, so a disk over 90 % full (headroom
0.1) prunes every finished sandbox at once. An executor directory whose last run is gone
goes with it.

At start-up (as Mesos's agent does on recovery) what an earlier run of the agent left is
scheduled too (:func:`leftovers`): every run directory whose container is not running any
more, ``gc_delay`` after its mtime (its checkpoint directory under ``meta/`` with it), and
the whole sandbox and ``meta/`` trees of other agent ids (an agent that started afresh), a
full ``gc_delay`` from now (Mesos touches them first). The containerizer destroys the
cgroups those runs left and empties the fetcher cache (Mesos does not recover it either).

Log rotation (as Mesos's logrotate container logger): each live sandbox's ``stdout`` and
``stderr`` (and those of task group members under ``tasks/``) past ``--logrotate-max-size``
are copied to ``stdout.1`` (older copies shifted up to ``--logrotate-max-files``) and
truncated in place: writers append, so the files API keeps reading the live file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .mounts import remove_tree

log = logging.getLogger(__name__)

LOG_NAMES = ("stdout", "stderr")


class SandboxGC:
    """Removes finished sandboxes after ``delay`` seconds (sooner under disk pressure)."""

    def __init__(self, work_dir: Path, delay: float = 7 * 86400.0, headroom: float = 0.1,
                 interval: float = 60.0) -> None:
        self.work_dir = work_dir
        self.delay = delay
        self.headroom = headroom
        self.interval = interval
        self.scheduled: dict[Path, float] = {}  # sandbox -> when its container ended
        self.trees: set[Path] = set()  # scheduled paths removed whole (not run directories)
        self.metas: dict[Path, Path] = {}  # a leftover sandbox -> its run's meta directory
        self.removed = 0  # paths removed so far (Mesos's gc/path_removals_succeeded)
        self._task: asyncio.Task[None] | None = None

    def schedule(self, sandbox: Path, ended: float | None = None, *, tree: bool = False,
                 meta: Path | None = None) -> None:
        """Remove ``sandbox`` (a run directory; any directory with ``tree``) once it is
        old enough, counted from ``ended`` (now by default); ``meta``, its checkpoints,
        goes with it."""
        self.scheduled[sandbox] = time.time() if ended is None else ended
        if tree:
            self.trees.add(sandbox)
        if meta is not None:
            self.metas[sandbox] = meta
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a script, a test): prune() by hand
            return
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def unschedule(self, sandbox: Path) -> None:
        self.scheduled.pop(sandbox, None)
        self.trees.discard(sandbox)
        self.metas.pop(sandbox, None)

    def schedule_leftovers(self, found: Leftovers) -> None:
        """Schedule what an earlier run of the agent left (see :func:`leftovers`)."""
        for run, meta, mtime in found.runs:
            self.schedule(run, mtime, meta=meta)
        now = time.time()
        for tree in found.trees:
            with contextlib.suppress(OSError):
                os.utime(tree)  # Mesos: a full gc_delay from now, whatever its age
            self.schedule(tree, now, tree=True)
        if found.runs or found.trees:
            log.info("scheduled %d sandboxes and %d directories of old agent ids left by an "
                     "earlier run for garbage collection", len(found.runs), len(found.trees))

    def max_age(self) -> float:
        """The age a finished sandbox may reach now, given the disk's fill."""
        try:
            usage = shutil.disk_usage(self.work_dir)
            used = usage.used / usage.total if usage.total else 0.0
        except OSError:
            used = 0.0
        return self.delay * max(0.0, 1.0 - self.headroom - used)

    def prune(self, now: float | None = None) -> list[Path]:
        """Remove every sandbox older than :meth:`max_age`; the ones removed."""
        now = time.time() if now is None else now
        limit = self.max_age()
        removed = []
        for sandbox, ended in sorted(self.scheduled.items(), key=lambda kv: kv[1]):
            if now - ended < limit:
                continue
            self.scheduled.pop(sandbox, None)
            meta = self.metas.pop(sandbox, None)
            if sandbox in self.trees:
                self.trees.discard(sandbox)
                remove_tree(sandbox)
            else:
                remove_run(sandbox)
            if meta is not None:
                remove_meta_run(meta)
            removed.append(sandbox)
            self.removed += 1
        if removed:
            log.info("garbage collected %d sandboxes (allowed age %.0fs)", len(removed), limit)
        return removed

    async def _run(self) -> None:
        while self.scheduled:
            wait = self.interval
            if self.scheduled:  # wake for the oldest one's deadline, at the latest
                oldest = min(self.scheduled.values())
                wait = min(wait, max(0.0, oldest + self.max_age() - time.time()) + 0.01)
            await asyncio.sleep(wait)
            await asyncio.get_running_loop().run_in_executor(None, self.prune)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


def remove_run(sandbox: Path) -> None:
    """Remove a run directory, its ``latest`` link when it points there, and the executor
    directory when no run is left. A persistent volume mounted in it is unmounted first,
    never emptied (:func:`.mounts.remove_tree`)."""
    if not remove_tree(sandbox):
        return
    runs = sandbox.parent
    latest = runs / "latest"
    with contextlib.suppress(OSError):
        if latest.is_symlink() and not latest.exists():
            latest.unlink()
    with contextlib.suppress(OSError):
        if runs.is_dir() and not any(runs.iterdir()):
            runs.rmdir()
            runs.parent.rmdir()


def remove_meta_run(run: Path) -> None:
    """Remove a run's checkpoints under ``meta/``, and its executor's when no run is left
    (recovery then no longer reads the executor)."""
    shutil.rmtree(run, ignore_errors=True)
    runs = run.parent
    with contextlib.suppress(OSError):
        if not any(p.is_dir() and not p.is_symlink() for p in runs.iterdir()):
            shutil.rmtree(runs.parent, ignore_errors=True)


@dataclass
class Leftovers:
    """What an earlier run of the agent left under its work directory."""

    # (sandbox, its meta run, the sandbox's mtime: when its container ended, at the latest)
    runs: list[tuple[Path, Path, float]] = field(default_factory=list)
    trees: list[Path] = field(default_factory=list)  # old agent ids' sandboxes and meta
    # the containers of all those runs (a run directory is named after its container),
    # whose cgroups may be left too
    container_ids: list[str] = field(default_factory=list)


def leftovers(work_dir: Path, agent_id: str | None, live: set[Path]) -> Leftovers:
    """The run directories under ``work_dir``'s sandboxes of ``agent_id`` that are not in
    ``live`` (the sandboxes of containers running now), and the trees of other agent ids.
    Only reads the disk (a thread may run it)."""
    found = Leftovers()
    live = {p.resolve() for p in live}
    sandboxes, meta = work_dir / "slaves", work_dir / "meta" / "slaves"
    for agent_dir in _dirs(sandboxes):
        if agent_dir.name != agent_id:
            found.trees.append(agent_dir)
            found.container_ids += [run.name for run in _runs(agent_dir)]
            continue
        for run in _runs(agent_dir):
            if run.resolve() not in live:
                found.runs.append((run, meta / run.relative_to(sandboxes), _mtime(run)))
                found.container_ids.append(run.name)
    found.trees += [d for d in _dirs(meta) if d.name != agent_id]
    return found


def _dirs(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []


def _runs(agent_dir: Path) -> list[Path]:
    """``<agent_dir>/frameworks/*/executors/*/runs/*`` (not the ``latest`` links)."""
    return [run for framework in _dirs(agent_dir / "frameworks")
            for executor in _dirs(framework / "executors")
            for run in _dirs(executor / "runs")]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def rotate(path: Path, max_size: int, keep: int) -> bool:
    """Copy ``path`` to ``path.1`` (shifting older copies, at most ``keep``) and truncate it
    when it is over ``max_size`` bytes; whether it was rotated."""
    try:
        if path.stat().st_size <= max_size:
            return False
    except OSError:
        return False
    for i in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{i + 1}"))
    shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    with open(path, "r+b") as f:
        f.truncate(0)
    return True


class LogRotator:
    """Rotates the logs of live sandboxes every ``interval`` seconds."""

    def __init__(self, max_size: int, keep: int = 5, interval: float = 2.0) -> None:
        self.max_size = max_size
        self.keep = max(1, keep)
        self.interval = interval
        self.sandboxes: dict[str, Path] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, container_id: str, sandbox: Path) -> None:
        self.sandboxes[container_id] = sandbox
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def forget(self, container_id: str) -> None:
        self.sandboxes.pop(container_id, None)

    def check(self) -> int:
        """One pass over every live sandbox; how many files were rotated."""
        rotated = 0
        for sandbox in list(self.sandboxes.values()):
            for path in self._big_logs(sandbox):
                with contextlib.suppress(OSError):
                    rotated += rotate(path, self.max_size, self.keep)
        return rotated

    def _big_logs(self, directory: Path, depth: int = 0) -> list[Path]:
        """The logs over the limit in a sandbox (and its task group members' under
        ``tasks/``), from one directory listing each: a pass stays cheap with thousands of
        sandboxes."""
        big: list[Path] = []
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return big
        for entry in entries:
            try:
                if entry.name in LOG_NAMES:
                    if entry.stat().st_size > self.max_size:
                        big.append(Path(entry.path))
                elif entry.name == "tasks" and depth == 0 and entry.is_dir():
                    for member in os.scandir(entry.path):
                        big += self._big_logs(Path(member.path), depth + 1)
            except OSError:
                continue
        return big

    async def _run(self) -> None:
        while self.sandboxes:
            await asyncio.sleep(self.interval)
            await asyncio.get_running_loop().run_in_executor(None, self.check)

    def close(self) -> None:
        self.sandboxes.clear()
        if self._task is not None:
            self._task.cancel()
