"""What the web UI shows, as keyed tables of small rows, and the changes to them.

The master side (:mod:`mesonb.master.http.ui_feed`) turns the master's events and samples
into *records*; this model applies them; a browser gets :meth:`UiModel.snapshot` once
and then the deltas :meth:`UiModel.take_delta` collects. A recorded history
(:mod:`.history`) is the same records on disk, so a replay builds the very
same model and the same pages serve it.

Records (plain JSON objects)::

    {"type": "ROWS", "table": "agents", "rows": [{...}, ...], "removed": ["key", ...]}
    {"type": "MASTER", "master": {...}}            # cluster name, leader, times, ...
    {"type": "LOG", "lines": ["...", ...]}          # the master's log, newest last

Tables and their keys: ``tasks`` (rows are lists in :data:`TASK_COLUMNS` order, keyed
``"<framework_id> <task_id>"``), ``agents``, ``frameworks``, ``offers``, ``roles``
(dicts keyed by ``id``; roles by ``name``). A row in ``rows`` replaces the row of the
same key; keys in ``removed`` disappear.

>>> m = UiModel()
>>> m.apply({"type": "ROWS", "table": "agents", "rows": [{"id": "a1", "state": "ACTIVE"}]})
>>> m.take_delta()["tables"]["agents"]["rows"][0]["state"]
'ACTIVE'
>>> m.take_delta() is None
True
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

TASK_COLUMNS = ("id", "name", "state", "framework_id", "agent_id", "executor_id", "started",
                "stopped", "reason", "message", "cpus", "mem", "disk", "gpus", "source")
"""The fields of a task row, in order (a task row is a list, to keep 100,000 of them small)."""
TASK_INDEX = {name: i for i, name in enumerate(TASK_COLUMNS)}
TABLES = ("tasks", "agents", "frameworks", "offers", "roles")
LOG_LINES = 500


def task_key(framework_id: str, task_id: str) -> str:
    return f"{framework_id} {task_id}"


def row_key(table: str, row: Any) -> str:
    """The key of a row of ``table``."""
    if table == "tasks":
        return task_key(row[TASK_INDEX["framework_id"]], row[TASK_INDEX["id"]])
    if table == "roles":
        return str(row["name"])
    return str(row["id"])


class Table:
    """Rows by key, with what changed since the last delta."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: dict[str, Any] = {}
        self.changed: set[str] = set()
        self.removed: set[str] = set()

    def put(self, row: Any) -> None:
        key = row_key(self.name, row)
        self.rows[key] = row
        self.changed.add(key)
        self.removed.discard(key)

    def remove(self, key: str) -> None:
        if self.rows.pop(key, None) is not None:
            self.removed.add(key)
        self.changed.discard(key)

    def forget(self) -> None:
        """Drop every row without telling anyone (a source that stops following it)."""
        self.rows.clear()
        self.changed.clear()
        self.removed.clear()

    def take(self) -> dict[str, Any] | None:
        if not self.changed and not self.removed:
            return None
        out: dict[str, Any] = {"rows": [self.rows[k] for k in self.changed if k in self.rows]}
        if self.removed:
            out["removed"] = sorted(self.removed)
        self.changed, self.removed = set(), set()
        return out


class UiModel:
    """Everything the pages show; applies records, hands out snapshots and deltas."""

    def __init__(self) -> None:
        self.tables = {name: Table(name) for name in TABLES}
        self.master: dict[str, Any] = {}
        self.log: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        self._master_changed = False
        self._new_log: list[str] = []
        self.version = 0  # bumped by every record applied

    def apply(self, record: dict[str, Any]) -> None:
        """Apply one record (see the module docstring); unknown types are ignored."""
        kind = record.get("type")
        if kind == "ROWS":
            table = self.tables.get(record.get("table", ""))
            if table is None:
                return
            for row in record.get("rows") or ():
                table.put(row)
            for key in record.get("removed") or ():
                table.remove(key)
        elif kind == "MASTER":
            self.master.update(record.get("master") or {})
            self._master_changed = True
        elif kind == "LOG":
            lines = list(record.get("lines") or ())
            self.log.extend(lines)
            self._new_log.extend(lines)
            del self._new_log[:-LOG_LINES]
        else:
            return
        self.version += 1

    def apply_all(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.apply(record)

    def snapshot(self) -> dict[str, Any]:
        """The whole model: what a page renders first."""
        return {
            "type": "snapshot",
            "task_columns": TASK_COLUMNS,
            "master": self.master,
            "log": list(self.log),
            "tables": {name: list(t.rows.values()) for name, t in self.tables.items()},
        }

    def records(self) -> list[dict[str, Any]]:
        """The model as records (a history file starts with these)."""
        out: list[dict[str, Any]] = [{"type": "MASTER", "master": self.master}]
        if self.log:
            out.append({"type": "LOG", "lines": list(self.log)})
        out += [{"type": "ROWS", "table": name, "rows": list(t.rows.values())}
                for name, t in self.tables.items() if t.rows]
        return out

    def take_delta(self) -> dict[str, Any] | None:
        """What changed since the last call (None when nothing did)."""
        tables = {}
        for name, table in self.tables.items():
            changes = table.take()
            if changes is not None:
                tables[name] = changes
        out: dict[str, Any] = {"type": "delta"}
        if tables:
            out["tables"] = tables
        if self._master_changed:
            out["master"] = self.master
            self._master_changed = False
        if self._new_log:
            out["log"], self._new_log = self._new_log, []
        return out if len(out) > 1 else None
