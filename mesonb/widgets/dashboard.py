"""A live dashboard fed by the master's operator event stream (``SUBSCRIBE``).

* :class:`DashboardModel` is pure: :meth:`~DashboardModel.feed` takes operator events
  (SUBSCRIBED with the whole state, TASK_ADDED, TASK_UPDATED, AGENT_ADDED, AGENT_REMOVED,
  FRAMEWORK_ADDED/UPDATED/REMOVED, HEARTBEAT) and it answers per-agent bars, task counts
  by state (the Mesos UI's eight) and recent tasks.
* :class:`Dashboard` reads the stream on the client's loop thread, feeds the model and
  refreshes its view (ipywidgets in Jupyter, :meth:`Dashboard.text` elsewhere) at most
  every ``refresh`` seconds; :meth:`Dashboard.stop` closes the stream.

Example::

    dash = cluster.dashboard()     # shows itself in a notebook
    ...
    dash.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import OrderedDict
from html import escape
from typing import Any

from mesonb.client import state

UI_STATES = ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING",
             "TASK_FINISHED", "TASK_KILLED", "TASK_FAILED", "TASK_LOST")
RECENT = 20


class DashboardModel:
    """The cluster as the operator stream tells it (see the module docstring)."""

    def __init__(self) -> None:
        self.agents: dict[str, dict[str, Any]] = {}
        self.tasks: OrderedDict[str, dict[str, Any]] = OrderedDict()  # by last change
        self.frameworks: dict[str, dict[str, Any]] = {}
        self.used: dict[str, dict[str, float]] = {}
        self.events = 0
        self.heartbeats = 0
        self.subscribed = False

    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("type", "")
        body = event.get(kind.lower()) or {}
        self.events += 1
        if kind == "SUBSCRIBED":
            self.subscribed = True
            whole = body.get("get_state", {})
            self.agents = {r["agent_id"]: r for r in
                           state.agent_records(whole.get("get_agents", {}))}
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
            row = self.tasks.pop(task_id, None) or {
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
        """Per agent and resource: ``total``, ``allocated`` (the agent's live tasks, as
        the stream tells them) and ``used`` (its own report, when known)."""
        allocated: dict[str, dict[str, float]] = {a: dict.fromkeys(state.SCALARS, 0.0)
                                                  for a in self.agents}
        for task in self.tasks.values():
            if task.get("state") in state.TERMINAL_STATES or task.get("agent_id") \
                    not in allocated:
                continue
            for r in state.SCALARS:
                allocated[task["agent_id"]][r] += float(task.get(r) or 0.0)
        bars = []
        for agent_id, row in self.agents.items():
            for r in state.SCALARS:
                total = float(row.get(f"{r}_total") or 0.0)
                if not total:
                    continue
                bars.append({"agent_id": agent_id, "hostname": row.get("hostname", ""),
                             "resource": r, "total": total,
                             "allocated": allocated[agent_id][r],
                             "used": self.used.get(agent_id, {}).get(r)})
        return bars

    def recent_tasks(self, n: int = RECENT) -> list[dict[str, Any]]:
        return list(self.tasks.values())[-n:][::-1]

    def active_frameworks(self) -> list[dict[str, Any]]:
        return [f for f in self.frameworks.values() if not f.get("completed")]


class Dashboard:
    """The live view of a :class:`DashboardModel` fed from a cluster's master."""

    def __init__(self, cluster: Any, refresh: float = 0.5, usage_interval: float = 2.0) -> None:
        self.cluster = cluster
        self.usage_interval = usage_interval
        self._usage: asyncio.Future[None] | None = None
        self.model = DashboardModel()
        self.refresh = refresh
        self.stopped = False
        self.updates = 0
        self._stream: Any = None
        self._lock = threading.Lock()
        self._dirty = False
        self._subscribed = threading.Event()
        self._changed = threading.Condition(self._lock)
        self._widget: Any = None
        self._task = cluster._lt.run(self._start(), 30)
        cluster._closers.append(self._stop)

    async def _start(self) -> asyncio.Task[None]:
        from mesonb.frameworks.driver import resolve_master_url
        from mesonb.http.client import open_stream

        url = await resolve_master_url(self.cluster.address)  # zk:// or host:port
        self._stream = await open_stream(url, "/api/v1",
                                         {"type": "SUBSCRIBE"}, self.cluster._headers)
        return asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        from mesonb.protocol.recordio import Decoder

        decoder = Decoder()
        try:
            async for chunk in self._stream.chunks:
                with self._lock:
                    for record in decoder.feed(chunk):
                        self.model.feed(json.loads(record))
                    self._changed.notify_all()
                if self.model.subscribed and not self._subscribed.is_set():
                    await self._measure()
                    self._subscribed.set()
                    self._usage = asyncio.ensure_future(self._poll_usage())
                self._schedule_refresh()
        except (OSError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._stream.close()

    async def _measure(self) -> None:
        """Read what the agents measure in use (psutil); the master does not know it."""
        self.model.used = await state.agents_used(
            {"agents": [{"agent_info": {"id": {"value": a}, "hostname": r["hostname"],
                                        "port": r["port"]}}
                        for a, r in self.model.agents.items()]},
            self.cluster._headers)

    async def _poll_usage(self) -> None:
        """Usage changes without master events: ask the agents every ``usage_interval``."""
        while not self.stopped:
            await asyncio.sleep(self.usage_interval)
            await self._measure()
            self._schedule_refresh()

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

    def wait_subscribed(self, timeout: float = 30.0) -> Dashboard:
        if not self._subscribed.wait(timeout):
            raise TimeoutError("the operator stream did not start")
        return self

    def wait(self, predicate: Any, timeout: float = 30.0) -> bool:
        """Wait until ``predicate(model)`` holds (checked on every batch of events)."""
        with self._changed:
            self._changed.wait_for(lambda: self.stopped or predicate(self.model), timeout)
            return bool(predicate(self.model))

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
            self._bars = w.VBox()
            self._counts = w.HTML()
            self._tasks = w.HTML()
            self._frameworks = w.HTML()
            self._widget = w.VBox([w.HTML("<b>mesonb cluster</b>"), self._bars, self._counts,
                                   self._frameworks, self._tasks])
            self._draw()
        return self._widget

    def _draw(self) -> None:
        import ipywidgets as w

        with self._lock:
            bars = self.model.agent_bars()
            counts = self.model.state_counts()
            recent = self.model.recent_tasks()
            frameworks = self.model.active_frameworks()
        rows = []
        for bar in bars:
            used = "" if bar["used"] is None else f", used {bar['used']:g}"
            rows.append(w.HBox([
                w.Label(f"{bar['hostname']} {bar['resource']}", layout={"width": "14em"}),
                w.FloatProgress(value=bar["allocated"], min=0, max=bar["total"],
                                bar_style="info"),
                w.Label(f"{bar['allocated']:g} / {bar['total']:g} allocated{used}")]))
        self._bars.children = rows
        self._counts.value = _table(["state", "tasks"], [
            (s.removeprefix("TASK_").title(), n) for s, n in counts.items()])
        self._frameworks.value = _table(["framework", "name", "active"], [
            (f["framework_id"], f["name"], f["active"]) for f in frameworks])
        self._tasks.value = _table(["task", "name", "state", "agent"], [
            (t["task_id"], t.get("name", ""), t.get("state", ""), t.get("agent_id", ""))
            for t in recent])

    def text(self) -> str:
        with self._lock:
            counts = self.model.state_counts()
            bars = self.model.agent_bars()
        lines = ["  ".join(f"{s.removeprefix('TASK_').title()} {n}" for s, n in counts.items())]
        lines += [f"{b['hostname']} {b['resource']}: {b['allocated']:g}/{b['total']:g}"
                  for b in bars]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<mesonb.Dashboard {'stopped' if self.stopped else 'live'}>\n{self.text()}"

    # -- stopping ----------------------------------------------------------------------
    def stop(self) -> None:
        """Close the operator stream; the view keeps its last picture."""
        if self.stopped:
            return
        if self._stop in self.cluster._closers:
            self.cluster._closers.remove(self._stop)
        self.cluster._lt.run(self._stop(), 30)

    async def _stop(self) -> None:
        self.stopped = True
        if self._stream is not None:
            self._stream.close()
        if self._usage is not None:
            self._usage.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


def _table(head: list[str], rows: list[tuple[Any, ...]]) -> str:
    th = "".join(f"<th style='padding:1px 8px'>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td style='padding:1px 8px'>{escape(str(c))}</td>"
                                    for c in row) + "</tr>" for row in rows)
    return f"<table style='font-family:monospace'><tr>{th}</tr>{body}</table>"
