"""``_repr_html_`` for clusters, futures, offers and tasks: small HTML templates.

Ids are shown short, the full one on hover; agents as ``hostname:port``; sizes with
units.

Each function reads only what its object already holds (no I/O), so showing an object
in Jupyter never blocks on the cluster; the one exception, :func:`cluster_html`, asks
the master for its agents with a short timeout and falls back to what the client holds.
"""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = "font-family:monospace;border-collapse:collapse;text-align:left"
_STATE_COLOURS = {
    "finished": "#2a7", "TASK_FINISHED": "#2a7", "running": "#27c", "TASK_RUNNING": "#27c",
    "error": "#c33", "TASK_FAILED": "#c33", "TASK_ERROR": "#c33", "TASK_LOST": "#c33",
    "cancelled": "#999", "TASK_KILLED": "#999", "pending": "#c80", "TASK_STAGING": "#c80",
}


def table(title: str, rows: list[tuple[str, Any]]) -> str:
    """A two-column key/value table under a bold title."""
    body = "".join(f"<tr><th style='padding:1px 8px'>{escape(str(k))}</th>"
                   f"<td style='padding:1px 8px'>{v}</td></tr>" for k, v in rows)
    return (f"<div class='mesonb'><strong>{escape(title)}</strong>"
            f"<table style='{_STYLE}'>{body}</table></div>")


def badge(state: str) -> str:
    colour = _STATE_COLOURS.get(state, "#555")
    return f"<span style='color:{colour};font-weight:bold'>{escape(state)}</span>"


def _amount(name: str, value: float) -> str:
    if name in ("mem", "disk"):
        return f"{value / 1024:.1f} GB" if value >= 1024 else f"{value:g} MB"
    return f"{value:g}"


def resources(scalars: dict[str, float]) -> str:
    return escape(", ".join(f"{k} {_amount(k, v)}" for k, v in sorted(scalars.items())
                            if k in ("cpus", "mem", "disk", "gpus") and v))


FRESH_TIMEOUT = 1.0  # seconds cluster_html may wait for the master


def cluster_html(cluster: Any, timeout: float = FRESH_TIMEOUT) -> str:
    """The cluster's address, agents and resources: fresh from the master (one
    ``GET_AGENTS`` call of at most ``timeout`` seconds), else the agents the client
    last saw, marked as such."""
    agents, fresh = _fresh_agents(cluster, timeout)
    total: dict[str, float] = {}
    allocated: dict[str, float] = {}
    for agent in agents:
        for into, key in ((total, "total"), (allocated, "allocated")):
            for k, v in (agent.get(key) or {}).items():
                into[k] = into.get(k, 0.0) + v
    held = resources(allocated) or "nothing"
    rows = [
        ("master", escape(cluster.address)),
        ("kind", "local (embedded)" if cluster.local is not None else "remote"),
        ("framework", escape(f"{cluster.name} {getattr(cluster, 'framework_id', '')}")),
        ("agents", str(len(agents)) + ("" if fresh else " (last seen; the master did "
                                       f"not answer within {timeout:g}s)")),
        ("resources", resources(total) + (f"; allocated: {held}" if fresh else "")),
        ("calls in flight", str(len(cluster._jobs))),
        ("state", "closed" if cluster.closed else "open"),
    ]
    return table("mesonb.Cluster", rows)


def _fresh_agents(cluster: Any, timeout: float) -> tuple[list[dict[str, Any]], bool]:
    """``[{"total": {...}, "allocated": {...}}]`` per active agent, and whether it is
    fresh from the master (else from the client's cached ``/master/state`` agents)."""
    if not cluster.closed and not cluster._lt.in_loop_thread():
        from mesonb.client import state

        try:
            answer = cluster._lt.run(_get_agents(cluster, timeout), timeout + 1.0)
            return [{"total": state.scalars(a.get("total_resources")),
                     "allocated": state.scalars(a.get("allocated_resources"))}
                    for a in answer.get("agents", []) if a.get("active", True)], True
        except Exception:  # slow or gone: show what we have rather than nothing
            pass
    return [{"total": {k: v for k, v in (a.get("resources") or {}).items()
                       if isinstance(v, int | float)}} for a in cluster._agents], False


async def _get_agents(cluster: Any, timeout: float) -> dict[str, Any]:
    """``GET_AGENTS`` on a connection of its own (a call cut short by the timeout must
    not leave its answer in the client's shared connection)."""
    import asyncio

    from mesonb import tls
    from mesonb.client import state
    from mesonb.http.client import Connection

    master = cluster._master
    url = getattr(master, "url", "") or tls.url(master.host, master.port)
    conn = Connection.to(url, cluster._headers)
    try:
        return await asyncio.wait_for(state.operator_call(conn, "GET_AGENTS"), timeout)
    finally:
        conn.close()


def short_id(ident: str, keep: int = 8) -> str:
    """An id cut to its last ``keep`` characters, the whole id on hover."""
    if len(ident) <= keep + 4:
        return escape(ident)
    return f"<span title='{escape(ident, quote=True)}'>…{escape(ident[-keep:])}</span>"


def future_html(fut: Any) -> str:
    status = getattr(fut, "phase", None)
    if status is None:
        if fut.cancelled():
            status = "cancelled"
        elif fut.done():
            status = "error" if fut.exception() is not None else "finished"
        else:
            status = "running" if fut.task_id else "pending"
    rows = [("name", escape(fut.name)), ("status", badge(status)),
            ("task", short_id(fut.task_id) if fut.task_id else "(not launched yet)"),
            ("attempts", str(fut.attempts))]
    if status in ("pending", "running") and hasattr(fut, "status"):
        rows.append(("doing", escape(fut.status(timeout=1.0))))
    if status == "error":
        rows.append(("error", escape(f"{type(fut.exception()).__name__}: {fut.exception()}")))
    elif status == "finished":
        rows.append(("result", escape(_short(fut.result()))))
    return table("mesonb.Future", rows)


def offer_html(offer: Any) -> str:
    return table("mesonb.Offer", [
        ("id", short_id(offer.id)),
        ("agent", f"<span title='{escape(offer.agent_id, quote=True)}'>"
                  f"{escape(getattr(offer, 'agent', offer.hostname))}</span>"),
        ("role", escape(offer.role)), ("resources", resources(offer.resources))])


def task_html(task: Any) -> str:
    rows = [("name", escape(task.name)), ("task", short_id(task.task_id)),
            ("agent", f"<span title='{escape(task.agent_id, quote=True)}'>"
                      f"{escape(getattr(task, 'agent', task.hostname))}</span>"),
            ("state", badge(task.state))]
    if task.statuses and task.statuses[-1].get("message"):
        rows.append(("message", escape(task.statuses[-1]["message"])))
    return table("mesonb.LaunchedTask", rows)


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
