"""The master's book as v0 JSON: the legacy ``/master/*`` endpoints' shapes.

Mesos's ``src/common/http.cpp`` (``json(Task)``, ``json(Resources)``, ...) and
``src/master/readonly_handler.cpp`` (``state``, ``state-summary``, ``frameworks``,
``slaves``, ``tasks``, ``roles``): ids are flat strings, resources flat maps
(``{"cpus": 2, "gpus": 0, "mem": 1024, "disk": 0, "ports": "[31000-32000]"}``), times
seconds since the epoch, labels bare arrays. v1 shapes and the parts both share live in
:mod:`mesonb.master.views`.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mesonb.config import VERSION
from mesonb.protocol.mesos import Attribute, ExecutorInfo, TaskStatus
from mesonb.protocol.resources import Resources
from mesonb.protocol.states import TaskState

from . import reservations
from .book import Agent, AgentState, Book, Framework, Offer, Task
from .views import (
    AGENT_CAPABILITIES,
    DEFAULT_WEIGHT,
    all_frameworks,
    framework_active,
    framework_recovered,
    master_flags,
    quantities,
    registered_agents,
    role_usage,
)

if TYPE_CHECKING:
    from .master import Master


def v0_roles(master: Master) -> dict[str, Any]:
    """``/master/roles`` (readonly_handler.cpp ``roles``)."""
    roles = []
    for name, use in role_usage(master).items():
        allocated = quantities(use.allocated)
        offered = quantities(use.offered)
        roles.append({
            "name": name,
            "weight": master.role_weights.get(name, DEFAULT_WEIGHT),
            "quota": {"role": name, **_quota(master, name), "consumed": allocated},
            "resources": quantities(use.allocated + use.offered),
            "allocated": allocated,
            "offered": offered,
            "reserved": {},
            "frameworks": list(use.frameworks),
        })
    return {"roles": roles}



def _quota(master: Master, role: str) -> dict[str, dict[str, float]]:
    """A role's quota guarantee and limit as flat maps (master/quota.py)."""
    config = master.quotas.configs.get(role)
    if config is None:
        return {"guarantee": {}, "limit": {}}
    return {"guarantee": dict(config.guarantees), "limit": dict(config.limits)}


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
        "reserved_resources": {role: res.to_flat() for role, res in
                               reservations.reserved_by_role(agent.ledger).items()},
        "unreserved_resources": (agent.total - agent.ledger.reserved.total()).to_flat(),
        "active": agent.active,
        "deactivated": agent.deactivated,
        **({"drain_info": agent.drain.to_json()} if agent.drain is not None else {}),
        "version": agent.version or VERSION,
        "capabilities": list(AGENT_CAPABILITIES),
    })
    if full:
        out.update({
            "reserved_resources_full": reservations.reserved_resources_json(agent.ledger),
            "unreserved_resources_full": (agent.total - agent.ledger.reserved.total()).to_json(),
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
        "deactivated_slaves": sum(1 for a in agents if not a.active
                                  and a.state is not AgentState.UNREACHABLE),
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
    for framework in all_frameworks(book):
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
