"""A process's descendants from the kernel's per-thread ``children`` lists.

``/proc/<pid>/task/<tid>/children`` (Linux, ``CONFIG_PROC_CHILDREN``) names the children
of one thread: walking them costs a directory listing and a read per process of the tree,
where reading every ``/proc/<pid>/stat`` for its ppid costs one open and read per process
of the machine. The functions executor notes its workers' descendants this way while
calls run (a busy machine starts processes all the time, so it looks every
``TREE_SCAN`` seconds). Both ways are a snapshot: a child started or reparented while
they read may be missed until the next look.
"""

from __future__ import annotations

import functools
import os


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
