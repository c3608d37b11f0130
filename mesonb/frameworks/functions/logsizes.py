"""Sizes of the workers' log files, read through descriptors kept open.

The functions executor reads the size of a worker's stdout and stderr files when a call
starts and when it ends: where the call's output is (:class:`~.protocol.LogSlice`).
``os.stat`` of the path walks the whole sandbox path each time (~2.5 us for the dozen
directories of an agent's sandbox, four times a call); ``os.fstat`` of a descriptor
kept open does not. A file not there yet reads as size 0 and is opened once it exists.
At most :data:`KEPT_OPEN` files stay open, the oldest opened closed first (a worker's
files change only when they grow past their rotation size).
"""

from __future__ import annotations

import contextlib
import os

KEPT_OPEN = 64

# path -> a read-only descriptor of it, and the (device, inode) it was opened on
_open_files: dict[str, tuple[int, int, int]] = {}


def file_size(path: str) -> int:
    """The size of the file at ``path``; 0 when there is none (or it cannot be read).

    A descriptor that no longer reads that file (closed, or its number reused for
    another file, by code running in a worker) is dropped and the path opened again."""
    kept = _open_files.get(path)
    if kept is not None:
        try:
            st = os.fstat(kept[0])
            if st.st_ino == kept[2] and st.st_dev == kept[1]:
                return st.st_size
        except OSError:
            pass
        del _open_files[path]  # not closed: the number may be another file's now
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return 0
    while len(_open_files) >= KEPT_OPEN:
        forget(next(iter(_open_files)))
    _open_files[path] = (fd, st.st_dev, st.st_ino)
    return st.st_size


def forget_all(close: bool = True) -> None:
    """Forget every descriptor kept; ``close=False`` where they are closed already (a
    forked worker, which closed what it inherited)."""
    while _open_files:
        path = next(iter(_open_files))
        if close:
            forget(path)
        else:
            del _open_files[path]


def forget(path: str) -> None:
    """Close the descriptor kept for ``path``, if any."""
    kept = _open_files.pop(path, None)
    if kept is not None:
        with contextlib.suppress(OSError):
            os.close(kept[0])
