"""``_repr_html_`` for clusters, futures, offers and tasks: small HTML templates.

Each function reads only what its object already holds (no I/O), so showing an object
in Jupyter never blocks on the cluster.
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


def cluster_html(cluster: Any) -> str:
    agents = cluster._agents
    total: dict[str, float] = {}
    for agent in agents:
        for k, v in (agent.get("resources") or {}).items():
            if isinstance(v, int | float):
                total[k] = total.get(k, 0.0) + v
    rows = [
        ("master", escape(cluster.address)),
        ("kind", "local (embedded)" if cluster.local is not None else "remote"),
        ("framework", escape(f"{cluster.name} {getattr(cluster, 'framework_id', '')}")),
        ("agents", str(len(agents))),
        ("resources", resources(total)),
        ("calls in flight", str(len(cluster._jobs))),
        ("state", "closed" if cluster.closed else "open"),
    ]
    return table("mesonb.Cluster", rows)


def future_html(fut: Any) -> str:
    if fut.cancelled():
        status = "cancelled"
    elif fut.done():
        status = "error" if fut.exception() is not None else "finished"
    else:
        status = "running" if fut.task_id else "pending"
    rows = [("name", escape(fut.name)), ("status", badge(status)),
            ("task", escape(fut.task_id or "(not launched yet)")),
            ("attempts", str(fut.attempts))]
    if status == "error":
        rows.append(("error", escape(f"{type(fut.exception()).__name__}: {fut.exception()}")))
    elif status == "finished":
        rows.append(("result", escape(_short(fut.result()))))
    return table("mesonb.Future", rows)


def offer_html(offer: Any) -> str:
    return table("mesonb.Offer", [
        ("id", escape(offer.id)), ("agent", escape(f"{offer.hostname} ({offer.agent_id})")),
        ("role", escape(offer.role)), ("resources", resources(offer.resources))])


def task_html(task: Any) -> str:
    rows = [("name", escape(task.name)), ("task", escape(task.task_id)),
            ("agent", escape(f"{task.hostname} ({task.agent_id})")),
            ("state", badge(task.state))]
    if task.statuses and task.statuses[-1].get("message"):
        rows.append(("message", escape(task.statuses[-1]["message"])))
    return table("mesonb.LaunchedTask", rows)


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
