"""What a call is doing, in words, from what the client holds (no I/O, on the loop).

:func:`describe` answers ``fut.status()``, the progress bar's "pending: <reason>" and the
message of ``fut.result(timeout)``'s :class:`TimeoutError`: done, failed, refused,
running (where, for how long), starting, waiting for dependencies, or queued, and then
why: no agent has the resources free (this client's running calls use them), the free
resources are held in offers (by a notebook framework of this client, released for the
call, or by another framework), or an offer is coming. ``fut.explain()`` asks the master
for the whole picture.
"""

from __future__ import annotations

import time
from typing import Any

from mesonb.frameworks.functions.scheduler import EXECUTOR_RESOURCES
from mesonb.protocol.resources import Resources

from .errors import ResourceError
from .sizes import format_mb
from .state import agent_name


def describe(fut: Any, job: Any, scheduler: Any, agents: list[dict[str, Any]],
             holders: list[Any] | None = None) -> str:
    """``fut``'s state in words (see the module docstring)."""
    if fut.cancelled():
        return "cancelled"
    if fut.done():
        exc = fut.exception()
        if exc is None:
            return "done"
        if isinstance(exc, ResourceError):
            return f"refused: {exc}"
        return f"failed: {type(exc).__name__}: {exc}"
    if job is None or scheduler is None:
        return "pending"
    waiting = [d for d in job.deps if not d.done()]
    if waiting:
        names = ", ".join(d.key for d in waiting[:3]) + (", …" if len(waiting) > 3 else "")
        return (f"pending: waiting for {len(waiting)} of its {len(job.deps)} dependencies "
                f"({names})")
    spec = scheduler.launched.get(fut.task_id) if fut.task_id else None
    if spec is not None:
        where = _agent_of(agents, spec.agent_id)
        since = fut.started or fut.launched  # running, or sent to the agent
        return f"running on {where}" + (f" for {time.time() - since:.1f} s" if since else "")
    return "pending: " + queued_reason(job.resources, scheduler, agents, holders or [],
                                       fut.task_id)


def queued_reason(need: Resources, scheduler: Any, agents: list[dict[str, Any]],
                  holders: list[Any], task_id: str | None) -> str:
    """Why a queued call has not been launched yet."""
    asked = _amounts(need.scalars)
    ahead = 0
    for spec in scheduler.queue:
        if spec.task_id == task_id:
            break
        ahead += 1
    queue = f"; {ahead} calls ahead of it in the queue" if ahead else ""
    used = Resources()
    for spec in scheduler.launched.values():
        used = used + spec.resources
    total = Resources()
    for agent in agents:
        total = total + Resources({k: v for k, v in (agent.get("resources") or {}).items()
                                   if k in ("cpus", "mem", "disk", "gpus")
                                   and isinstance(v, int | float)})
    free = {k: total.get(k) - used.get(k) for k in need.scalars}
    short = {k: v for k, v in free.items() if v + 1e-9 < need.get(k)}
    if short:
        running = len(scheduler.launched)
        have = ", ".join(f"{k} {_amount(k, max(v, 0.0))}" for k, v in short.items())
        return (f"needs {asked}; only {have} free in the cluster while {running} calls of "
                f"this client run: it starts when they finish{queue}")
    held = [(h.name, h.held()) for h in holders if not h.closed]
    held = [(name, what) for name, what in held if what]
    if held:
        names = ", ".join(f"notebook framework {name!r}" for name, _ in held)
        return (f"needs {asked}; the free resources are held in offers by {names}, "
                f"which give them back now{queue}")
    released = sum(h.released for h in holders)
    if scheduler.offers:
        return (f"needs {asked}; the offers held are too small (another framework may "
                f"use the rest; see fut.explain()){queue}")
    extra = (f" ({released} offers of notebook frameworks released for this client)"
             if released else "")
    return (f"needs {asked}; waiting for an offer from the master: the free resources "
            f"may be offered to another framework (see fut.explain()){extra}{queue}")


def _agent_of(agents: list[dict[str, Any]], agent_id: str | None) -> str:
    for agent in agents:
        if agent.get("id") == agent_id:
            return agent_name(agent)
    return agent_id or "an agent"


def _amount(name: str, value: float) -> str:
    return format_mb(value) if name in ("mem", "disk") else f"{value:g}"


def _amounts(scalars: dict[str, float]) -> str:
    return ", ".join(f"{k} {_amount(k, v)}" for k, v in scalars.items() if v)


def too_big(need: Resources, command: bool, agents: list[dict[str, Any]]) -> str:
    """Why no registered agent could ever hold a call (or a shell ``command``) that
    needs ``need``: what was asked, what was counted, the largest agent."""
    asked = ", ".join(f"{k} {_amount(k, v)}" for k, v in need.scalars.items())
    if not agents:
        return f"no agent is registered, so nothing can hold {asked}"
    biggest = max(agents, key=lambda a: tuple(
        a.get("resources", {}).get(k, 0.0) for k in need.scalars))
    res = biggest.get("resources", {})
    has = ", ".join(f"{k} {_amount(k, res.get(k, 0.0))}" for k in need.scalars)
    if not command:
        what = (f"this call ({asked}; only the call's own resources count: "
                f"{_executor_share()})")
    else:
        what = f"this command ({asked})"
    return (f"no registered agent could ever hold {what}; the largest agent, "
            f"{agent_name(biggest)}, has {has} in all ({agents_text(agents)})")


def agents_text(agents: list[dict[str, Any]]) -> str:
    """``1 agent (cpus 2, mem 22.5 GiB)``: how many, and what they hold in all."""
    total: dict[str, float] = {}
    for agent in agents:
        for k, v in (agent.get("resources") or {}).items():
            if k in ("cpus", "mem", "gpus") and isinstance(v, int | float) and v:
                total[k] = total.get(k, 0.0) + v
    held = ", ".join(f"{k} {_amount(k, v)}" for k, v in total.items())
    return f"{len(agents)} agent{'s' if len(agents) != 1 else ''}" + \
        (f" ({held})" if held else "")


def _executor_share() -> str:
    """What the functions executor adds to a call's resources, in words."""
    if not EXECUTOR_RESOURCES:
        return "the functions executor's own overhead is not charged"
    extra = ", ".join(f"{k} {_amount(k, v)}" for k, v in EXECUTOR_RESOURCES.scalars.items())
    return f"plus {extra} for the functions executor"
