"""The master's book as Mesos JSON: the one place that turns book records into the shapes
tools read.

Two families, both built as plain dicts straight from the book's records (no protocol
objects per task), so that a state answer over 100,000 tasks is one linear pass:

* **v1** (here; operator API, ``include/mesos/v1/master/master.proto``): ids are
  ``{"value": ...}``, resources ``Resource`` lists, times ``TimeInfo``
  (``{"nanoseconds": ...}``). Used by ``POST /api/v1`` and the operator SUBSCRIBE stream.
* **v0** (:mod:`mesonb.master.views_v0`; the legacy ``/master/*`` endpoints): flat ids,
  flat resource maps, seconds.

Also here: what both share (roles and what they hold, weights, flags, which agents and
frameworks count as registered or active). Statuses are shown without their ``data``, as
the Mesos master keeps them: a task's result payload never travels in a state answer.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import dataclasses
import gc
import re
from collections.abc import Iterator
from pathlib import PurePath
from typing import Any, Protocol

from mesonb.config import VERSION, MasterConfig
from mesonb.protocol.mesos import TaskStatus
from mesonb.protocol.resources import SCALAR_NAMES

from . import reservations
from .book import Agent, AgentState, Book, Framework, Task
from .quota import Quotas


class RoleSource(Protocol):
    """What the role views read of the master (not imported: master.py imports views)."""

    book: Book
    role_weights: dict[str, float]
    quotas: Quotas


DEFAULT_WEIGHT = 1.0
AGENT_CAPABILITIES = ("MULTI_ROLE", "HIERARCHICAL_ROLE")
_DURATION_FLAGS = {"allocation_interval", "agent_ping_timeout", "offer_timeout",
                   "heartbeat_interval"}
_HIDDEN_FLAG_WORDS = ("secret", "password", "token", "credential")
_URL_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]+@")


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building and encoding a big answer.

    The builders make only acyclic dicts and lists, but allocating millions of them next to
    a large book triggers full collections that cost more than the building itself (4x
    on 100,000 tasks).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _ns(seconds: float) -> dict[str, int]:
    return {"nanoseconds": int(seconds * 1e9)}


def registered_agents(book: Book) -> Iterator[Agent]:
    """Agents Mesos lists as registered: connected or waiting to reconnect, not unreachable."""
    return (a for a in book.agents.values() if a.state is not AgentState.UNREACHABLE)


def framework_active(framework: Framework) -> bool:
    """Mesos's ``Framework::active()``: subscribed now and not deactivated."""
    return framework.active and framework.connected


def framework_recovered(framework: Framework) -> bool:
    """Known only from an agent's report after a master failover, not yet re-subscribed."""
    return not framework.connected and framework.stream_id is None


def all_frameworks(book: Book) -> Iterator[Framework]:
    yield from book.frameworks.values()
    yield from book.completed_frameworks.values()


# ---- v1 (operator API) -------------------------------------------------------------------


def status_json(status: TaskStatus) -> dict[str, Any]:
    out = status.to_json()
    out.pop("data", None)
    return out


def task_json(task: Task) -> dict[str, Any]:
    """The v1 ``Task`` message (mesos.proto) for operator answers and events."""
    info = task.info
    out: dict[str, Any] = {
        "name": info.name,
        "task_id": {"value": task.id},
        "framework_id": {"value": task.framework_id},
        "agent_id": {"value": task.agent_id},
        "state": task.state.value,
        "resources": task.resources.to_json("*", task.role),
        "statuses": [status_json(s) for s in task.statuses],
    }
    if task.executor_id:
        out["executor_id"] = {"value": task.executor_id}
    if task.status_update_state is not None:
        out["status_update_state"] = task.status_update_state.value
    if task.status_update_uuid:
        out["status_update_uuid"] = base64.b64encode(task.status_update_uuid).decode()
    if task.user:
        out["user"] = task.user
    if info.labels:
        out["labels"] = info.labels
    if info.kill_policy is not None:
        out["kill_policy"] = info.kill_policy.to_json()
    for key in ("discovery", "container", "health_check", "limits"):
        if key in info.extra:
            out[key] = info.extra[key]
    return out


def agent_json(agent: Agent) -> dict[str, Any]:
    """The v1 operator ``Agent`` message (master.proto Response.GetAgents.Agent)."""
    info = agent.info.to_json()
    info["id"] = {"value": agent.id}
    out: dict[str, Any] = {
        "agent_info": info,
        "active": agent.active,
        "deactivated": agent.deactivated,
        "version": agent.version or VERSION,
        "pid": agent.pid,
        "registered_time": _ns(agent.registered_time),
        "total_resources": reservations.agent_resources_json(agent.total, agent.ledger),
        "allocated_resources": agent.used.to_json(),
        "offered_resources": agent.offered.to_json(),
        "capabilities": [{"type": c} for c in AGENT_CAPABILITIES],
    }
    if agent.reregistered_time is not None:
        out["reregistered_time"] = _ns(agent.reregistered_time)
    if agent.drain is not None:
        out["drain_info"] = agent.drain.to_json()
    return out


def framework_json(framework: Framework, book: Book) -> dict[str, Any]:
    """The v1 ``Response.GetFrameworks.Framework`` message."""
    info = framework.info.to_json()
    info["id"] = {"value": framework.id}
    out: dict[str, Any] = {
        "framework_info": info,
        "active": framework_active(framework),
        "connected": framework.connected,
        "recovered": framework_recovered(framework),
        "registered_time": _ns(framework.registered_time),
    }
    if framework.reregistered_time is not None:
        out["reregistered_time"] = _ns(framework.reregistered_time)
    if framework.unregistered_time is not None:
        out["unregistered_time"] = _ns(framework.unregistered_time)
    offers = []
    for offer in framework.offers.values():
        agent = book.agents.get(offer.agent_id)
        if agent is not None:
            offers.append(offer.to_json(agent))
    if offers:
        out["offers"] = offers
    role = framework.roles[0] if len(framework.roles) == 1 else None
    if framework.used:
        out["allocated_resources"] = framework.used.to_json("*", role)
    if framework.offered:
        out["offered_resources"] = framework.offered.to_json("*", role)
    return out


def get_tasks(book: Book) -> dict[str, Any]:
    """``Response.GetTasks``: live, unreachable and completed tasks of every framework."""
    tasks: list[dict[str, Any]] = []
    unreachable: list[dict[str, Any]] = []
    completed: list[dict[str, Any]] = []
    for framework in all_frameworks(book):
        tasks.extend(task_json(t) for t in framework.tasks.values())
        unreachable.extend(task_json(t) for t in framework.unreachable_tasks.values())
        completed.extend(task_json(t) for t in framework.completed_tasks)
    return {"tasks": tasks, "unreachable_tasks": unreachable, "completed_tasks": completed}


def get_executors(book: Book) -> dict[str, Any]:
    return {"executors": [
        {"executor_info": executor.to_json(), "agent_id": {"value": agent.id}}
        for agent in book.agents.values()
        for executors in agent.executors.values()
        for executor in executors.values()
    ]}


def get_frameworks(book: Book) -> dict[str, Any]:
    return {
        "frameworks": [framework_json(f, book) for f in book.frameworks.values()],
        "completed_frameworks": [
            framework_json(f, book) for f in book.completed_frameworks.values()
        ],
    }


def get_agents(book: Book) -> dict[str, Any]:
    return {"agents": [agent_json(a) for a in registered_agents(book)], "recovered_agents": []}


def get_state(book: Book) -> dict[str, Any]:
    return {
        "get_tasks": get_tasks(book),
        "get_executors": get_executors(book),
        "get_frameworks": get_frameworks(book),
        "get_agents": get_agents(book),
    }


# ---- roles, weights, flags (both families) -----------------------------------------------


@dataclasses.dataclass
class RoleUsage:
    frameworks: list[str] = dataclasses.field(default_factory=list)
    allocated: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    offered: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)


def _ancestors(role: str) -> Iterator[str]:
    parts = role.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


def role_usage(master: RoleSource) -> dict[str, RoleUsage]:
    """Mesos's ``knownRoles()`` (sorted, with ancestors) and what each holds."""
    book = master.book
    usage: dict[str, RoleUsage] = collections.defaultdict(RoleUsage)
    for framework in book.frameworks.values():
        roles = framework.roles
        for role in roles:
            usage[role].frameworks.append(framework.id)
        if len(roles) == 1:
            usage[roles[0]].allocated.update(framework.used.scalars)
            usage[roles[0]].offered.update(framework.offered.scalars)
            continue
        in_tasks: collections.Counter[str] = collections.Counter()
        for task in framework.tasks.values():
            usage[task.role].allocated.update(task.resources.scalars)
            in_tasks.update(task.resources.scalars)
        rest = {k: v - in_tasks[k] for k, v in framework.used.scalars.items()}
        usage[roles[0]].allocated.update({k: v for k, v in rest.items() if v > 0})
        for offer in framework.offers.values():
            usage[offer.role].offered.update(offer.resources.scalars)
    for role in master.role_weights:  # a role with a weight is known
        usage.setdefault(role, RoleUsage())
    for role in master.quotas.configs:  # so is one with quota
        usage.setdefault(role, RoleUsage())
    for role in list(usage):
        for ancestor in _ancestors(role):
            usage.setdefault(ancestor, RoleUsage())
    return {name: usage[name] for name in sorted(usage)}


def get_roles(master: RoleSource) -> dict[str, Any]:
    """``Response.GetRoles``: only cpus/mem/disk/gpus in ``resources``, as Mesos does."""
    roles = []
    for name, use in role_usage(master).items():
        held = use.allocated + use.offered
        role: dict[str, Any] = {
            "name": name,
            "weight": master.role_weights.get(name, DEFAULT_WEIGHT),
        }
        if use.frameworks:
            role["frameworks"] = [{"value": f} for f in use.frameworks]
        resources = [{"name": k, "type": "SCALAR", "scalar": {"value": round(held[k], 3)}}
                     for k in SCALAR_NAMES if held.get(k)]
        if resources:
            role["resources"] = resources
        roles.append(role)
    return {"roles": roles}


def quantities(counter: collections.Counter[str]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in sorted(counter.items()) if v > 0}


def weight_infos(master: RoleSource) -> list[dict[str, Any]]:
    return [{"role": r, "weight": w} for r, w in sorted(master.role_weights.items())]


def master_flags(config: MasterConfig) -> dict[str, str]:
    """The master's configuration as Mesos flags (name -> string), secrets left out."""
    out: dict[str, str] = {}
    for field in dataclasses.fields(config):
        name = field.name
        value = getattr(config, name)
        if value is None or any(word in name for word in _HIDDEN_FLAG_WORDS):
            continue
        out[name] = _flag_value(name, value)
    auth = "true" if config.secret else "false"
    for name in ("authenticate_frameworks", "authenticate_agents",
                 "authenticate_http_readonly", "authenticate_http_readwrite"):
        out[name] = auth
    return dict(sorted(out.items()))


def _flag_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if name in _DURATION_FLAGS and isinstance(value, (int, float)):
        return duration(float(value))
    if isinstance(value, PurePath):
        return str(value)
    return _URL_CREDENTIALS.sub(r"\1***@", str(value))


def duration(seconds: float) -> str:
    """stout's Duration form: ``100ms``, ``15secs``, ``2mins``, ``1hrs``."""
    for unit, size in (("days", 86400.0), ("hrs", 3600.0), ("mins", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    if seconds >= 1 or seconds == 0:
        return f"{seconds:g}secs"
    return f"{seconds * 1000:g}ms"
