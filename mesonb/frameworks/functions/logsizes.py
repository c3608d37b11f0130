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

_open_files: dict[str, int] = {}  # path -> a read-only descriptor of it


def file_size(path: str) -> int:
    """The size of the file at ``path``; 0 when there is none (or it cannot be read)."""
    fd = _open_files.get(path)
    if fd is None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return 0
        while len(_open_files) >= KEPT_OPEN:
            forget(next(iter(_open_files)))
        _open_files[path] = fd
    try:
        return os.fstat(fd).st_size
    except OSError:
        forget(path)
        return 0


def forget(path: str) -> None:
    """Close the descriptor kept for ``path``, if any."""
    fd = _open_files.pop(path, None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
