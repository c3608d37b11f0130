"""The cluster's state as pandas DataFrames, read from the master's operator API.

Two layers, so the shapes are testable without a cluster or pandas:

* ``*_records(...)``: pure functions from operator answers (``GET_AGENTS``, ``GET_TASKS``,
  ``GET_FRAMEWORKS``) to flat rows (plain dicts, Mesos names flattened);
* :func:`frame`: rows to a DataFrame with fixed, typed columns (ids, names and messages
  pandas' string dtype — ``str`` on pandas 3, ``string`` on pandas 2 — every quantity
  ``float64``, counts ``int64``, times ``datetime64[ns, UTC]``, flags ``bool``), empty
  frames included, so ``groupby``/``query``/plotting work the same on any cluster.

``*_used`` is what the agents measure, not what is allocated: ``cpus_used`` (cores busy)
and ``mem_used`` (resident MB) from the agent's ``/metrics/snapshot``; ``disk_used`` only
where the agent reports its executors' ``disk_used_bytes`` in ``/monitor/statistics``
(Mesos does with disk isolation; mesonb's agent does not measure disk yet, so it is NaN
there); ``gpus_used`` is 0 on an agent without GPUs and NaN on one with GPUs (not
measured). Every ``*_used`` is NaN for an agent that did not answer.

Example::

    df = cluster.agents()
    df[["hostname", "cpus_total", "cpus_allocated", "cpus_used"]]
    cluster.tasks().groupby("state").size()

pandas is imported only when a frame is built (``import mesonb`` stays light).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterable
from typing import Any

from mesonb import tls
from mesonb.http.client import Connection

SCALARS = ("cpus", "mem", "disk", "gpus")
TERMINAL_STATES = frozenset({
    "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED",
    "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"})

# column -> kind ("str", "float", "time", "bool", "int")
AGENT_COLUMNS: dict[str, str] = {
    "agent_id": "str", "hostname": "str", "port": "int", "active": "bool",
    "registered_time": "time",
    **{f"{r}_{k}": "float" for r in SCALARS for k in ("total", "allocated", "offered", "used")},
}
TASK_COLUMNS: dict[str, str] = {
    "task_id": "str", "name": "str", "state": "str", "framework_id": "str",
    "framework": "str", "agent_id": "str", "hostname": "str", "executor_id": "str",
    **{r: "float" for r in SCALARS},
    "staged_time": "time", "updated_time": "time", "message": "str", "reason": "str",
}
FRAMEWORK_COLUMNS: dict[str, str] = {
    "framework_id": "str", "name": "str", "user": "str", "roles": "str", "active": "bool",
    "connected": "bool", "completed": "bool", "registered_time": "time", "offers": "int",
    **{f"{r}_{k}": "float" for r in SCALARS for k in ("allocated", "offered")},
}
OFFER_COLUMNS: dict[str, str] = {
    "offer_id": "str", "framework_id": "str", "agent_id": "str", "hostname": "str",
    "role": "str", **{r: "float" for r in SCALARS},
}


# -- pure: operator answers -> rows ----------------------------------------------------
def scalars(resources: Iterable[dict[str, Any]] | None) -> dict[str, float]:
    """A v1 ``Resource`` list summed by name (scalars only)."""
    out: dict[str, float] = {}
    for res in resources or ():
        if res.get("type", "SCALAR") == "SCALAR" and "scalar" in res:
            out[res["name"]] = out.get(res["name"], 0.0) + float(res["scalar"]["value"])
    return out


def _ns(time_info: dict[str, Any] | None) -> float | None:
    if not time_info:
        return None
    return int(time_info.get("nanoseconds", 0)) / 1e9


def agent_name(agent: dict[str, Any]) -> str:
    """An agent as users see it everywhere: ``hostname:port`` (``/master/state`` entry)."""
    port = agent.get("port")
    if port is None and "@" in str(agent.get("pid", "")):
        port = str(agent["pid"]).rsplit(":", 1)[-1]
    host = agent.get("hostname", "") or agent.get("id", "")
    return f"{host}:{port}" if port else host


def agent_records(get_agents: dict[str, Any],
                  used: dict[str, dict[str, float]] | None = None) -> list[dict[str, Any]]:
    """One row per registered agent; ``used`` maps agent id to what its agent measures
    (:func:`agents_used`); NaN where unknown (see the module docstring)."""
    rows = []
    for agent in get_agents.get("agents", []):
        info = agent.get("agent_info", {})
        agent_id = info.get("id", {}).get("value", "")
        row: dict[str, Any] = {
            "agent_id": agent_id, "hostname": info.get("hostname", ""),
            "port": info.get("port", 5051), "active": bool(agent.get("active", True)),
            "registered_time": _ns(agent.get("registered_time")),
        }
        total = scalars(agent.get("total_resources"))
        allocated = scalars(agent.get("allocated_resources"))
        offered = scalars(agent.get("offered_resources"))
        agent_used = (used or {}).get(agent_id)
        for r in SCALARS:
            row[f"{r}_total"] = total.get(r, 0.0)
            row[f"{r}_allocated"] = allocated.get(r, 0.0)
            row[f"{r}_offered"] = offered.get(r, 0.0)
            row[f"{r}_used"] = agent_used.get(r) if agent_used is not None else None
        rows.append(row)
    return rows


def task_row(task: dict[str, Any], hostnames: dict[str, str] | None = None,
             framework_names: dict[str, str] | None = None) -> dict[str, Any]:
    """One v1 ``Task`` as a row."""
    statuses = task.get("statuses") or []
    stamps = [s["timestamp"] for s in statuses if s.get("timestamp") is not None]
    last = statuses[-1] if statuses else {}
    agent_id = task.get("agent_id", {}).get("value", "")
    framework_id = task.get("framework_id", {}).get("value", "")
    res = scalars(task.get("resources"))
    return {
        "task_id": task.get("task_id", {}).get("value", ""), "name": task.get("name", ""),
        "state": task.get("state", ""), "framework_id": framework_id,
        "framework": (framework_names or {}).get(framework_id, ""),
        "agent_id": agent_id, "hostname": (hostnames or {}).get(agent_id, ""),
        "executor_id": (task.get("executor_id") or {}).get("value", ""),
        **{r: res.get(r, 0.0) for r in SCALARS},
        "staged_time": min(stamps) if stamps else None,
        "updated_time": max(stamps) if stamps else None,
        "message": last.get("message", ""), "reason": last.get("reason", ""),
    }


def task_records(get_tasks: dict[str, Any], get_agents: dict[str, Any] | None = None,
                 get_frameworks: dict[str, Any] | None = None,
                 framework_id: str | None = None) -> list[dict[str, Any]]:
    """One row per task (live, unreachable and completed), optionally of one framework."""
    hostnames = {a["agent_info"]["id"]["value"]: a["agent_info"].get("hostname", "")
                 for a in (get_agents or {}).get("agents", [])}
    names = {f["framework_id"]: f["name"] for f in framework_records(get_frameworks or {})}
    rows = []
    for key in ("tasks", "unreachable_tasks", "completed_tasks"):
        for task in get_tasks.get(key, []):
            if framework_id is None or task.get("framework_id", {}).get("value") == framework_id:
                rows.append(task_row(task, hostnames, names))
    return rows


def framework_records(get_frameworks: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, completed in (("frameworks", False), ("completed_frameworks", True)):
        for fw in get_frameworks.get(key, []):
            info = fw.get("framework_info", {})
            roles = info.get("roles") or [info.get("role", "*")]
            allocated = scalars(fw.get("allocated_resources"))
            offered = scalars(fw.get("offered_resources"))
            row: dict[str, Any] = {
                "framework_id": info.get("id", {}).get("value", ""),
                "name": info.get("name", ""), "user": info.get("user", ""),
                "roles": ",".join(roles), "active": bool(fw.get("active", False)),
                "connected": bool(fw.get("connected", False)), "completed": completed,
                "registered_time": _ns(fw.get("registered_time")),
                "offers": len(fw.get("offers") or ()),
            }
            for r in SCALARS:
                row[f"{r}_allocated"] = allocated.get(r, 0.0)
                row[f"{r}_offered"] = offered.get(r, 0.0)
            rows.append(row)
    return rows


def offer_row(offer: dict[str, Any]) -> dict[str, Any]:
    """One v1 ``Offer`` as a row."""
    res = scalars(offer.get("resources"))
    return {
        "offer_id": offer.get("id", {}).get("value", ""),
        "framework_id": offer.get("framework_id", {}).get("value", ""),
        "agent_id": offer.get("agent_id", {}).get("value", ""),
        "hostname": offer.get("hostname", ""),
        "role": (offer.get("allocation_info") or {}).get("role", "*"),
        **{r: res.get(r, 0.0) for r in SCALARS},
    }


def offer_records(get_frameworks: dict[str, Any]) -> list[dict[str, Any]]:
    """Every outstanding offer, from ``GET_FRAMEWORKS``."""
    return [offer_row(o) for fw in get_frameworks.get("frameworks", [])
            for o in fw.get("offers") or ()]


# -- rows -> DataFrame -----------------------------------------------------------------
def frame(rows: list[dict[str, Any]], columns: dict[str, str]) -> Any:
    """A DataFrame with exactly ``columns``, each of its kind's dtype."""
    import pandas as pd

    data: dict[str, Any] = {}
    for name, kind in columns.items():
        values = [row.get(name) for row in rows]
        if kind == "time":
            data[name] = pd.to_datetime(pd.Series(values, dtype="float64"), unit="s",
                                        utc=True).dt.as_unit("ns")  # pandas 3 picks us
        elif kind == "float":
            data[name] = pd.Series(values, dtype="float64")
        elif kind == "int":
            data[name] = pd.Series(values, dtype="int64")
        elif kind == "bool":
            data[name] = pd.Series(values, dtype="bool")
        else:
            data[name] = pd.Series(["" if v is None else str(v) for v in values],
                                   dtype=text_dtype())
    return pd.DataFrame(data, columns=list(columns))


def text_dtype() -> str:
    """pandas' string dtype: ``"str"`` (the default string dtype of pandas 3, NaN for
    missing) or, on pandas 2, ``"string"`` (its StringDtype); never ``object``."""
    import pandas as pd

    return "str" if int(pd.__version__.split(".")[0]) >= 3 else "string"


# -- I/O: the operator API -------------------------------------------------------------
async def operator_call(conn: Connection, kind: str) -> dict[str, Any]:
    """``POST /api/v1 {"type": kind}`` and return the response body's ``kind`` part."""
    answer = await conn.post_json("/api/v1", {"type": kind})
    if answer.status != 200:
        raise ConnectionError(f"{kind}: HTTP {answer.status}: {answer.body[:200]!r}")
    return (answer.json() or {}).get(kind.lower(), {})


MEASURED = {"cpus": "slave/cpus_usage", "mem": "slave/mem_usage"}


def measured_used(metrics: dict[str, Any], statistics: list[dict[str, Any]] | None,
                  gpus_total: float) -> dict[str, float]:
    """One agent's ``*_used`` from its ``/metrics/snapshot`` and ``/monitor/statistics``
    answers (pure; NaN for what it does not measure, see the module docstring)."""
    used = {r: float(metrics.get(key, math.nan)) for r, key in MEASURED.items()}
    disks = [float(e["statistics"]["disk_used_bytes"]) for e in statistics or ()
             if "disk_used_bytes" in (e.get("statistics") or {})]
    used["disk"] = sum(disks) / 2**20 if disks else math.nan
    used["gpus"] = 0.0 if not gpus_total else math.nan
    return used


async def agents_used(get_agents: dict[str, Any], headers: dict[str, str],
                      timeout: float = 5.0) -> dict[str, dict[str, float]]:
    """What each agent measures in use, by agent id (:func:`measured_used`); agents that
    do not answer within ``timeout`` are left out."""

    async def one(agent: dict[str, Any]) -> tuple[str, dict[str, float] | None]:
        info = agent["agent_info"]
        gpus_total = scalars(agent.get("total_resources")).get("gpus", 0.0)
        conn = Connection.to(tls.url(info['hostname'], info.get('port', 5051)), headers)
        try:
            answer = await asyncio.wait_for(conn.request("GET", "/metrics/snapshot"), timeout)
            metrics = answer.json() if answer.status == 200 else {}
            stats = await asyncio.wait_for(conn.request("GET", "/monitor/statistics"),
                                           timeout)
            statistics = stats.json() if stats.status == 200 else None
            if not isinstance(statistics, list):
                statistics = None
            return info["id"]["value"], measured_used(metrics or {}, statistics, gpus_total)
        except (OSError, TimeoutError, ValueError, ConnectionError):
            return info["id"]["value"], None
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    answers = await asyncio.gather(*(one(a) for a in get_agents.get("agents", [])))
    return {agent_id: used for agent_id, used in answers if used is not None}
