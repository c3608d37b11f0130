"""The master's event log on disk, for the web UI after the cluster is gone.

With ``--history-dir DIR`` (``MasterConfig.history_dir``, ``Cluster.local(history_dir=...)``)
the master writes the web UI's records (:mod:`.model`: task rows from the
operator events, sampled agents, frameworks, offers, roles, the master's figures and its
log) to ``DIR``, one JSON object per line with the time it was recorded under ``"t"``.

The log is rotated by size. One master run writes the segments
``history-<start time>-<master id>-s<NNNNNN>.jsonl``, ``s000000`` first; once a segment
holds ``--history-max-size`` bytes (default 64 MB; at least twice the model it starts
with) the next one starts, and only the
newest ``--history-max-files`` segments of the run are kept (default 4; older ones are
deleted). Every segment starts with the whole model as it was when the segment began, so
the oldest segment kept replays on its own and the newer ones continue it.

``mesonb ui --history DIR`` serves the latest run read-only: :func:`read_history` reads
its segments in order, across the rotations (a segment cut short by a crash ends there,
and reading goes on with the next one). Files of an older mesonb, with no ``-sNNNNNN``,
are runs of one segment.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .hub import Hub, Source

log = logging.getLogger(__name__)
PATTERN = "history-*.jsonl"
DEFAULT_MAX_SIZE = 64 * 1024 * 1024
DEFAULT_MAX_FILES = 4
SNAPSHOT_ROWS = 5000  # rows per record when a segment starts with the whole model
_SEGMENT = re.compile(r"^(?P<run>history-.+?)(?:-s(?P<seq>\d{6,}))?\.jsonl$")
_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def parse_size(text: str) -> int:
    """Bytes from ``"64MB"``, ``"512KB"``, ``"1GB"``, ``"1048576"`` (binary units, as Mesos's
    ``Bytes``); a ValueError naming the text otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?B?)\s*", text.upper())
    if match is None or match[2] not in _UNITS:
        raise ValueError(f"{text!r} is not a size (e.g. 64MB, 512KB, 1GB)")
    size = int(float(match[1]) * _UNITS[match[2]])
    if size <= 0:
        raise ValueError(f"{text!r}: a size must be more than 0 bytes")
    return size


def _segment_key(path: Path) -> tuple[str, int]:
    """(the run a history file belongs to, its place in that run)."""
    match = _SEGMENT.match(path.name)
    if match is None:
        return path.stem, 0
    return match["run"], int(match["seq"] or 0)


class HistoryRecorder:
    """Appends every record the hub applies to the segments of one run under ``directory``."""

    def __init__(self, directory: str | Path, master_id: str, *,
                 max_size: int = DEFAULT_MAX_SIZE, max_files: int = DEFAULT_MAX_FILES) -> None:
        if max_size <= 0 or max_files < 1:
            raise ValueError("history rotation needs a max size > 0 and at least 1 file kept")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self.run = f"history-{stamp}-{master_id}"
        self.max_size = max_size
        self.max_files = max_files
        self.segment = 0
        self.path = self._segment_path(0)
        self._file: IO[str] | None = None
        self._size = 0
        self._snapshot_size = 0  # bytes of the model the current segment starts with
        self._hub: Hub | None = None

    def _segment_path(self, segment: int) -> Path:
        return self.directory / f"{self.run}-s{segment:06d}.jsonl"

    def attach(self, hub: Hub, source: Source) -> None:
        """Write the model as it is, then each record; keep the source sampling."""
        self._hub = hub
        self._open()
        hub.listeners.append(self.write)
        source.watch()
        log.info("recording the master's history to %s (rotated every %d bytes, %d kept)",
                 self.path, self.max_size, self.max_files)

    def _open(self) -> None:
        """Start the current segment with the whole model."""
        # Line-buffered: what the master did is on disk even if it is killed the next moment.
        self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._size = self.path.stat().st_size
        assert self._hub is not None
        for record in self._hub.model.records():
            rows = record.get("rows")
            if rows is None or len(rows) <= SNAPSHOT_ROWS:
                self._append(record)
                continue
            for start in range(0, len(rows), SNAPSHOT_ROWS):
                self._append({**record, "rows": rows[start:start + SNAPSHOT_ROWS]})
        self._snapshot_size = self._size

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (a hub listener); start a new segment once this one is full."""
        if self._file is None:
            return
        self._append(record)
        # A segment holds at least as many bytes of changes as of the model it starts
        # with: a model bigger than half the max size would otherwise rotate on every record.
        if self._file is not None and self._size >= max(self.max_size, 2 * self._snapshot_size):
            self._rotate()

    def _append(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        line = json.dumps({"t": round(time.time(), 3), **record}, separators=(",", ":"))
        try:
            self._file.write(line + "\n")
        except OSError as exc:
            log.error("cannot write the history to %s: %s; stopping", self.path, exc)
            self.close()
            return
        self._size += len(line) + 1  # ASCII: json.dumps escapes the rest

    def _rotate(self) -> None:
        self.close()
        self.segment += 1
        self.path = self._segment_path(self.segment)
        try:
            self._open()
        except OSError as exc:
            log.error("cannot start the history segment %s: %s; stopping", self.path, exc)
            self.close()
            return
        old = [p for p in history_files(self.directory) if _segment_key(p)[0] == self.run]
        for path in old[:-self.max_files]:
            with contextlib.suppress(OSError):
                path.unlink()
                log.info("history segment %s deleted (%d kept)", path.name, self.max_files)

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            with contextlib.suppress(OSError):
                file.close()


def history_files(directory: str | Path) -> list[Path]:
    """The recorded segments under ``directory``, oldest run first, each run in order."""
    return sorted(Path(directory).glob(PATTERN), key=_segment_key)


def run_files(path: str | Path) -> list[Path]:
    """The segments to replay for ``path``: a file alone, or the latest run of a directory."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    files = history_files(path)
    if not files:
        raise FileNotFoundError(f"no {PATTERN} file in {path}")
    latest = _segment_key(files[-1])[0]
    return [f for f in files if _segment_key(f)[0] == latest]


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The records of one run (one file, or the latest run of a directory, read across its
    rotated segments in order).

    A line cut short (a master killed while writing) ends its segment there."""
    records = []
    for segment in run_files(path):
        with open(segment, encoding="utf-8") as file:
            for number, line in enumerate(file, 1):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    log.warning("%s:%d: cut short; the segment ends there", segment, number)
                    break
    return records
