"""Memory of a process that is not its own: pages of a mesonb client's shared-memory
files that a process keeps mapped to write into (see
:mod:`mesonb.frameworks.functions.shm_pool`). Those pages are the client's (made by it,
charged to its memory cgroup); a process that maps them shows them in its resident size,
so a memory check that sums resident sizes (a worker's ``mem``, the posix isolator's
containers) takes them out before it concludes a process is over its limit. Imports
nothing of mesonb: the agent and the frameworks both use it.
"""

from __future__ import annotations

KEPT_PREFIX = b"/dev/shm/mesonb-"  # where clients' shared-memory files live


def kept_shm_rss(pid: int, proc: str = "/proc") -> int:
    """Resident bytes of process ``pid`` in shared, writable mappings of files under a
    client's directory in ``/dev/shm`` (a copy-on-write mapping of one, an argument a
    call reads, counts as the process's own as before). From ``/proc/<pid>/smaps``, a walk
    of its page tables: read it only when a check fails on the cheap figure. 0 when
    unreadable (the process is gone)."""
    try:
        with open(f"{proc}/{pid}/smaps", "rb") as f:
            text = f.read()
    except OSError:
        return 0
    total, counting = 0, False
    for line in text.splitlines():
        fields = line.split(None, 5)
        if len(fields) >= 5 and b"-" in fields[0] and not fields[0].endswith(b":"):
            counting = (fields[1] == b"rw-s" and len(fields) == 6
                        and fields[5].startswith(KEPT_PREFIX))
        elif counting and len(fields) >= 2 and fields[0] == b"Rss:":
            total += int(fields[1]) * 1024
    return total
