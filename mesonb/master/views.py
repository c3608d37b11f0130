"""The master's book as Mesos JSON: one place for every shape tools read.

Two families, both built as plain dicts straight from the book's records (no protocol
objects per task), so that ``/master/state`` over 100,000 tasks is one linear pass:

* **v1** (operator API, ``include/mesos/v1/master/master.proto``): ids are
  ``{"value": ...}``, resources are ``Resource`` lists, times are ``TimeInfo``
  (``{"nanoseconds": ...}``). Used by ``POST /api/v1`` and the operator SUBSCRIBE stream.
* **v0** (legacy ``/master/*`` endpoints, ``src/common/http.cpp`` and
  ``src/master/readonly_handler.cpp``): ids are flat strings, resources flat maps
  (``{"cpus": 2, "ports": "[31000-32000]"}``), times seconds since the epoch.

Statuses are shown without their ``data`` (as the Mesos master keeps them): a task's
result payload never travels in a state answer.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import dataclasses
import gc
import re
from collections.abc import Iterable, Iterator
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from mesonb.config import VERSION, MasterConfig
from mesonb.protocol.mesos import Attribute, ExecutorInfo, TaskStatus
from mesonb.protocol.resources import SCALAR_NAMES, Resources
from mesonb.protocol.states import TaskState

from .book import Agent, AgentState, Book, Framework, Offer, Task

if TYPE_CHECKING:
    from .master import Master

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


def _all_frameworks(book: Book) -> Iterator[Framework]:
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
        "deactivated": False,
        "version": agent.version or VERSION,
        "pid": agent.pid,
        "registered_time": _ns(agent.registered_time),
        "total_resources": agent.total.to_json(),
        "allocated_resources": agent.used.to_json(),
        "offered_resources": agent.offered.to_json(),
        "capabilities": [{"type": c} for c in AGENT_CAPABILITIES],
    }
    if agent.reregistered_time is not None:
        out["reregistered_time"] = _ns(agent.reregistered_time)
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
    for framework in _all_frameworks(book):
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


def role_usage(master: Master) -> dict[str, RoleUsage]:
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
    for role in list(usage):
        for ancestor in _ancestors(role):
            usage.setdefault(ancestor, RoleUsage())
    return {name: usage[name] for name in sorted(usage)}


def get_roles(master: Master) -> dict[str, Any]:
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


def v0_roles(master: Master) -> dict[str, Any]:
    """``/master/roles`` (readonly_handler.cpp ``roles``)."""
    roles = []
    for name, use in role_usage(master).items():
        allocated = _quantities(use.allocated)
        offered = _quantities(use.offered)
        roles.append({
            "name": name,
            "weight": master.role_weights.get(name, DEFAULT_WEIGHT),
            "quota": {"role": name, "guarantee": {}, "limit": {}, "consumed": allocated},
            "resources": _quantities(use.allocated + use.offered),
            "allocated": allocated,
            "offered": offered,
            "reserved": {},
            "frameworks": list(use.frameworks),
        })
    return {"roles": roles}


def _quantities(counter: collections.Counter[str]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in sorted(counter.items()) if v > 0}


def weight_infos(master: Master) -> list[dict[str, Any]]:
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


# ---- v0 (legacy /master/* endpoints) -----------------------------------------------------


def _labels(labels: Any) -> list[dict[str, Any]]:
    """v1 ``Labels`` (``{"labels": [...]}``) as v0's bare array."""
    if isinstance(labels, dict):
        return list(labels.get("labels") or [])
    return list(labels or [])


def v0_status(status: TaskStatus) -> dict[str, Any]:
    out: dict[str, Any] = {"state": status.state.value, "timestamp": status.timestamp or 0.0}
    if status.labels:
        out["labels"] = _labels(status.labels)
    container_status = status.extra.get("container_status") if status.extra else None
    if container_status:
        out["container_status"] = container_status
    if status.healthy is not None:
        out["healthy"] = status.healthy
    return out


def v0_task(task: Task) -> dict[str, Any]:
    info = task.info
    out: dict[str, Any] = {
        "id": task.id,
        "name": info.name,
        "framework_id": task.framework_id,
        "executor_id": task.executor_id or "",
        "slave_id": task.agent_id,
        "state": task.state.value,
        "resources": task.resources.to_flat(),
        "role": task.role,
        "statuses": [v0_status(s) for s in task.statuses],
    }
    extra = info.extra
    if "limits" in extra and isinstance(extra["limits"], dict):
        out["limits"] = {k: (v or {}).get("value") for k, v in extra["limits"].items()}
    if task.user:
        out["user"] = task.user
    if info.labels:
        out["labels"] = _labels(info.labels)
    for key in ("discovery", "container", "health_check"):
        if key in extra:
            out[key] = extra[key]
    return out


def _v0_command(command: Any) -> dict[str, Any]:
    if command is None:
        return {"argv": [], "uris": []}
    out: dict[str, Any] = {"shell": command.shell}
    if command.value is not None:
        out["value"] = command.value
    out["argv"] = list(command.arguments or [])
    if command.environment is not None:
        out["environment"] = command.environment.to_json()
    out["uris"] = [{"value": u.get("value", ""), "executable": bool(u.get("executable", False))}
                   for u in command.uris or ()]
    return out


def v0_executor(executor: ExecutorInfo, agent_id: str) -> dict[str, Any]:
    raw = executor.resources or []
    try:
        resources = Resources.from_json(raw).to_flat()
    except Exception:  # validated at launch; never let one bad record break /state
        resources = Resources().to_flat()
    out: dict[str, Any] = {
        "executor_id": executor.executor_id,
        "name": executor.name or "",
        "framework_id": executor.framework_id or "",
        "command": _v0_command(executor.command),
        "resources": resources,
    }
    role = (raw[0].get("allocation_info") or {}).get("role") if raw else None
    if role:
        out["role"] = role
    if executor.extra.get("labels"):
        out["labels"] = _labels(executor.extra["labels"])
    if executor.type is not None:
        out["type"] = executor.type.value
    out["slave_id"] = agent_id
    return out


def v0_offer(offer: Offer) -> dict[str, Any]:
    return {
        "id": offer.id,
        "framework_id": offer.framework_id,
        "allocation_info": {"role": offer.role},
        "slave_id": offer.agent_id,
        "resources": offer.resources.to_flat(),
    }


def v0_framework_summary(framework: Framework) -> dict[str, Any]:
    info = framework.info
    return {
        "id": framework.id,
        "name": info.name,
        "used_resources": framework.used.to_flat(),
        "offered_resources": framework.offered.to_flat(),
        "capabilities": [c.type for c in info.capabilities or ()],
        "hostname": info.hostname or "",
        "webui_url": info.webui_url or "",
        "active": framework_active(framework),
        "connected": framework.connected,
        "recovered": framework_recovered(framework),
    }


def executors_by_framework(book: Book) -> dict[str, list[dict[str, Any]]]:
    """One pass over the agents: each framework's executors as v0 objects."""
    out: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for agent in book.agents.values():
        for framework_id, executors in agent.executors.items():
            out[framework_id].extend(v0_executor(e, agent.id) for e in executors.values())
    return out


def v0_framework(framework: Framework, executors: list[dict[str, Any]]) -> dict[str, Any]:
    """The full framework object of ``/master/state`` and ``/master/frameworks``."""
    info = framework.info
    out = v0_framework_summary(framework)
    out.update({
        "user": info.user,
        "failover_timeout": info.failover_timeout,
        "checkpoint": info.checkpoint,
        "registered_time": framework.registered_time,
        "unregistered_time": framework.unregistered_time or 0.0,
    })
    if info.principal:
        out["principal"] = info.principal
    out["resources"] = (framework.used + framework.offered).to_flat()
    if framework.reregistered_time is not None:
        out["reregistered_time"] = framework.reregistered_time
    if info.roles:
        out["roles"] = list(info.roles)
    else:
        out["role"] = info.role or "*"
    out["tasks"] = [v0_task(t) for t in framework.tasks.values()]
    out["unreachable_tasks"] = [v0_task(t) for t in framework.unreachable_tasks.values()]
    out["completed_tasks"] = [v0_task(t) for t in framework.completed_tasks]
    out["offers"] = [v0_offer(o) for o in framework.offers.values()]
    out["executors"] = executors
    if info.labels:
        out["labels"] = _labels(info.labels)
    out["offer_constraints"] = {}
    return out


def v0_frameworks(book: Book, select: str | None = None) -> dict[str, Any]:
    """``/master/frameworks`` (also the framework lists of ``/master/state``)."""
    executors = executors_by_framework(book)

    def build(frameworks: Iterable[Framework]) -> list[dict[str, Any]]:
        return [v0_framework(f, executors.get(f.id, [])) for f in frameworks
                if select is None or f.id == select]

    return {
        "frameworks": build(book.frameworks.values()),
        "completed_frameworks": build(book.completed_frameworks.values()),
        "unregistered_frameworks": [],
    }


def _attribute_value(attribute: Attribute) -> Any:
    value = attribute.value()
    if attribute.type == "RANGES":
        return "[" + ", ".join(f"{b}-{e}" for b, e in value) + "]"
    if attribute.type == "SET":
        return "{" + ", ".join(value) + "}"
    return value


def v0_slave(agent: Agent, full: bool = False) -> dict[str, Any]:
    """An agent in ``/master/state`` (``full``: with ``/master/slaves``'s ``*_full`` lists)."""
    info = agent.info
    total = agent.total.to_flat()
    out: dict[str, Any] = {
        "id": agent.id,
        "hostname": agent.hostname,
        "port": info.port,
        "attributes": {a.name: _attribute_value(a) for a in info.attributes or ()},
        "pid": agent.pid,
        "registered_time": agent.registered_time,
    }
    if agent.reregistered_time is not None:
        out["reregistered_time"] = agent.reregistered_time
    out.update({
        "resources": total,
        "used_resources": agent.used.to_flat(),
        "offered_resources": agent.offered.to_flat(),
        "reserved_resources": {},
        "unreserved_resources": total,
        "active": agent.active,
        "deactivated": False,
        "version": agent.version or VERSION,
        "capabilities": list(AGENT_CAPABILITIES),
    })
    if full:
        out.update({
            "reserved_resources_full": {},
            "unreserved_resources_full": agent.total.to_json(),
            "used_resources_full": agent.used.to_json(),
            "offered_resources_full": agent.offered.to_json(),
        })
    return out


def v0_slaves(book: Book, select: str | None = None) -> dict[str, Any]:
    """``/master/slaves``."""
    return {
        "slaves": [v0_slave(a, full=True) for a in registered_agents(book)
                   if select is None or a.id == select],
        "recovered_slaves": [],
    }


def leader_fields(master: Master) -> dict[str, Any]:
    """``leader`` (a pid) and ``leader_info`` when a leader is known."""
    if master.leading:
        info = master.info()
        return {"leader": master.pid, "leader_info": {
            "id": info.id, "pid": master.pid, "port": info.port, "hostname": info.hostname}}
    if master.leader:
        host, _, port = master.leader.rpartition(":")
        pid = f"master@{master.leader}"
        return {"leader": pid, "leader_info": {
            "pid": pid, "port": int(port) if port.isdigit() else 0, "hostname": host}}
    return {}


def v0_state(master: Master) -> dict[str, Any]:
    """``/master/state`` (readonly_handler.cpp ``state``), built in one pass over the book."""
    book = master.book
    agents = list(book.agents.values())
    out: dict[str, Any] = {
        "version": VERSION,
        "build_date": "",
        "build_time": 0,
        "build_user": "mesonb",
        "start_time": master.start_time,
    }
    if master.leading and master.elected_time is not None:
        out["elected_time"] = master.elected_time
    out.update({
        "id": master.id,
        "pid": master.pid,
        "hostname": master.hostname,
        "capabilities": [],
        "activated_slaves": sum(1 for a in agents if a.active),
        "deactivated_slaves": sum(1 for a in agents if a.state is AgentState.DISCONNECTED),
        "unreachable_slaves": sum(1 for a in agents if a.state is AgentState.UNREACHABLE),
    })
    out.update(leader_fields(master))
    out["cluster"] = master.config.cluster
    out["flags"] = master_flags(master.config)
    out["slaves"] = [v0_slave(a) for a in registered_agents(book)]
    out["recovered_slaves"] = []
    frameworks = v0_frameworks(book)
    out["frameworks"] = frameworks["frameworks"]
    out["completed_frameworks"] = frameworks["completed_frameworks"]
    out["orphan_tasks"] = []
    out["unregistered_frameworks"] = []
    return out


_SUMMARY_STATES = (
    TaskState.TASK_STAGING, TaskState.TASK_STARTING, TaskState.TASK_RUNNING,
    TaskState.TASK_KILLING, TaskState.TASK_FINISHED, TaskState.TASK_KILLED,
    TaskState.TASK_FAILED, TaskState.TASK_LOST, TaskState.TASK_ERROR,
    TaskState.TASK_UNREACHABLE,
)


def v0_state_summary(master: Master) -> dict[str, Any]:
    """``/master/state-summary``: agents and frameworks with task counts per state."""
    book = master.book
    by_framework: dict[str, collections.Counter[TaskState]] = collections.defaultdict(
        collections.Counter)
    by_agent: dict[str, collections.Counter[TaskState]] = collections.defaultdict(
        collections.Counter)
    agents_of: dict[str, set[str]] = collections.defaultdict(set)
    frameworks_on: dict[str, set[str]] = collections.defaultdict(set)
    for framework in book.frameworks.values():
        for tasks in (framework.tasks.values(), framework.unreachable_tasks.values(),
                      framework.completed_tasks):
            for task in tasks:
                by_framework[framework.id][task.state] += 1
                by_agent[task.agent_id][task.state] += 1
                agents_of[framework.id].add(task.agent_id)
                frameworks_on[task.agent_id].add(framework.id)
    slaves = []
    for agent in registered_agents(book):
        entry = v0_slave(agent)
        counts = by_agent.get(agent.id, collections.Counter())
        entry.update({state.value: counts[state] for state in _SUMMARY_STATES})
        entry["framework_ids"] = sorted(frameworks_on.get(agent.id, ()))
        slaves.append(entry)
    frameworks = []
    for framework in book.frameworks.values():
        entry = v0_framework_summary(framework)
        counts = by_framework.get(framework.id, collections.Counter())
        entry.update({state.value: counts[state] for state in _SUMMARY_STATES})
        entry["slave_ids"] = sorted(agents_of.get(framework.id, ()))
        frameworks.append(entry)
    return {"hostname": master.hostname, "cluster": master.config.cluster,
            "slaves": slaves, "frameworks": frameworks}


def v0_tasks(
    book: Book,
    *,
    limit: int = 100,
    offset: int = 0,
    order: str = "des",
    framework_id: str | None = None,
    task_id: str | None = None,
) -> dict[str, Any]:
    """``/master/tasks``: sorted by each task's first status time (newest first by default)."""
    picked: list[Task] = []
    for framework in _all_frameworks(book):
        if framework_id is not None and framework.id != framework_id:
            continue
        for tasks in (framework.tasks.values(), framework.unreachable_tasks.values(),
                      framework.completed_tasks):
            picked.extend(t for t in tasks if task_id is None or t.id == task_id)
    timed = [t for t in picked if t.statuses and t.statuses[0].timestamp is not None]
    untimed = [t for t in picked if not (t.statuses and t.statuses[0].timestamp is not None)]
    ascending = order == "asc"
    timed.sort(key=lambda t: t.statuses[0].timestamp or 0.0, reverse=not ascending)
    ordered = untimed + timed if ascending else timed + untimed
    return {"tasks": [v0_task(t) for t in ordered[offset:offset + limit]]}
