"""The master's operator calls for quota, roles, maintenance, draining and files.

Registered into the operator API's table (:mod:`.operator`) as ``MAINTENANCE_CALLS``. Each
answers as Mesos does (include/mesos/v1/master/master.proto):

=============================  ==============================================================
GET_QUOTA                      ``get_quota{status{infos, configs}}`` (roles the caller may see)
UPDATE_QUOTA                   ``update_quota{force, quota_configs}``: all or nothing; 200
SET_QUOTA / REMOVE_QUOTA       the deprecated forms: ``set_quota{quota_request}``,
                               ``remove_quota{role}``; 200
GET_ROLES                      ``get_roles{roles}``, each with its weight and ``quota``
GET_FRAMEWORKS                 as before, each framework with its ``inverse_offers``
GET_MAINTENANCE_SCHEDULE       ``get_maintenance_schedule{schedule{windows}}``
UPDATE_MAINTENANCE_SCHEDULE    ``update_maintenance_schedule{schedule}``; 200
GET_MAINTENANCE_STATUS         ``get_maintenance_status{status{draining_machines,
                               down_machines}}``
START_MAINTENANCE              ``start_maintenance{machines}``: DOWN; 200
STOP_MAINTENANCE               ``stop_maintenance{machines}``: UP; 200
DRAIN_AGENT                    ``drain_agent{agent_id, max_grace_period, mark_gone}``; 200
DEACTIVATE_AGENT               ``deactivate_agent{agent_id}``; 200
REACTIVATE_AGENT               ``reactivate_agent{agent_id}``; 200
LIST_FILES / READ_FILE         the master's files (its log at ``/master/log``)
=============================  ==============================================================

Bad bodies answer 400 with the reason, unknown agents 404, calls the ACLs refuse 403
(``get_quotas``/``update_quotas`` per role, the maintenance actions per machine,
``drain_agents``/``deactivate_agents``/``reactivate_agents`` per agent,
``access_mesos_logs``); reads leave out what the caller may not see.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any, Protocol

from mesonb.http.base import Security
from mesonb.master import reservations, settings, views
from mesonb.master.files import MasterFiles
from mesonb.master.maintenance import MachineID, parse_machines, parse_schedule
from mesonb.master.master import Master
from mesonb.master.quota import QuotaConfig, parse_request, parse_update
from mesonb.protocol.errors import BadRequest
from mesonb.protocol.operator import Call, CallType
from mesonb.security.acls import Action


class Caller(Protocol):
    """The operator handler, as these calls see it."""

    master: Master
    security: Security
    principal: str | None


def _body(call: Call, name: str) -> dict[str, Any]:
    body = call.extra.get(name)
    if not isinstance(body, dict):
        raise BadRequest(f"Expecting '{name}' to be present")
    return body


def _allowed(caller: Caller, action: Action, obj: str | None) -> bool:
    return caller.security.acls.allowed(action, caller.principal, obj)


# -- quota -------------------------------------------------------------------------------
def consumed_by_role(master: Master) -> dict[str, dict[str, float]]:
    """What each role (with its sub-roles) consumes of quota, as Mesos counts it: what it
    holds in tasks and executors (not offers) and all of its reservations, held or not
    (a reservation held by a task is counted once)."""
    usage = views.role_usage(master)
    held: dict[str, dict[str, float]] = {
        role: dict(use.allocated) for role, use in usage.items()}
    for role, reserved in reservations.quota_consumed(master.book.agents.values()).items():
        into = held.setdefault(role, {})
        for name, value in reserved.items():
            into[name] = into.get(name, 0.0) + value
    out: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for role, use in held.items():
        parts = role.split("/")
        for i in range(1, len(parts) + 1):
            out["/".join(parts[:i])].update(use)
    return {role: dict(held) for role, held in out.items()}


def apply_quota(caller: Caller, configs: list[QuotaConfig], force: bool) -> None:
    """Authorize, check and apply quota configs; offers of the roles are taken back so the
    allocator makes them again within the new limits."""
    master = caller.master
    for config in configs:
        caller.security.authorize(Action.UPDATE_QUOTA, caller.principal, config.role)
    master.quotas.check(configs, force, consumed_by_role(master), master.book.total.scalars)
    master.quotas.apply(configs)
    settings.save(master, settings.QUOTA)
    roles = [c.role for c in configs]
    for offer in list(master.book.offers.values()):
        if any(offer.role == r or offer.role.startswith(r + "/") for r in roles):
            master.rescind_offer(offer)


def quota_status(caller: Caller) -> dict[str, Any]:
    quotas = caller.master.quotas
    visible = [r for r in quotas.configs if _allowed(caller, Action.GET_QUOTA, r)]
    return quotas.status_json(visible)


def get_quota(caller: Caller, call: Call) -> dict[str, Any]:
    return {"status": quota_status(caller)}


def update_quota(caller: Caller, call: Call) -> None:
    force, configs = parse_update(call.extra.get("update_quota"))
    apply_quota(caller, configs, force)


def set_quota(caller: Caller, call: Call) -> None:
    force, config = parse_request(_body(call, "set_quota").get("quota_request"))
    if config.role in caller.master.quotas.configs:
        raise BadRequest(f"Failed to validate set quota request: quota cannot be set for "
                         f"role '{config.role}' which already has quota")
    apply_quota(caller, [config], force)


def remove_quota(caller: Caller, call: Call) -> None:
    role = _body(call, "remove_quota").get("role")
    if not isinstance(role, str):
        raise BadRequest("Expecting 'remove_quota.role' to be a string")
    if role not in caller.master.quotas.configs:
        raise BadRequest(f"Failed to remove quota: role '{role}' has no quota set")
    apply_quota(caller, [QuotaConfig(role)], True)


def role_quota(master: Master, role: str, consumed: dict[str, float]) -> dict[str, Any]:
    """A ``Role``'s ``quota`` field: guarantee, limit and what it consumes (v1 Resources)."""
    config = master.quotas.configs.get(role) or QuotaConfig(role)

    def scalars(values: dict[str, float] | Any) -> list[dict[str, Any]]:
        return [{"name": n, "type": "SCALAR", "scalar": {"value": round(v, 3)}}
                for n, v in sorted(values.items()) if v]

    return {"role": role, "guarantee": scalars(config.guarantees),
            "limit": scalars(config.limits), "consumed": scalars(consumed)}


def get_roles(caller: Caller, call: Call) -> dict[str, Any]:
    master = caller.master
    answer = views.get_roles(master)
    consumed = consumed_by_role(master)
    for role in answer["roles"]:
        role["quota"] = role_quota(master, role["name"], consumed.get(role["name"], {}))
    return answer


# -- maintenance ---------------------------------------------------------------------------
def get_frameworks(caller: Caller, call: Call) -> dict[str, Any]:
    """GET_FRAMEWORKS, each framework with its outstanding ``inverse_offers``."""
    answer = views.get_frameworks(caller.master.book)
    for framework in answer["frameworks"]:
        ids = framework["framework_info"].get("id") or {}
        offers = caller.master.maintenance.framework_inverse_offers(ids.get("value", ""))
        if offers:
            framework["inverse_offers"] = offers
    return answer


def _authorize_machines(caller: Caller, action: Action, machines: list[MachineID]) -> None:
    for machine in machines:
        caller.security.authorize(action, caller.principal, str(machine))


def schedule_json(caller: Caller) -> dict[str, Any]:
    """The schedule, each window holding only the machines the caller may see."""
    windows = []
    for window in caller.master.maintenance.schedule.windows:
        shown = [m for m in window.machines
                 if _allowed(caller, Action.GET_MAINTENANCE_SCHEDULE, str(m))]
        if shown:
            out = window.to_json()
            out["machine_ids"] = [m.to_json() for m in shown]
            windows.append(out)
    return {"windows": windows}


def status_json(caller: Caller) -> dict[str, Any]:
    status = caller.master.maintenance.status_json()

    def visible(machine: dict[str, Any]) -> bool:
        return _allowed(caller, Action.GET_MAINTENANCE_STATUS, str(MachineID.from_json(machine)))

    return {"draining_machines": [m for m in status["draining_machines"] if visible(m["id"])],
            "down_machines": [m for m in status["down_machines"] if visible(m)]}


def update_schedule(caller: Caller, data: Any, where: str = "schedule") -> None:
    windows = parse_schedule(data, where)
    _authorize_machines(caller, Action.UPDATE_MAINTENANCE_SCHEDULE,
                        [m for w in windows for m in w.machines]
                        + caller.master.maintenance.schedule.machines())
    caller.master.maintenance.update_schedule(windows)


def start_machines(caller: Caller, data: Any, where: str) -> None:
    machines = parse_machines(data, where)
    _authorize_machines(caller, Action.START_MAINTENANCE, machines)
    caller.master.maintenance.start(machines)


def stop_machines(caller: Caller, data: Any, where: str) -> None:
    machines = parse_machines(data, where)
    _authorize_machines(caller, Action.STOP_MAINTENANCE, machines)
    caller.master.maintenance.stop(machines)


def get_maintenance_schedule(caller: Caller, call: Call) -> dict[str, Any]:
    return {"schedule": schedule_json(caller)}


def update_maintenance_schedule(caller: Caller, call: Call) -> None:
    update_schedule(caller, _body(call, "update_maintenance_schedule").get("schedule"),
                    "update_maintenance_schedule.schedule")


def get_maintenance_status(caller: Caller, call: Call) -> dict[str, Any]:
    return {"status": status_json(caller)}


def start_maintenance(caller: Caller, call: Call) -> None:
    start_machines(caller, _body(call, "start_maintenance").get("machines"),
                   "start_maintenance.machines")


def stop_maintenance(caller: Caller, call: Call) -> None:
    stop_machines(caller, _body(call, "stop_maintenance").get("machines"),
                  "stop_maintenance.machines")


# -- draining ----------------------------------------------------------------------------------
def _agent_id(call: Call, name: str) -> str:
    value = _body(call, name).get("agent_id")
    agent_id = value.get("value") if isinstance(value, dict) else None
    if not isinstance(agent_id, str) or not agent_id:
        raise BadRequest(f"Expecting '{name}.agent_id.value' to be a string")
    return agent_id


def drain_agent(caller: Caller, call: Call) -> None:
    agent_id = _agent_id(call, "drain_agent")
    body = _body(call, "drain_agent")
    grace = body.get("max_grace_period")
    nanos: int | None = None
    if grace is not None:
        nanos = grace.get("nanoseconds") if isinstance(grace, dict) else None
        if isinstance(nanos, bool) or not isinstance(nanos, int) or abs(nanos) >= 2**63:
            raise BadRequest("Expecting 'drain_agent.max_grace_period.nanoseconds' to be an "
                             "integer")
    mark_gone = body.get("mark_gone", False)
    if not isinstance(mark_gone, bool):
        raise BadRequest("Expecting 'drain_agent.mark_gone' to be a boolean")
    caller.security.authorize(Action.DRAIN_AGENT, caller.principal, agent_id)
    caller.master.drains.drain(agent_id, nanos, mark_gone)


def deactivate_agent(caller: Caller, call: Call) -> None:
    agent_id = _agent_id(call, "deactivate_agent")
    caller.security.authorize(Action.DEACTIVATE_AGENT, caller.principal, agent_id)
    caller.master.drains.deactivate(agent_id)


def reactivate_agent(caller: Caller, call: Call) -> None:
    agent_id = _agent_id(call, "reactivate_agent")
    caller.security.authorize(Action.REACTIVATE_AGENT, caller.principal, agent_id)
    caller.master.drains.reactivate(agent_id)


# -- files ---------------------------------------------------------------------------------------
def list_files(caller: Caller, call: Call) -> dict[str, Any]:
    caller.security.authorize(Action.ACCESS_MESOS_LOG, caller.principal, None)
    return MasterFiles(caller.master.config.log_dir).list_files(
        _body(call, "list_files").get("path"))


def read_file(caller: Caller, call: Call) -> dict[str, Any]:
    caller.security.authorize(Action.ACCESS_MESOS_LOG, caller.principal, None)
    return MasterFiles(caller.master.config.log_dir).read_file(call.extra.get("read_file"))


MAINTENANCE_CALLS: dict[CallType, Callable[[Any, Call], dict[str, Any] | None]] = {
    CallType.GET_QUOTA: get_quota,
    CallType.UPDATE_QUOTA: update_quota,
    CallType.SET_QUOTA: set_quota,
    CallType.REMOVE_QUOTA: remove_quota,
    CallType.GET_ROLES: get_roles,
    CallType.GET_FRAMEWORKS: get_frameworks,
    CallType.GET_MAINTENANCE_SCHEDULE: get_maintenance_schedule,
    CallType.UPDATE_MAINTENANCE_SCHEDULE: update_maintenance_schedule,
    CallType.GET_MAINTENANCE_STATUS: get_maintenance_status,
    CallType.START_MAINTENANCE: start_maintenance,
    CallType.STOP_MAINTENANCE: stop_maintenance,
    CallType.DRAIN_AGENT: drain_agent,
    CallType.DEACTIVATE_AGENT: deactivate_agent,
    CallType.REACTIVATE_AGENT: reactivate_agent,
    CallType.LIST_FILES: list_files,
    CallType.READ_FILE: read_file,
}
"""Operator call -> answer (a Response body, or None for an empty 200)."""
