"""The dashboard's panels as HTML and SVG, from plain data (no widgets, no I/O).

Each panel has a fixed height (:data:`HEIGHTS`, per agent where it grows with them), so
the whole dashboard fits a screen: :func:`dashboard_height` is at most 600 px for four
agents. Agents are named ``hostname:port``, amounts carry their units, and calls are
coloured by function (the same function, the same colour) in the task stream, with
failures marked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from html import escape
from typing import Any

# px: fixed parts, and the parts that grow by one row per agent
HEIGHTS = {"title": 22, "counts": 20, "queue": 40, "frameworks": 20, "recent": 36,
           "stream_axis": 14, "memory_axis": 14}
ROW = {"agent": 34, "stream": 12, "memory": 14}
MAX_AGENT_ROWS = 8  # more agents scroll inside their panel
UI_STATES = ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING",
             "TASK_FINISHED", "TASK_KILLED", "TASK_FAILED", "TASK_LOST")
FAILED = frozenset({"TASK_FAILED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED", "TASK_GONE",
                    "TASK_GONE_BY_OPERATOR", "TASK_UNREACHABLE", "TASK_UNKNOWN"})
STREAM_WINDOW = 60.0  # seconds of calls the task stream shows
MEMORY_WINDOW = 300.0  # seconds of memory history


def dashboard_height(agents: int) -> int:
    """The dashboard's height in px with ``agents`` agents (the panels' fixed sizes)."""
    rows = min(agents, MAX_AGENT_ROWS)
    return sum(HEIGHTS.values()) + rows * sum(ROW.values())


def amount(resource: str, value: float) -> str:
    """``cpus 1.5``; ``mem 1.2 GiB``, ``mem 300 MiB``."""
    if resource in ("mem", "disk"):
        return f"{value / 1024:.3g} GiB" if value >= 1024 else f"{value:.3g} MiB"
    return f"{value:.3g}"


def numbers(bar: dict[str, Any]) -> str:
    """One resource of one agent in words: ``0.5 / 2 cpus allocated, 0.2 used``."""
    r = bar["resource"]
    total, allocated = bar["total"], bar["allocated"]
    unit = "" if r in ("mem", "disk") else f" {r}"
    used = "used n/a" if bar["used"] is None else f"{amount(r, bar['used'])} used"
    offered = f", {amount(r, bar['offered'])} offered" if bar.get("offered") else ""
    return f"{amount(r, allocated)} / {amount(r, total)}{unit} allocated{offered}, {used}"


def counts_line(counts: dict[str, int]) -> str:
    """Counts by state in one line."""
    parts = []
    for state, n in counts.items():
        colour = "#c33" if state in FAILED and n else "#2a7" if state == "TASK_FINISHED" \
            else "#27c" if state == "TASK_RUNNING" else "#555"
        parts.append(f"<span style='color:{colour}'>{state.removeprefix('TASK_').title()} "
                     f"<b>{n}</b></span>")
    return _line(" · ".join(parts), HEIGHTS["counts"])


def colour_of(name: str) -> str:
    """A stable colour per function name."""
    digest = hashlib.md5(name.encode(), usedforsecurity=False).digest()
    return f"hsl({digest[0] * 360 // 256},60%,55%)"


def stream_svg(agents: list[str], spans: Iterable[dict[str, Any]], now: float,
               window: float = STREAM_WINDOW, width: int = 560) -> str:
    """A timeline of the last ``window`` seconds: one lane per agent (``host:port``),
    each call a bar coloured by function, a failed one outlined red. ``spans``: dicts
    with ``agent``, ``name``, ``start``, ``end`` (None while running), ``state``."""
    lanes = agents[:MAX_AGENT_ROWS]
    lane = ROW["stream"]
    height = len(lanes) * lane + HEIGHTS["stream_axis"]
    left, start = 110, now - window
    scale = (width - left) / window
    parts = []
    for i, agent in enumerate(lanes):
        y = i * lane
        parts.append(f"<text x='0' y='{y + lane - 2}' font-size='10'>{escape(agent)}</text>")
    index = {a: i for i, a in enumerate(lanes)}
    for span in spans:
        lane_no = index.get(span["agent"])
        end = span["end"] if span["end"] is not None else now
        if lane_no is None or end < start:
            continue
        x0 = left + max(span["start"] - start, 0.0) * scale
        w = max((end - max(span["start"], start)) * scale, 1.5)
        failed = span["state"] in FAILED
        stroke = " stroke='#c33' stroke-width='1.5'" if failed else ""
        parts.append(f"<rect x='{x0:.1f}' y='{lane_no * lane + 1}' width='{w:.1f}' "
                     f"height='{lane - 3}' fill='{colour_of(span['name'])}'{stroke}>"
                     f"<title>{escape(span['name'])} {escape(span['state'])}</title></rect>")
    y = len(lanes) * lane + 10
    parts.append(f"<text x='{left}' y='{y}' font-size='9'>-{window:g} s</text>"
                 f"<text x='{width - 20}' y='{y}' font-size='9'>now</text>")
    return _svg("task stream", parts, width, height)


def memory_svg(agents: list[tuple[str, float, list[tuple[float, float]]]], now: float,
               window: float = MEMORY_WINDOW, width: int = 560) -> str:
    """Memory in use per agent over the last ``window`` seconds: ``(host:port, total MB,
    [(time, MB used), ...])`` each, one sparkline lane per agent."""
    lanes = agents[:MAX_AGENT_ROWS]
    lane = ROW["memory"]
    height = len(lanes) * lane + HEIGHTS["memory_axis"]
    left, start = 110, now - window
    scale = (width - left - 70) / window
    parts = []
    for i, (agent, total, points) in enumerate(lanes):
        y0 = i * lane
        last = points[-1][1] if points else None
        label = f"{escape(agent)}"
        parts.append(f"<text x='0' y='{y0 + lane - 3}' font-size='10'>{label}</text>")
        shown = [(t, v) for t, v in points if t >= start]
        if len(shown) >= 2 and total > 0:
            coords = " ".join(f"{left + (t - start) * scale:.1f},"
                              f"{y0 + lane - 2 - (lane - 4) * min(v / total, 1.0):.1f}"
                              for t, v in shown)
            parts.append(f"<polyline points='{coords}' fill='none' stroke='#27c' "
                         "stroke-width='1.2'/>")
        if last is not None:
            parts.append(f"<text x='{width - 66}' y='{y0 + lane - 3}' font-size='10'>"
                         f"{amount('mem', last)}</text>")
    y = len(lanes) * lane + 10
    parts.append(f"<text x='{left}' y='{y}' font-size='9'>memory in use, last "
                 f"{window / 60:g} min</text>")
    return _svg("memory per agent", parts, width, height)


def queue_html(rows: list[dict[str, Any]]) -> str:
    """The client's calls not running yet, and why (the first two)."""
    if not rows:
        return _line("queue: empty", HEIGHTS["queue"])
    lines = [f"queue: <b>{len(rows)}</b> call{'s' if len(rows) != 1 else ''} waiting"]
    for row in rows[:2]:
        lines.append(f"<code>{escape(row['name'])}</code> <small>{escape(row['status'])}"
                     "</small>")
    return _line("<br>".join(lines), HEIGHTS["queue"])


def recent_html(tasks: list[dict[str, Any]], agents: dict[str, str], n: int = 8) -> str:
    """The last ``n`` tasks in two lines: name, state mark and agent; the task id on
    hover."""
    marks = []
    for t in tasks[:n]:
        state = t.get("state", "")
        mark = "✗" if state in FAILED else "✓" if state == "TASK_FINISHED" else "…"
        where = agents.get(t.get("agent_id", ""), "")
        marks.append(f"<span title='{escape(t['task_id'], quote=True)} on "
                     f"{escape(where, quote=True)}: {escape(state, quote=True)}'>"
                     f"{escape(t.get('name') or t['task_id'])} {mark}</span>")
    return _line("recent: " + (", ".join(marks) or "none"), HEIGHTS["recent"])


def frameworks_line(frameworks: list[dict[str, Any]]) -> str:
    names = ", ".join(f"<span title='{escape(f['framework_id'], quote=True)}'>"
                      f"{escape(f['name'])}</span>" for f in frameworks)
    return _line(f"frameworks: {names or 'none'}", HEIGHTS["frameworks"])


def _line(html: str, height: int) -> str:
    return (f"<div style='font-family:monospace;font-size:12px;line-height:16px;"
            f"height:{height}px;overflow:hidden'>{html}</div>")


def _svg(title: str, parts: list[str], width: int, height: int) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"style='font-family:monospace;display:block'><title>{escape(title)}</title>"
            + "".join(parts) + "</svg>")
