"""The master's event log on disk, for the web UI after the cluster is gone.

With ``--history-dir DIR`` (``MasterConfig.history_dir``, ``Cluster.local(history_dir=...)``)
the master writes the web UI's records (:mod:`.model`: task rows from the
operator events, sampled agents, frameworks, offers, roles, the master's figures and its
log) to ``DIR/history-<start time>-<master id>.jsonl``, one JSON object per line with the
time it was recorded under ``"t"``. The file starts with the whole model as it was when
recording began, so each file replays on its own. ``mesonb ui --history DIR`` serves
the latest one read-only (:func:`read_history`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .hub import Hub, Source

log = logging.getLogger(__name__)
PATTERN = "history-*.jsonl"


class HistoryRecorder:
    """Appends every record the hub applies to a file under ``directory``."""

    def __init__(self, directory: str | Path, master_id: str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self.path = self.directory / f"history-{stamp}-{master_id}.jsonl"
        self._file: IO[str] | None = None

    def attach(self, hub: Hub, source: Source) -> None:
        """Write the model as it is, then each record; keep the source sampling."""
        # Line-buffered: what the master did is on disk even if it is killed the next moment.
        self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        for record in hub.model.records():
            self.write(record)
        hub.listeners.append(self.write)
        source.watch()
        log.info("recording the master's history to %s", self.path)

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        line = json.dumps({"t": round(time.time(), 3), **record}, separators=(",", ":"))
        try:
            self._file.write(line + "\n")
        except OSError as exc:
            log.error("cannot write the history to %s: %s; stopping", self.path, exc)
            self.close()

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            with contextlib.suppress(OSError):
                file.close()


def history_files(directory: str | Path) -> list[Path]:
    """The recorded runs under ``directory``, oldest first."""
    return sorted(Path(directory).glob(PATTERN))


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The records of one run (a file, or the latest file of a directory).

    A line cut short (a master killed while writing) ends the run there."""
    path = Path(path)
    if path.is_dir():
        files = history_files(path)
        if not files:
            raise FileNotFoundError(f"no {PATTERN} file in {path}")
        path = files[-1]
    records = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("%s:%d: cut short; the run ends there", path, number)
                break
    return records
