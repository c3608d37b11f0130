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
from collections import OrderedDict, deque
from collections.abc import Callable
from html import escape
from typing import Any

from mesonb.client import state
from mesonb.client.loop import spawn

from . import panels

log = logging.getLogger(__name__)
UI_STATES = panels.UI_STATES
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
        # the task stream: task id -> agent id, name, start, end (None while on), state,
        # times as this client saw the events
        self.spans: OrderedDict[str, dict[str, Any]] = OrderedDict()
        # agent id -> (time, MB in use) over the last minutes
        self.memory: dict[str, deque[tuple[float, float]]] = {}

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
            self._span(row, time.time())
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
            self._span(row, time.time())
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

    def _span(self, row: dict[str, Any], now: float) -> None:
        span = self.spans.get(row["task_id"])
        if span is None:
            span = self.spans[row["task_id"]] = {"agent_id": row.get("agent_id", ""),
                                                 "name": row.get("name", ""), "start": now,
                                                 "end": None, "state": row.get("state", "")}
            while len(self.spans) > 2000:
                self.spans.popitem(last=False)
        span["state"] = row.get("state", "")
        if span["state"] in state.TERMINAL_STATES and span["end"] is None:
            span["end"] = now

    def set_used(self, used: dict[str, dict[str, float]], now: float) -> None:
        """What the agents measure in use now; memory goes into its history."""
        self.used = used
        for agent_id, amounts in used.items():
            mem = amounts.get("mem")
            if mem is not None and not math.isnan(mem):
                history = self.memory.setdefault(agent_id, deque(maxlen=400))
                history.append((now, mem))

    def agent_name(self, agent_id: str) -> str:
        row = self.agents.get(agent_id, {})
        return f"{row.get('hostname', '')}:{row.get('port', '')}" if row else agent_id

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
        self._rows: dict[str, Any] = {}
        self.ui_url: str | None = None  # the master's web UI, when it serves one
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
        if self.ui_url is None:
            self.ui_url = await self.cluster.web_ui()
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
                self.model.set_used(used, time.time())
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

        spawn(later(), self._background, "dashboard: reading the agents", logger=log)

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
        stream (a dashboard stopped by :meth:`stop` returns at once).

        ``predicate`` runs outside the dashboard's lock, so it may ask the cluster
        (whose loop thread also feeds the model) without a deadlock."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if predicate(self.model):
                    return True
            except RuntimeError:  # the model changed while it was read: look again
                pass
            if self.error:
                raise ConnectionError(f"the dashboard stopped: {self.error}")
            left = deadline - time.monotonic()
            if self.stopped or left <= 0:
                return False
            with self._changed:
                self._changed.wait(min(left, 0.25))

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
        """The view: a title, counts by state in one line, one row per agent (cpus and
        memory: allocated and used bars, numbers with units), the client's queue, the
        task stream, memory per agent over the last minutes, the frameworks and the
        recent tasks; :func:`~.panels.dashboard_height` px in all."""
        import ipywidgets as w

        if self._widget is None:
            self._title = w.HTML(layout={"height": f"{panels.HEIGHTS['title']}px"})
            self._counts = w.HTML()
            self._bars = w.VBox(layout={
                "max_height": f"{panels.ROW['agent'] * panels.MAX_AGENT_ROWS}px",
                "overflow": "auto"})
            self._queue = w.HTML()
            self._timeline = w.HTML()
            self._memory = w.HTML()
            self._frameworks = w.HTML()
            self._tasks = w.HTML()
            self._widget = w.VBox([self._title, self._counts, self._bars, self._queue,
                                   self._timeline, self._memory, self._frameworks,
                                   self._tasks], layout={"width": "760px"})
            self._draw()
        return self._widget

    def _agent_row(self, agent_id: str) -> Any:
        """One agent: its name, then per resource an allocated bar over a used bar and
        the numbers."""
        import ipywidgets as w

        row = self._rows.get(agent_id)
        if row is None:
            cells = []
            for _ in ("cpus", "mem"):
                thin = {"width": "110px", "height": "11px", "margin": "1px 0"}
                bare = {"description_width": "0px"}
                pair = w.VBox([w.FloatProgress(min=0, bar_style="info", layout=thin,
                                               description="allocated", style=bare),
                               w.FloatProgress(min=0, bar_style="success", layout=thin,
                                               description="used", style=bare)])
                cells += [pair, w.Label(layout={"width": "250px"})]
            row = w.HBox([w.Label(layout={"width": "130px"}), *cells],
                         layout={"height": f"{panels.ROW['agent']}px"})
            self._rows[agent_id] = row
        return row

    def _draw(self, resend: bool = False) -> None:
        """Redraw; ``resend`` sends every widget's whole state again, from this thread
        (the last picture then belongs to the calling cell, e.g. in a saved notebook)."""
        now = time.time()
        with self._lock:
            model = self.model
            bars = model.agent_bars()
            counts = model.state_counts()
            recent = model.recent_tasks()
            frameworks = model.active_frameworks()
            names = {a: model.agent_name(a) for a in model.agents}
            spans = [{**s, "agent": names.get(s["agent_id"], s["agent_id"])}
                     for s in model.spans.values()
                     if s["end"] is None or s["end"] > now - panels.STREAM_WINDOW]
            memory = [(names[a], float(model.agents[a].get("mem_total") or 0.0),
                       list(model.memory.get(a, ()))) for a in model.agents]
        ui_url = getattr(self, "ui_url", None)
        link = (f" · <a href='{escape(ui_url, quote=True)}' target='_blank'>web UI</a>"
                if ui_url else "")
        self._title.value = (f"<b>mesonb cluster</b> <small>{escape(self.status)}</small>"
                             + link)
        self._counts.value = panels.counts_line(counts)
        rows = []
        for agent_id in names:
            mine = {b["resource"]: b for b in bars if b["agent_id"] == agent_id}
            row = self._agent_row(agent_id)
            label, cpu_pair, cpu_numbers, mem_pair, mem_numbers = row.children
            label.value = names[agent_id]
            for resource, pair, numbers in (("cpus", cpu_pair, cpu_numbers),
                                            ("mem", mem_pair, mem_numbers)):
                bar = mine.get(resource)
                allocated, used = pair.children
                if bar is None:
                    numbers.value = f"no {resource}"
                    continue
                allocated.max = used.max = bar["total"]
                allocated.value = min(bar["allocated"], bar["total"])
                used.value = min(bar["used"] or 0.0, bar["total"])
                used.description = "used" if bar["used"] is not None else "used n/a"
                numbers.value = f"{resource} {panels.numbers(bar)}"
            rows.append(row)
        self._bars.children = rows
        self._queue.value = panels.queue_html(self._queue_rows())
        self._timeline.value = panels.stream_svg(list(names.values()), spans, now)
        self._memory.value = panels.memory_svg(memory, now)
        self._frameworks.value = panels.frameworks_line(frameworks)
        self._tasks.value = panels.recent_html(recent, names)
        if resend:
            _resend(self._widget)

    def _queue_rows(self) -> list[dict[str, Any]]:
        """The client's calls not running yet."""
        cluster = getattr(self, "cluster", None)
        return [] if cluster is None else cluster.queue()

    def text(self) -> str:
        with self._lock:
            counts = self.model.state_counts()
            bars = self.model.agent_bars()
        lines = [self.status,
                 "  ".join(f"{s.removeprefix('TASK_').title()} {n}" for s, n in counts.items())]
        lines += [f"{b['agent']} {b['resource']}: {panels.numbers(b)}" for b in bars]
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
