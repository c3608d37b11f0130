"""Process trees and sizes read from ``/proc``: a process's descendants from the kernel's
per-thread ``children`` lists, or from a full scan of every process's ppid.

``/proc/<pid>/task/<tid>/children`` (Linux, ``CONFIG_PROC_CHILDREN``) names the children
of one thread: walking them costs a directory listing and a read per process of the tree,
where reading every ``/proc/<pid>/stat`` for its ppid costs one open and read per process
of the machine. The functions executor notes its workers' descendants this way while
calls run (a busy machine starts processes all the time, so it looks every
``TREE_SCAN`` seconds). Both ways are a snapshot: a child started or reparented while
they read may be missed until the next look.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal

import psutil


@functools.cache
def available() -> bool:
    """Does this kernel keep the ``children`` lists (checked once, on this process)?"""
    pid = os.getpid()
    return os.path.exists(f"/proc/{pid}/task/{pid}/children")


def children(pid: int) -> list[int]:
    """The children of every thread of ``pid`` (none when it is gone)."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found.extend(int(child) for child in f.read().split())
        except (OSError, ValueError):  # the thread ended meanwhile
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process descending from ``pid`` (see :func:`available`)."""
    found: list[int] = []
    seen = {pid}
    todo = children(pid)
    while todo:
        child = todo.pop()
        if child in seen:  # a pid reused while the lists were read
            continue
        seen.add(child)
        found.append(child)
        todo.extend(children(child))
    return found


# -- the full scan of /proc, and other reads of it -------------------------------------
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_of(pid: int) -> int:
    """Resident bytes of process ``pid`` (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        try:
            return psutil.Process(pid).memory_info().rss
        except psutil.Error:
            return 0


def last_pid() -> bytes:
    """The pid most recently handed out (it moves whenever a process or thread starts)."""
    try:
        with open("/proc/loadavg", "rb") as f:
            return f.read().rsplit(None, 1)[-1]
    except (OSError, IndexError):
        return b""


def all_children() -> dict[int, list[int]]:
    """Every process's children, from each ``/proc/<pid>/stat``'s ppid."""
    children: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return _children_psutil()
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(b")") + 2:].split(None, 2)[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    return children


def _children_psutil() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for proc in psutil.process_iter(["ppid"]):
        children.setdefault(proc.info["ppid"] or 0, []).append(proc.pid)
    return children


def descendants_in(pid: int, children: dict[int, list[int]]) -> list[int]:
    """Every process descending from ``pid`` in ``children`` (:func:`all_children`)."""
    found: list[int] = []
    todo = list(children.get(pid, ()))
    while todo:
        child = todo.pop()
        if child in found:  # a pid reused while /proc was read
            continue
        found.append(child)
        todo.extend(children.get(child, ()))
    return found


def kill_trees(pids: list[int]) -> None:
    """SIGKILL each process of ``pids`` and every process descending from them (a fresh
    look at /proc, so only when killing: a kill or the executor's shutdown)."""
    children = all_children()
    family = [d for pid in pids for d in descendants_in(pid, children)]
    for pid in [*pids, *family]:  # the parents first: they start no more children
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)

