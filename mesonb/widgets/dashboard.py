"""A live dashboard fed by the master's operator event stream (``SUBSCRIBE``).

* :class:`DashboardModel` is pure: :meth:`~DashboardModel.feed` takes operator events
  (SUBSCRIBED with the whole state, TASK_ADDED, TASK_UPDATED, AGENT_ADDED, AGENT_REMOVED,
  FRAMEWORK_ADDED/UPDATED/REMOVED, HEARTBEAT) and :meth:`~DashboardModel.set_agents`
  the master's ``GET_AGENTS`` answers; it answers per-agent bars (total, allocated as the
  master books it — tasks *and* executors — offered, and used as the agents measure it),
  task counts by state (the Mesos UI's eight) and recent tasks.
* :class:`Dashboard` reads the stream on the client's loop thread and feeds the model.
  The stream carries no executor events, so shortly after task events (one read per
  burst) it re-reads the agents' allocation from the master (``GET_AGENTS``), and every
  ``usage_interval`` seconds that and what the agents measure in use. Its
  view (ipywidgets in Jupyter, :meth:`Dashboard.text` elsewhere) is redrawn at most
  every ``refresh`` seconds.
* When the stream breaks (a master failover, a dropped connection, no heartbeat for
  three heartbeat intervals) it reconnects, finding the leader again for a ``zk://``
  cluster, and starts over from the new SUBSCRIBED; after ``reconnect_for`` seconds
  without a stream it stops, with :attr:`Dashboard.error` saying why, and
  :meth:`Dashboard.wait` raises instead of blocking. :meth:`Dashboard.stop` closes it.

Example::

    dash = cluster.dashboard()     # shows itself in a notebook
    dash.wait(lambda m: m.state_counts()["TASK_FINISHED"] >= 10, timeout=60)
    dash.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from html import escape
from typing import Any

from mesonb.client import state

log = logging.getLogger(__name__)
UI_STATES = ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING",
             "TASK_FINISHED", "TASK_KILLED", "TASK_FAILED", "TASK_LOST")
RECENT = 20
CHANGES_ALLOCATION = ("TASK_ADDED", "TASK_UPDATED", "FRAMEWORK_REMOVED", "AGENT_ADDED")


class DashboardModel:
    """The cluster as the operator stream and the master's agent records tell it."""

    def __init__(self) -> None:
        self.agents: dict[str, dict[str, Any]] = {}
        self.tasks: OrderedDict[str, dict[str, Any]] = OrderedDict()  # by last change
        self.frameworks: dict[str, dict[str, Any]] = {}
        self.used: dict[str, dict[str, float]] = {}
        self.events = 0
        self.heartbeats = 0
        self.heartbeat_interval = 15.0
        self.subscribed = False
        # task events came since the agents' allocation was last read (set_agents)
        self.stale = False

    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("type", "")
        body = event.get(kind.lower()) or {}
        self.events += 1
        if kind in CHANGES_ALLOCATION:
            self.stale = True
        if kind == "SUBSCRIBED":
            self.subscribed = True
            self.heartbeat_interval = float(body.get("heartbeat_interval_seconds") or 15.0)
            whole = body.get("get_state", {})
            self.set_agents(whole.get("get_agents", {}))
            self.frameworks = {r["framework_id"]: r for r in
                               state.framework_records(whole.get("get_frameworks", {}))}
            self.tasks = OrderedDict()
            rows = state.task_records(whole.get("get_tasks", {}))
            for row in sorted(rows, key=lambda r: r["updated_time"] or 0.0):
                self.tasks[row["task_id"]] = row
        elif kind == "TASK_ADDED":
            row = state.task_row(body["task"])
            self.tasks[row["task_id"]] = row
        elif kind == "TASK_UPDATED":
            status = body.get("status", {})
            task_id = status.get("task_id", {}).get("value", "")
            row = self.tasks.pop(task_id, {}) or {
                "task_id": task_id, "name": "", "agent_id":
                status.get("agent_id", {}).get("value", ""),
                "framework_id": body.get("framework_id", {}).get("value", ""),
                **dict.fromkeys(state.SCALARS, 0.0)}
            row["state"] = body.get("state") or status.get("state", "")
            row["updated_time"] = status.get("timestamp", row.get("updated_time"))
            row["message"] = status.get("message", "")
            self.tasks[task_id] = row
        elif kind == "AGENT_ADDED":
            for row in state.agent_records({"agents": [body["agent"]]}):
                self.agents[row["agent_id"]] = row
        elif kind == "AGENT_REMOVED":
            self.agents.pop(body.get("agent_id", {}).get("value", ""), None)
        elif kind in ("FRAMEWORK_ADDED", "FRAMEWORK_UPDATED"):
            for row in state.framework_records({"frameworks": [body["framework"]]}):
                self.frameworks[row["framework_id"]] = row
        elif kind == "FRAMEWORK_REMOVED":
            fid = body.get("framework_info", {}).get("id", {}).get("value", "")
            if fid in self.frameworks:
                self.frameworks[fid] = {**self.frameworks[fid], "active": False,
                                        "connected": False, "completed": True}
        elif kind == "HEARTBEAT":
            self.heartbeats += 1

    def set_agents(self, get_agents: dict[str, Any]) -> None:
        """The agents as the master books them now (``GET_AGENTS``): totals, allocated
        (tasks and executors) and offered."""
        self.agents = {r["agent_id"]: r for r in state.agent_records(get_agents)}

    # -- what the views show ---------------------------------------------------------
    def state_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(UI_STATES, 0)
        for task in self.tasks.values():
            name = task.get("state", "")
            if name in ("TASK_ERROR",):
                name = "TASK_FAILED"
            elif name in ("TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR",
                          "TASK_UNREACHABLE", "TASK_UNKNOWN"):
                name = "TASK_LOST"
            if name in counts:
                counts[name] += 1
        return counts

    def agent_bars(self) -> list[dict[str, Any]]:
        """Per agent (``agent`` is its ``host:port``) and resource it has: ``total``,
        ``allocated`` and ``offered`` (the master's books at the last agent read) and
        ``used`` (what the agent measures; None when it does not)."""
        bars = []
        for agent_id, row in self.agents.items():
            for r in state.SCALARS:
                total = float(row.get(f"{r}_total") or 0.0)
                if not total:
                    continue
                used = self.used.get(agent_id, {}).get(r)
                bars.append({"agent_id": agent_id, "hostname": row.get("hostname", ""),
                             "agent": f"{row.get('hostname', '')}:{row.get('port', '')}",
                             "resource": r, "total": total,
                             "allocated": float(row.get(f"{r}_allocated") or 0.0),
                             "offered": float(row.get(f"{r}_offered") or 0.0),
                             "used": None if used is None or math.isnan(used) else used})
        return bars

    def recent_tasks(self, n: int = RECENT) -> list[dict[str, Any]]:
        return list(self.tasks.values())[-n:][::-1]

    def active_frameworks(self) -> list[dict[str, Any]]:
        return [f for f in self.frameworks.values() if not f.get("completed")]


class Dashboard:
    """The live view of a :class:`DashboardModel` fed from a cluster's master."""

    def __init__(self, cluster: Any, refresh: float = 0.5, usage_interval: float = 2.0,
                 reconnect_for: float = 30.0) -> None:
        self.cluster = cluster
        self.refresh = refresh
        self.usage_interval = usage_interval
        self.reconnect_for = reconnect_for
        self.model = DashboardModel()
        self.stopped = False  # no longer live: stop() or the stream could not come back
        self.connected = False
        self.error: str | None = None  # why it stopped, when it was not stop()
        self.lost: str | None = None  # why the last stream ended
        self.reconnects = 0
        self.url = ""  # the master the stream is on
        self.updates = 0
        self._stream: Any = None
        self._poller: asyncio.Future[None] | None = None
        self._agents_pending = False
        self._background: set[asyncio.Future[None]] = set()
        self._closed = False
        self._lock = threading.Lock()
        self._dirty = False
        self._subscribed = threading.Event()
        self._changed = threading.Condition(self._lock)
        self._widget: Any = None
        self._rows: dict[tuple[str, str], Any] = {}
        self._task = cluster.run_on_loop(self._start(), 30)
        cluster.on_close(self._stop)

    # -- the stream (loop thread) ----------------------------------------------------
    async def _start(self) -> asyncio.Future[None]:
        await self._connect()
        return asyncio.ensure_future(self._run())

    async def _connect(self) -> None:
        """A new operator stream at the leading master, found by the client (which
        follows a zk:// cluster's leader)."""
        stream = await self.cluster.operator_stream()
        self._stream, self.url = stream, stream.url

    async def _run(self) -> None:
        first = True
        while not self.stopped:
            if not first and not await self._reconnect():
                return
            first = False
            try:
                await self._read()
                reason = "the master closed the operator stream"
            except TimeoutError:
                reason = "no heartbeat from the master"
            except Exception as exc:  # reset, refused, a torn record: the stream is gone
                reason = f"the operator stream broke ({exc or type(exc).__name__})"
            finally:
                self._stream.close()
            if self.stopped:
                return
            with self._lock:
                self.connected, self.lost = False, reason
                self._changed.notify_all()
            self._schedule_refresh()

    async def _reconnect(self) -> bool:
        """Subscribe again (to the new leader of a zk:// cluster) until ``reconnect_for``
        runs out; then stop with :attr:`error`. True when a new stream is open."""
        deadline = time.monotonic() + self.reconnect_for
        delay = 0.1
        while not self.stopped:
            try:
                await self._connect()
                self.reconnects += 1
                return True
            except Exception as exc:  # refused, a standby, no leader yet: try again
                last = str(exc) or type(exc).__name__
            left = deadline - time.monotonic()
            if left <= 0:
                self._give_up(f"{self.lost}; no stream for {self.reconnect_for:g}s "
                              f"(last: {last})")
                return False
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 2.0)
        return False

    def _give_up(self, reason: str) -> None:
        with self._lock:
            self.stopped, self.connected, self.error = True, False, reason
            self._changed.notify_all()
        if self._poller is not None:
            self._poller.cancel()
        if self._widget is not None:
            self._draw()

    async def _read(self) -> None:
        batches = self._stream.batches()
        while True:
            try:
                batch = await asyncio.wait_for(anext(batches),
                                               3 * self.model.heartbeat_interval)
            except StopAsyncIteration:
                return
            subscribed = False  # this batch holds the stream's SUBSCRIBED
            with self._lock:
                for event in batch:
                    subscribed = subscribed or event.get("type") == "SUBSCRIBED"
                    self.model.feed(event)
                self._changed.notify_all()
            if subscribed:
                await self._subscribed_again()
            elif self.model.stale:
                self._schedule_agents()
            self._schedule_refresh()

    async def _subscribed_again(self) -> None:
        """A (new) stream started: measure usage now, then poll it."""
        with contextlib.suppress(OSError, ConnectionError, TimeoutError, ValueError):
            await self._read_agents(measure=True)
        with self._lock:
            self.connected, self.lost = True, None
            self._changed.notify_all()
        self._subscribed.set()
        if self._poller is None:
            self._poller = asyncio.ensure_future(self._poll())

    async def _read_agents(self, measure: bool) -> None:
        """The master's agent records (allocated includes executors) and, with
        ``measure``, what the agents measure in use."""
        self.model.stale = False  # events from now on ask for another read
        try:
            agents = await self.cluster.operator("GET_AGENTS", timeout=10)
        except (OSError, TimeoutError, ValueError):
            raise
        except Exception as exc:  # an HTTP error answer
            raise ConnectionError(str(exc)) from exc
        used = await self.cluster.agents_usage(agents) if measure else None
        with self._lock:
            self.model.set_agents(agents)
            if used is not None:
                self.model.used = used
            self._changed.notify_all()
        self._schedule_refresh()

    def _schedule_agents(self) -> None:
        """Re-read the agents soon (after ``refresh`` seconds, at most a quarter of a
        second, so that a burst of events costs one read), one read at a time."""
        if self._agents_pending:
            return
        self._agents_pending = True

        async def later() -> None:
            try:
                await asyncio.sleep(min(self.refresh, 0.25))
                await self._read_agents(measure=False)
            except (OSError, ConnectionError, TimeoutError, ValueError):
                pass  # the stream's own failure handling takes over
            except Exception:
                log.exception("dashboard: reading the agents failed")
            finally:
                self._agents_pending = False
            if self.model.stale and not self.stopped:
                self._schedule_agents()

        task = asyncio.ensure_future(later())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _poll(self) -> None:
        """Usage changes without master events: ask every ``usage_interval``."""
        while not self.stopped:
            await asyncio.sleep(self.usage_interval)
            if not self.connected:
                continue
            try:
                await self._read_agents(measure=True)
            except (OSError, ConnectionError, TimeoutError, ValueError):
                pass  # a broken stream is the reader's to handle; try again next time
            except Exception:  # never let the poller die quietly: the bars would freeze
                log.exception("dashboard: reading the agents failed")

    def _schedule_refresh(self) -> None:
        if self._dirty:
            return
        self._dirty = True
        asyncio.get_running_loop().call_later(self.refresh if self.updates else 0,
                                              self._refresh)

    def _refresh(self) -> None:
        self._dirty = False
        self.updates += 1
        if self._widget is not None:
            self._draw()

    # -- waiting (any thread but the loop's) ------------------------------------------
    def wait_subscribed(self, timeout: float = 30.0) -> Dashboard:
        """Wait until the stream has started (once); ConnectionError if it stopped for
        lack of a stream, TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            if self.error:
                raise ConnectionError(f"the dashboard stopped: {self.error}")
            if self._subscribed.wait(min(0.1, max(deadline - time.monotonic(), 0))):
                return self
            if time.monotonic() >= deadline:
                raise TimeoutError("the operator stream did not start")

    def wait(self, predicate: Callable[[DashboardModel], Any], timeout: float = 30.0) -> bool:
        """Wait until ``predicate(model)`` holds (checked after every change); False if
        ``timeout`` runs out, ConnectionError if the dashboard stopped for lack of a
        stream (a dashboard stopped by :meth:`stop` returns at once)."""
        with self._changed:
            self._changed.wait_for(lambda: self.stopped or predicate(self.model), timeout)
            if predicate(self.model):
                return True
            if self.error:
                raise ConnectionError(f"the dashboard stopped: {self.error}")
            return False

    @property
    def status(self) -> str:
        if self.error:
            return f"stopped: {self.error}"
        if self.stopped:
            return "stopped"
        if not self.connected:
            return f"reconnecting ({self.lost})" if self.lost else "connecting"
        again = f", {self.reconnects} reconnections" if self.reconnects else ""
        return f"live from {self.url}{again}"

    # -- views -----------------------------------------------------------------------
    def show(self) -> Dashboard:
        from mesonb.widgets.progress import in_kernel

        if in_kernel():
            from IPython.display import display

            display(self.widget())
        return self

    def widget(self) -> Any:
        import ipywidgets as w

        if self._widget is None:
            self._title = w.HTML()
            self._bars = w.VBox()
            self._counts = w.HTML()
            self._tasks = w.HTML()
            self._frameworks = w.HTML()
            self._widget = w.VBox([self._title, self._bars, self._counts,
                                   self._frameworks, self._tasks])
            self._draw()
        return self._widget

    def _bar_row(self, key: tuple[str, str]) -> Any:
        """One agent's resource: label, an allocated bar, a used bar, numbers."""
        import ipywidgets as w

        row = self._rows.get(key)
        if row is None:
            layout = {"width": "22em"}
            row = w.HBox([
                w.Label(layout={"width": "16em"}),
                w.VBox([w.FloatProgress(min=0, description="allocated", bar_style="info",
                                        layout=layout),
                        w.FloatProgress(min=0, description="used", bar_style="success",
                                        layout=layout)]),
                w.Label()])
            self._rows[key] = row
        return row

    def _draw(self, resend: bool = False) -> None:
        """Redraw; ``resend`` sends every widget's whole state again, from this thread
        (the last picture then belongs to the calling cell, e.g. in a saved notebook)."""
        with self._lock:
            bars = self.model.agent_bars()
            counts = self.model.state_counts()
            recent = self.model.recent_tasks()
            frameworks = self.model.active_frameworks()
        self._title.value = f"<b>mesonb cluster</b> <small>{escape(self.status)}</small>"
        rows = []
        for bar in bars:
            row = self._bar_row((bar["agent_id"], bar["resource"]))
            label, pair, numbers = row.children
            allocated, used = pair.children
            label.value = f"{bar['agent']} {bar['resource']}"
            for progress in (allocated, used):
                progress.max = bar["total"]
            allocated.value = min(bar["allocated"], bar["total"])
            used.value = min(bar["used"] or 0.0, bar["total"])
            used.description = "used" if bar["used"] is not None else "used n/a"
            numbers.value = _numbers(bar)
            rows.append(row)
        self._bars.children = rows
        self._counts.value = _table(["state", "tasks"], [
            (s.removeprefix("TASK_").title(), n) for s, n in counts.items()])
        self._frameworks.value = _table(["framework", "name", "active"], [
            (f["framework_id"], f["name"], f["active"]) for f in frameworks])
        self._tasks.value = _table(["task", "name", "state", "agent"], [
            (t["task_id"], t.get("name", ""), t.get("state", ""), t.get("agent_id", ""))
            for t in recent])
        if resend:
            _resend(self._widget)

    def text(self) -> str:
        with self._lock:
            counts = self.model.state_counts()
            bars = self.model.agent_bars()
        lines = [self.status,
                 "  ".join(f"{s.removeprefix('TASK_').title()} {n}" for s, n in counts.items())]
        lines += [f"{b['agent']} {b['resource']}: {_numbers(b)}" for b in bars]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<mesonb.Dashboard {self.status}>\n{self.text()}"

    # -- stopping ----------------------------------------------------------------------
    def stop(self) -> None:
        """Close the operator stream; the view keeps its last picture."""
        if self._closed:
            return
        self.cluster.on_close(self._stop, remove=True)
        self.cluster.run_on_loop(self._stop(), 30)

    async def _stop(self) -> None:
        self._closed = True
        with self._lock:
            self.stopped, self.connected = True, False
            self._changed.notify_all()
        if self._stream is not None:
            self._stream.close()
        if self._poller is not None:
            self._poller.cancel()
        for task in list(self._background):
            task.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        if self._widget is not None:
            self._draw(resend=True)


def _resend(widget: Any) -> None:
    """Send ``widget``'s state and its descendants' (layouts and styles keep theirs)."""
    widget.send_state()
    for child in getattr(widget, "children", ()):
        _resend(child)


def _numbers(bar: dict[str, Any]) -> str:
    used = "not measured" if bar["used"] is None else f"{bar['used']:.3g}"
    offered = f", {bar['offered']:g} offered" if bar.get("offered") else ""
    return (f"{bar['allocated']:g} / {bar['total']:g} allocated{offered}, used {used}")


def _table(head: list[str], rows: list[tuple[Any, ...]]) -> str:
    th = "".join(f"<th style='padding:1px 8px'>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td style='padding:1px 8px'>{escape(str(c))}</td>"
                                    for c in row) + "</tr>" for row in rows)
    return f"<table style='font-family:monospace'><tr>{th}</tr>{body}</table>"
