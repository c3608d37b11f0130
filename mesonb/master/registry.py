"""The registry: what a new leading master needs to know that agents cannot tell it.

As in Mesos (src/master/registry.proto) it holds the admitted, unreachable and gone
agents; beyond Mesos it also holds each framework's FrameworkInfo, so a new leader knows
frameworks whose schedulers have not re-subscribed yet. Tasks and offers are not stored:
agents report their tasks when they re-register.

One record per agent or framework, as small JSON, in a store:

* :class:`MemoryStore` (``--registry in_memory``, tests);
* :class:`DirectoryStore` (``--registry local``): ``<work_dir>/registry/<kind>/<id>.json``,
  each written atomically (temp file + rename);
* :class:`ZooKeeperStore` (``--registry zk``): znodes ``<path>-registry/<kind>/<id>``, a
  sibling of the election path, never under it (pymesos takes the lowest child of the
  election path as the leader). Each write is a transaction that first checks that this
  master's election znode still exists, so a deposed leader cannot overwrite the registry.

Stores are synchronous; :class:`Registry` runs every store call on one worker thread, so
writes keep their order and never block the IOLoop. Each write returns a
``concurrent.futures.Future`` (awaiting code wraps it with ``asyncio.wrap_future``), or
None when the store already holds that record; a write counts only once it succeeded.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import os
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

AGENTS, FRAMEWORKS = "agents", "frameworks"
SETTINGS = "settings"  # operator settings by name: weights, quota, maintenance (settings.py)
KINDS = (AGENTS, FRAMEWORKS, SETTINGS)


def _loaded() -> Records:
    """What ``load()`` starts from: agents and frameworks always, settings when held."""
    return {AGENTS: {}, FRAMEWORKS: {}}
ADMITTED, UNREACHABLE, GONE = "admitted", "unreachable", "gone"
Record = dict[str, Any]
Records = dict[str, dict[str, Record]]  # kind -> id -> record


class RegistryStore(Protocol):
    def load(self) -> Records: ...
    def put(self, kind: str, key: str, record: Record) -> None: ...
    def delete(self, kind: str, key: str) -> None: ...
    def close(self) -> None: ...


def _name(key: str) -> str:
    """A file or znode name for an id (ids come from agents; never let one escape a folder)."""
    name = urllib.parse.quote(key, safe="-_")
    return name if name not in ("", ".", "..") else f"%{name}"


def _key(name: str) -> str:
    return urllib.parse.unquote(name)


def _encode(record: Record) -> bytes:
    return json.dumps(record, separators=(",", ":"), sort_keys=True).encode()


class MemoryStore:
    """Records in a dict (shared between masters in one process if you pass the same one)."""

    def __init__(self) -> None:
        self.records: Records = {kind: {} for kind in KINDS}

    def load(self) -> Records:
        return {kind: dict(items) for kind, items in self.records.items()
                if items or kind != SETTINGS}

    def put(self, kind: str, key: str, record: Record) -> None:
        self.records[kind][key] = json.loads(_encode(record))

    def delete(self, kind: str, key: str) -> None:
        self.records[kind].pop(key, None)

    def close(self) -> None:
        pass


class DirectoryStore:
    """One JSON file per record under ``directory/<kind>/``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def load(self) -> Records:
        records = _loaded()
        for kind in KINDS:
            folder = self.directory / kind
            if not folder.is_dir():
                continue
            for path in folder.glob("*.json"):
                try:
                    records.setdefault(kind, {})[_key(path.stem)] = json.loads(path.read_bytes())
                except (OSError, ValueError) as exc:
                    log.warning("registry: skipping unreadable %s: %s", path, exc)
        return records

    def put(self, kind: str, key: str, record: Record) -> None:
        folder = self.directory / kind
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_encode(record))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, folder / f"{_name(key)}.json")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def delete(self, kind: str, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.directory / kind / f"{_name(key)}.json").unlink()

    def close(self) -> None:
        pass


class ZooKeeperStore:
    """One znode per record under ``path/<kind>/``; writes fenced by ``fence()`` (a znode
    path that must exist: this master's election znode), when given."""

    def __init__(self, client: Any, path: str, fence: Callable[[], str | None] | None = None):
        self.client = client
        self.path = path.rstrip("/") or "/"
        self.fence = fence

    def load(self) -> Records:
        """Every record. The reads go out together (kazoo pipelines them on its one
        connection), so a new leader pays about one round trip per kind, not one per
        agent: this is on the failover's critical path."""
        from kazoo.exceptions import NoNodeError

        records = _loaded()
        listings = {kind: self.client.get_children_async(f"{self.path}/{kind}")
                    for kind in KINDS}
        reads = []
        for kind, listing in listings.items():
            try:
                names = listing.get()
            except NoNodeError:
                continue
            reads += [(kind, name, self.client.get_async(f"{self.path}/{kind}/{name}"))
                      for name in names]
        for kind, name, read in reads:
            try:
                data, _ = read.get()
                records.setdefault(kind, {})[_key(name)] = json.loads(data)
            except NoNodeError:
                continue  # removed since the listing
            except ValueError as exc:
                log.warning("registry: skipping unreadable znode %s/%s/%s: %s", self.path,
                            kind, name, exc)
        return records

    def _commit(self, build: Callable[[Any], None]) -> None:
        from kazoo.exceptions import KazooException, NoNodeError

        transaction = self.client.transaction()
        if self.fence is not None:
            fence = self.fence()
            if not fence:  # not contending (yet, or any more): never write unfenced
                raise NoNodeError("registry write refused: this master has no election znode")
            transaction.check(fence, 0)
        build(transaction)
        results = transaction.commit()
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            error = next((r for r in failed if type(r).__name__ != "RolledBackError"), failed[0])
            raise error if isinstance(error, KazooException) else RuntimeError(str(error))

    def put(self, kind: str, key: str, record: Record) -> None:
        from kazoo.exceptions import NoNodeError

        node = f"{self.path}/{kind}/{_name(key)}"
        data = _encode(record)
        self.client.ensure_path(f"{self.path}/{kind}")
        if self.client.exists(node):
            self._commit(lambda t: t.set_data(node, data))
        else:
            try:
                self._commit(lambda t: t.create(node, data))
            except NoNodeError:
                raise  # the fence (our election znode) is gone: we no longer lead
            except Exception as exc:
                if type(exc).__name__ != "NodeExistsError":
                    raise
                self._commit(lambda t: t.set_data(node, data))

    def delete(self, kind: str, key: str) -> None:
        node = f"{self.path}/{kind}/{_name(key)}"
        if self.client.exists(node):
            self._commit(lambda t: t.delete(node))

    def close(self) -> None:
        pass


@dataclasses.dataclass
class RegistryState:
    """What a new leader recovers."""

    admitted: dict[str, Record]  # agent id -> AgentInfo JSON
    unreachable: dict[str, tuple[Record, float]]  # agent id -> (AgentInfo JSON, time)
    gone: dict[str, float]  # agent id -> time
    frameworks: dict[str, Record]  # framework id -> FrameworkInfo JSON
    settings: dict[str, Record] = dataclasses.field(default_factory=dict)  # name -> record


class Registry:
    """Ordered, asynchronous writes of registry records.

    It remembers what the store holds (read at :meth:`recover`, updated only once a write
    has succeeded), so that writing a record the store already holds is free: that returns
    None. Writing the record that is still being written returns that write's future; a
    write that failed is forgotten, so writing the same record again writes it again.
    """

    def __init__(self, store: RegistryStore) -> None:
        self.store = store
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="registry")
        self._lock = threading.Lock()
        self._written: Records = {kind: {} for kind in KINDS}  # what the store holds
        # kind -> id -> the latest write submitted and not finished: [record or None, future]
        self._pending: dict[str, dict[str, list[Any]]] = {kind: {} for kind in KINDS}
        # Mesos's registrar timers (ms): the recovery's read, and each write to the store
        self.fetch_ms: float | None = None
        self.store_ms: collections.deque[float] = collections.deque(maxlen=1000)

    @property
    def queued(self) -> int:
        """Writes submitted and not finished (``registrar/queued_operations``)."""
        return sum(len(pending) for pending in self._pending.values())

    # -- reading -------------------------------------------------------------------
    def recover(self) -> concurrent.futures.Future[RegistryState]:
        return self._worker.submit(self._recover)

    def _recover(self) -> RegistryState:
        started = time.monotonic()
        records = self.store.load()
        self.fetch_ms = (time.monotonic() - started) * 1000
        with self._lock:
            self._written = {kind: dict(records.get(kind, {})) for kind in KINDS}
            known = {kind: dict(items) for kind, items in self._written.items()}
        state = RegistryState({}, {}, {}, {})
        for agent_id, record in known[AGENTS].items():
            status, info, when = record.get("state"), record.get("info") or {}, record.get("time")
            if status == GONE:
                state.gone[agent_id] = float(when or 0.0)
            elif status == UNREACHABLE:
                state.unreachable[agent_id] = (info, float(when or 0.0))
            else:
                state.admitted[agent_id] = info
        for framework_id, record in known[FRAMEWORKS].items():
            state.frameworks[framework_id] = record.get("info") or {}
        state.settings = dict(known[SETTINGS])
        return state

    # -- writing -------------------------------------------------------------------
    def _write(self, kind: str, key: str, record: Record | None) -> Any:
        """Submit a put (a delete when ``record`` is None) unless the store holds it already
        (None) or it is being written (that write's future)."""
        with self._lock:
            pending = self._pending[kind].get(key)
            if pending is not None:
                if pending[0] == record:
                    return pending[1]
            elif self._written[kind].get(key) == record:
                return None
            entry: list[Any] = [record, None]
            entry[1] = self._worker.submit(self._store_write, kind, key, entry)
            self._pending[kind][key] = entry
            return entry[1]

    def _store_write(self, kind: str, key: str, entry: list[Any]) -> None:
        """On the worker: write, and only once that succeeded count it as written."""
        record = entry[0]
        started = time.monotonic()
        try:
            if record is None:
                self.store.delete(kind, key)
            else:
                self.store.put(kind, key, record)
            self.store_ms.append((time.monotonic() - started) * 1000)
        except BaseException:
            with self._lock:
                if self._pending[kind].get(key) is entry:
                    del self._pending[kind][key]
            raise
        with self._lock:
            if record is None:
                self._written[kind].pop(key, None)
            else:
                self._written[kind][key] = record
            if self._pending[kind].get(key) is entry:
                del self._pending[kind][key]

    def admit_agent(self, agent_id: str, info: Record) -> concurrent.futures.Future[None] | None:
        return self._write(AGENTS, agent_id, {"state": ADMITTED, "info": info})

    def mark_unreachable(self, agent_id: str, info: Record, when: float) -> Any:
        return self._write(AGENTS, agent_id, {"state": UNREACHABLE, "info": info, "time": when})

    def mark_gone(self, agent_id: str, when: float) -> Any:
        return self._write(AGENTS, agent_id, {"state": GONE, "time": when})

    def remove_agent(self, agent_id: str) -> Any:
        return self._write(AGENTS, agent_id, None)

    def add_framework(self, framework_id: str, info: Record) -> Any:
        return self._write(FRAMEWORKS, framework_id, {"info": info})

    def remove_framework(self, framework_id: str) -> Any:
        return self._write(FRAMEWORKS, framework_id, None)

    def put_setting(self, name: str, record: Record) -> Any:
        """Keep an operator setting (weights, quota, the maintenance schedule)."""
        return self._write(SETTINGS, name, record)

    def barrier(self) -> concurrent.futures.Future[None]:
        """Done once every write submitted so far is done (the writes go in order)."""
        return self._worker.submit(lambda: None)

    def flush(self, timeout: float | None = None) -> None:
        """Wait (blocking) until every write submitted so far is done."""
        self.barrier().result(timeout)

    def close(self) -> None:
        self._worker.shutdown(wait=True)
        self.store.close()


def log_failure(what: str) -> Callable[[concurrent.futures.Future[Any]], None]:
    """A done-callback that logs a failed background write."""

    def done(future: concurrent.futures.Future[Any]) -> None:
        exc = future.exception()
        if exc is not None:
            log.error("registry write failed (%s): %r", what, exc)

    return done
