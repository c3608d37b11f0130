"""Persisted partitions on an executor: in memory up to a limit, spilled to the sandbox.

A block is one partition of a persisted dataset, ``(dataset id, partition)``. Its size is
that of its pickle, taken once when it is stored (for pandas frames, their memory). Past
``limit`` bytes in memory, the least recently used blocks are written to ``directory``
and read back from there when asked for; a block alone larger than the limit goes
straight to disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)
Key = tuple[int, int]


class BlockStore:
    """The executor's persisted partitions (see the module docstring)."""

    def __init__(self, directory: str, limit: int) -> None:
        self.directory = directory
        self.limit = limit
        self.memory: OrderedDict[Key, tuple[list[Any], int]] = OrderedDict()
        self.on_disk: dict[Key, int] = {}
        self.used = 0
        self._lock = threading.Lock()

    def _path(self, key: Key) -> str:
        return os.path.join(self.directory, f"{key[0]}-{key[1]}.pickle")

    def __contains__(self, key: Key) -> bool:
        return key in self.memory or key in self.on_disk

    def get(self, key: Key) -> list[Any] | None:
        with self._lock:
            held = self.memory.get(key)
            if held is not None:
                self.memory.move_to_end(key)
                return held[0]
            if key not in self.on_disk:
                return None
        with open(self._path(key), "rb") as f:
            records: list[Any] = pickle.load(f)
        return records

    def put(self, key: Key, records: list[Any]) -> None:
        size = _frames_size(records)
        data = None
        if size is None:
            data = pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL)
            size = len(data)
        with self._lock:
            self._remove(key)
            if size > self.limit:
                self._write(key, data or pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL))
                return
            self.memory[key] = (records, size)
            self.used += size
            while self.used > self.limit and len(self.memory) > 1:
                old, (old_records, old_size) = self.memory.popitem(last=False)
                self.used -= old_size
                self._write(old, pickle.dumps(old_records, protocol=pickle.HIGHEST_PROTOCOL))

    def _write(self, key: Key, data: bytes) -> None:
        os.makedirs(self.directory, exist_ok=True)
        with open(self._path(key), "wb") as f:
            f.write(data)
        self.on_disk[key] = len(data)
        log.debug("block %s spilled to disk (%d bytes)", key, len(data))

    def _remove(self, key: Key) -> None:
        held = self.memory.pop(key, None)
        if held is not None:
            self.used -= held[1]
        if self.on_disk.pop(key, None) is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._path(key))

    def drop(self, keys: Iterable[Key] = (), datasets: Iterable[int] = ()) -> None:
        with self._lock:
            doomed = set(keys)
            wanted = set(datasets)
            if wanted:
                doomed.update(k for k in [*self.memory, *self.on_disk] if k[0] in wanted)
            for key in doomed:
                self._remove(key)

    def close(self) -> None:
        self.memory.clear()
        self.on_disk.clear()
        shutil.rmtree(self.directory, ignore_errors=True)


def _frames_size(records: list[Any]) -> int | None:
    """The memory of a partition of pandas frames (no pickle needed); None otherwise."""
    if not records or not all(hasattr(r, "memory_usage") and hasattr(r, "columns")
                              for r in records):
        return None
    return int(sum(r.memory_usage(index=True, deep=False).sum() for r in records))
