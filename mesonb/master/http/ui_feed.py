"""The web UI's feed on the master: the master's events and state, as UI records.

Tasks (up to 100,000s) come from the operator event stream the master already emits
(``TASK_ADDED``, ``TASK_UPDATED``): each becomes one row, never a pass over all tasks.
Agents, frameworks, offers, roles and the master's own figures are sampled every
:data:`SAMPLE_SECONDS` while a page watches (or a history is recorded): a row is rebuilt
only when the record behind it changed (resources are immutable values in the book, so
identity says whether they changed), and only changed rows travel. The master's log
(``mesonb.master``) is tailed into the LOG view.

Records go into a :class:`~mesonb.webui.hub.Hub`, whose model the pages render.
"""

from __future__ import annotations

import collections
import functools
import importlib.metadata
import logging
import os
from typing import TYPE_CHECKING, Any

import tornado.ioloop

from mesonb.config import MESONB_VERSION, VERSION
from mesonb.master import views
from mesonb.protocol.resources import SCALAR_NAMES, Resources
from mesonb.protocol.states import TERMINAL_STATES
from mesonb.webui.hub import Hub
from mesonb.webui.model import TASK_INDEX, task_key

if TYPE_CHECKING:
    from mesonb.master.master import Master

SAMPLE_SECONDS = 0.5
LOAD_CHUNK = 5000
_TERMINAL = frozenset(s.value for s in TERMINAL_STATES)
_STATE = TASK_INDEX["state"]
_STOPPED = TASK_INDEX["stopped"]
_REASON = TASK_INDEX["reason"]
_MESSAGE = TASK_INDEX["message"]
_SOURCE = TASK_INDEX["source"]
_AGENT = TASK_INDEX["agent_id"]


def scalars(resources: Resources) -> dict[str, float]:
    return {k: v for k, v in resources.scalars.items() if k in SCALAR_NAMES}


def _resource_scalars(items: list[dict[str, Any]] | None) -> dict[str, float]:
    out: dict[str, float] = collections.defaultdict(float)
    for item in items or ():
        value = (item.get("scalar") or {}).get("value")
        if item.get("name") in SCALAR_NAMES and isinstance(value, (int, float)):
            out[item["name"]] += value
    return out


def task_row(task: dict[str, Any], now: float) -> list[Any]:
    """A task row (``TASK_COLUMNS``) from a v1 ``Task`` as TASK_ADDED carries it."""
    statuses = task.get("statuses") or []
    latest = statuses[-1] if statuses else {}
    state = task.get("state", "TASK_STAGING")
    started = statuses[0].get("timestamp", now) if statuses else now
    res = _resource_scalars(task.get("resources"))
    return [
        task["task_id"]["value"], task.get("name", ""), state,
        task["framework_id"]["value"], (task.get("agent_id") or {}).get("value", ""),
        (task.get("executor_id") or {}).get("value", ""),
        started, latest.get("timestamp") if state in _TERMINAL else None,
        latest.get("reason"), latest.get("message"),
        res.get("cpus", 0.0), res.get("mem", 0.0), res.get("disk", 0.0), res.get("gpus", 0.0),
        latest.get("source"),
    ]


def book_task_row(task: Any) -> list[Any]:
    """A task row straight from a book record (what TASK_ADDED would say, for the tasks
    that exist when watching starts; one pass over 100,000 tasks takes a fraction of a
    second this way)."""
    statuses = task.statuses
    latest = statuses[-1] if statuses else None
    state = task.state.value
    res = task.resources.scalars
    return [
        task.id, task.info.name, state, task.framework_id, task.agent_id,
        task.executor_id or "", statuses[0].timestamp if statuses else None,
        latest.timestamp if latest is not None and state in _TERMINAL else None,
        latest.reason.value if latest is not None and latest.reason else None,
        latest.message if latest is not None else None,
        res.get("cpus", 0.0), res.get("mem", 0.0), res.get("disk", 0.0), res.get("gpus", 0.0),
        latest.source.value if latest is not None and latest.source else None,
    ]


class LogTail(logging.Handler):
    """Keeps the master's log lines until the next sample picks them up."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.lines: collections.deque[str] = collections.deque(maxlen=500)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # logging must never raise into the master
            self.handleError(record)

    def take(self) -> list[str]:
        lines = list(self.lines)
        self.lines.clear()
        return lines


class MasterFeed:
    """Turns one master's events and state into UI records for ``hub``."""

    ui_feed = True  # not an operator API subscriber (``operator_event_stream_subscribers``)

    def __init__(self, master: Master, hub: Hub) -> None:
        self.master = master
        self.hub = hub
        self._keep = max(1, master.config.max_completed_tasks_per_framework)
        self._completed: dict[str, collections.deque[str]] = collections.defaultdict(
            collections.deque)
        self._task_keys: dict[str, set[str]] = collections.defaultdict(set)
        self._signatures: dict[str, dict[str, tuple[Any, ...]]] = {
            "agents": {}, "frameworks": {}, "offers": {}}
        self._roles: dict[str, dict[str, Any]] = {}
        self._master_row: dict[str, Any] = {}
        self._timer: tornado.ioloop.PeriodicCallback | None = None
        self.watchers = 0  # pages and recorders that need samples
        self._loading: list[Any] = []  # book tasks still to send, newest first
        self.log_tail = LogTail()
        logging.getLogger("mesonb.master").addHandler(self.log_tail)

    # -- lifetime ------------------------------------------------------------------
    def watch(self) -> None:
        """Someone needs fresh figures: follow the master's events, bring everything up to
        date, and sample until the last watcher leaves (an unwatched master pays nothing)."""
        self.watchers += 1
        if self.watchers == 1:
            self.master.observers.append(self._on_event)
            self._load_tasks()
        self.sample()
        if self._timer is None:
            self._timer = tornado.ioloop.PeriodicCallback(self.sample, SAMPLE_SECONDS * 1000)
            self._timer.start()

    def unwatch(self) -> None:
        self.watchers = max(0, self.watchers - 1)
        if self.watchers > 0:
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if self._on_event in self.master.observers:
            self.master.observers.remove(self._on_event)
        self._loading = []
        self.hub.model.tables["tasks"].forget()  # no longer followed: reloaded at next watch

    def close(self) -> None:
        self.watchers = 1
        self.unwatch()
        logging.getLogger("mesonb.master").removeHandler(self.log_tail)

    # -- tasks, from events ------------------------------------------------------------
    def _load_tasks(self) -> None:
        """The book's tasks, when watching starts; events keep them current after.

        Rows go newest first: :data:`LOAD_CHUNK` of them now (a first page shows them),
        the rest in chunks on later loop turns, so neither the master nor a page waits for
        100,000 rows at once. A row an event already brought is newer, and stays."""
        self._completed.clear()
        self._task_keys.clear()
        tasks: list[Any] = []
        for framework in views.all_frameworks(self.master.book):
            fid = framework.id
            keys, completed = self._task_keys[fid], self._completed[fid]
            for group in (framework.tasks.values(), framework.unreachable_tasks.values()):
                for task in group:
                    keys.add(f"{fid} {task.id}")
                    tasks.append(task)
            for task in framework.completed_tasks:
                key = f"{fid} {task.id}"
                keys.add(key)
                completed.append(key)
                tasks.append(task)
        tasks.reverse()
        self._loading = tasks
        self._load_chunk()
        if self._loading:
            self.hub.apply({"type": "MASTER", "master": {"tasks_loading": True}})
            tornado.ioloop.IOLoop.current().add_callback(self._load_more)

    def _load_chunk(self) -> None:
        chunk, self._loading = self._loading[:LOAD_CHUNK], self._loading[LOAD_CHUNK:]
        have = self.hub.model.tables["tasks"].rows
        rows = [book_task_row(t) for t in chunk if f"{t.framework_id} {t.id}" not in have]
        if rows:
            self.hub.apply({"type": "ROWS", "table": "tasks", "rows": rows})

    def _load_more(self) -> None:
        if self.watchers == 0:
            self._loading = []
            return
        self._load_chunk()
        if self._loading:
            tornado.ioloop.IOLoop.current().add_callback(self._load_more)
        else:
            self.hub.apply({"type": "MASTER", "master": {"tasks_loading": False}})

    def _on_event(self, event: dict[str, Any]) -> None:
        try:
            self._follow(event)
        except Exception:  # an event of an unexpected shape must not cost the feed
            logging.getLogger(__name__).exception("web UI: cannot follow %s", event.get("type"))

    def _follow(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "TASK_ADDED":
            row = task_row(event["task_added"]["task"], self.master.clock.time())
            framework_id = row[TASK_INDEX["framework_id"]]
            self._task_keys[framework_id].add(task_key(framework_id, row[0]))
            self._put_tasks([row], framework_id)
        elif kind == "AGENT_ADDED":
            # A re-registering agent brings tasks the master adopts without a TASK_ADDED
            # (after a failover, or an agent back from unreachable): show those it lacks.
            agent = self.master.book.agents.get(
                event["agent_added"]["agent"]["agent_info"]["id"]["value"])
            rows = self.hub.model.tables["tasks"].rows
            adopted: dict[str, list[list[Any]]] = collections.defaultdict(list)
            for (framework_id, task_id), task in (agent.tasks.items() if agent else ()):
                key = task_key(framework_id, task_id)
                if key not in rows:
                    self._task_keys[framework_id].add(key)
                    adopted[framework_id].append(book_task_row(task))
            for framework_id, new in adopted.items():
                self._put_tasks(new, framework_id)
        elif kind == "TASK_UPDATED":
            body = event["task_updated"]
            framework_id = body["framework_id"]["value"]
            status = body["status"]
            key = task_key(framework_id, status["task_id"]["value"])
            old = self.hub.model.tables["tasks"].rows.get(key)
            if old is None:
                return
            row = list(old)
            was_terminal = row[_STATE] in _TERMINAL
            row[_STATE] = body.get("state", status["state"])
            row[_REASON] = status.get("reason")
            row[_MESSAGE] = status.get("message")
            row[_SOURCE] = status.get("source")
            if status.get("agent_id"):
                row[_AGENT] = status["agent_id"]["value"]
            if row[_STATE] in _TERMINAL:
                row[_STOPPED] = status.get("timestamp") or self.master.clock.time()
                if not was_terminal:
                    self._completed[framework_id].append(key)
            self._put_tasks([row], framework_id)

    def _put_tasks(self, rows: list[list[Any]], framework_id: str) -> None:
        removed: list[str] = []
        completed = self._completed.get(framework_id)
        while completed is not None and len(completed) > self._keep:
            key = completed.popleft()  # as the book, keep the newest completed tasks
            removed.append(key)
            self._task_keys[framework_id].discard(key)
        self.hub.apply({"type": "ROWS", "table": "tasks", "rows": rows, "removed": removed})

    # -- everything else, sampled ------------------------------------------------------
    def sample(self) -> None:
        try:
            self._sample_master()
            self._sample_agents()
            self._sample("frameworks", self._framework_signatures())
            self._sample("offers", self._offer_signatures())
            self._sample_roles()
            lines = self.log_tail.take()
            if lines:
                self.hub.apply({"type": "LOG", "lines": lines})
        except Exception:  # never let the UI hurt the master's loop
            logging.getLogger(__name__).exception("web UI sample failed")

    def _sample(self, table: str, current: dict[str, tuple[tuple[Any, ...], Any]]) -> None:
        """``current``: key -> (signature, build-the-row); rebuild rows whose signature moved."""
        known = self._signatures[table]
        rows = []
        for key, (signature, build) in current.items():
            old = known.get(key)
            if old is None or len(old) != len(signature) or any(
                    a is not b and a != b for a, b in zip(old, signature, strict=True)):
                known[key] = signature
                rows.append(build())
        removed = [key for key in known if key not in current]
        for key in removed:
            del known[key]
        if table == "frameworks":
            removed_tasks = [k for f in removed for k in self._task_keys.pop(f, ())]
            for f in removed:
                self._completed.pop(f, None)
            if removed_tasks:
                self.hub.apply({"type": "ROWS", "table": "tasks", "rows": [],
                                "removed": removed_tasks})
        if rows or removed:
            self.hub.apply({"type": "ROWS", "table": table, "rows": rows, "removed": removed})

    def _sample_agents(self) -> None:
        """Rows of the agents whose record changed (10,000 agents: a few ms)."""
        known = self._signatures["agents"]
        agents = self.master.book.agents
        rows = []
        for agent in agents.values():
            signature = (agent.state, agent.total, agent.used, agent.offered,
                         agent.reregistered_time, agent.upid)
            if known.get(agent.id) != signature:  # tuples compare items by identity first
                known[agent.id] = signature
                rows.append(self._agent_row(agent))
        removed = [key for key in known if key not in agents] if len(known) > len(agents) else []
        for key in removed:
            del known[key]
        if rows or removed:
            self.hub.apply({"type": "ROWS", "table": "agents", "rows": rows, "removed": removed})

    def _agent_row(self, agent: Any) -> dict[str, Any]:
        """An agent's row; fields without a value are left out (10,000 rows travel at
        once to a new page)."""
        state = agent.state.value
        row: dict[str, Any] = {
            "id": agent.id, "hostname": agent.hostname,
            "address": agent.pid.rpartition("@")[2],
            "state": "ACTIVE" if state == "REGISTERED" else state,
            "registered_time": round(agent.registered_time, 3),
            "total": scalars(agent.total), "used": scalars(agent.used),
        }
        if agent.offered:
            row["offered"] = scalars(agent.offered)
        if agent.reregistered_time is not None:
            row["reregistered_time"] = round(agent.reregistered_time, 3)
        if agent.unreachable_time is not None:
            row["unreachable_time"] = round(agent.unreachable_time, 3)
        if agent.version and agent.version != VERSION:
            row["version"] = agent.version
        if agent.attributes:
            row["attributes"] = {k: str(v) for k, v in agent.attributes.items()}
        if "ports" in agent.total.ranges:
            row["ports"] = agent.total.to_flat()["ports"]
        return row

    def _framework_signatures(self) -> dict[str, tuple[tuple[Any, ...], Any]]:
        book = self.master.book
        out = {}
        for completed, frameworks in ((False, book.frameworks), (True, book.completed_frameworks)):
            for f in frameworks.values():
                signature = (completed, f.active, f.connected, f.used, f.offered,
                             f.reregistered_time, f.unregistered_time, len(f.offers))
                out[f.id] = (signature, lambda f=f, c=completed: self._framework_row(f, c))
        return out

    def _framework_row(self, framework: Any, completed: bool) -> dict[str, Any]:
        info = framework.info
        return {
            "id": framework.id, "name": info.name, "user": info.user,
            "roles": list(info.role_list), "principal": info.principal,
            "hostname": info.hostname, "webui_url": info.webui_url,
            "failover_timeout": info.failover_timeout, "checkpoint": info.checkpoint,
            "capabilities": [c.type for c in info.capabilities or ()],
            "active": views.framework_active(framework), "connected": framework.connected,
            "completed": completed,
            "registered_time": framework.registered_time,
            "reregistered_time": framework.reregistered_time,
            "unregistered_time": framework.unregistered_time,
            "used": scalars(framework.used), "offered": scalars(framework.offered),
            "offers": len(framework.offers),
        }

    def _offer_signatures(self) -> dict[str, tuple[tuple[Any, ...], Any]]:
        out = {}
        for offer in self.master.book.offers.values():
            out[offer.id] = ((offer.resources,), lambda o=offer: self._offer_row(o))
        return out

    def _offer_row(self, offer: Any) -> dict[str, Any]:
        agent = self.master.book.agents.get(offer.agent_id)
        return {"id": offer.id, "framework_id": offer.framework_id, "agent_id": offer.agent_id,
                "hostname": agent.hostname if agent is not None else "",
                "role": offer.role, "resources": scalars(offer.resources)}

    def _sample_roles(self) -> None:
        roles = {}
        for name, use in views.role_usage(self.master).items():
            roles[name] = {
                "name": name, "weight": self.master.role_weights.get(name, views.DEFAULT_WEIGHT),
                "frameworks": list(use.frameworks),
                "allocated": views.quantities(use.allocated),
                "offered": views.quantities(use.offered),
            }
        changed = [row for name, row in roles.items() if self._roles.get(name) != row]
        removed = [name for name in self._roles if name not in roles]
        self._roles = roles
        if changed or removed:
            self.hub.apply({"type": "ROWS", "table": "roles", "rows": changed,
                            "removed": removed})

    def _sample_master(self) -> None:
        master = self.master
        row = {
            "id": master.id, "cluster": master.config.cluster, "hostname": master.hostname,
            "address": f"{master.hostname}:{master.port}", "pid": master.pid,
            "version": VERSION, "mesonb_version": MESONB_VERSION,
            "start_time": master.start_time, "elected_time": master.elected_time,
            "build_time": install_time(),
            "leading": master.leading,
            "leader": f"{master.hostname}:{master.port}" if master.leading else master.leader,
            "why_not": master.last_why_not,
            "flags": views.master_flags(master.config),
        }
        if row != self._master_row:
            self._master_row = row
            self.hub.apply({"type": "MASTER", "master": row})


@functools.cache
def install_time() -> float | None:
    """When this mesonb was built into the environment (its distribution's metadata file:
    ``METADATA`` of a wheel's dist-info, ``PKG-INFO`` of an editable build's egg-info, which
    a source checkout finds first): the home page's "Built", as Mesos shows its build
    date. None when it is not installed at all."""
    try:
        dist = importlib.metadata.distribution("mesonb")
    except importlib.metadata.PackageNotFoundError:
        return None
    for found in dist.files or ():
        if found.name in ("METADATA", "PKG-INFO"):
            try:
                return os.path.getmtime(str(dist.locate_file(found)))
            except OSError:
                continue
    return None
