"""The operator calls on reservations, volumes and operations (master.proto):
RESERVE_RESOURCES, UNRESERVE_RESOURCES, CREATE_VOLUMES, DESTROY_VOLUMES, GROW_VOLUME,
SHRINK_VOLUME and GET_OPERATIONS.

The changing calls act on one agent's free resources: the agent's outstanding offers are
rescinded first (Mesos rescinds what it needs; mesonb takes them all back, and the
allocator offers the result again), then the operation is applied as an offer operation
would be (:mod:`mesonb.master.operations`) with the caller's principal and no role limit.
They answer ``202 Accepted`` with no body, as Mesos does; a malformed call ``400``, an
unknown agent ``400``, resources that are not free ``409 Conflict``, an ACL refusal
``403`` — each with the reason, and nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mesonb.master import reservations
from mesonb.master.offer_operations import authorizer, commit
from mesonb.master.operations import Context, OperationError, Pool, apply
from mesonb.protocol.errors import BadRequest, Conflict, Forbidden
from mesonb.protocol.mesos import OperationType
from mesonb.protocol.operator import Call, CallType

# operator call -> (offer operation, the field of the call's body the operation reads)
_AS_OPERATION: dict[CallType, tuple[OperationType, Callable[[dict[str, Any]], Any]]] = {
    CallType.RESERVE_RESOURCES: (OperationType.RESERVE,
                                 lambda b: {"resources": b.get("resources")}),
    CallType.UNRESERVE_RESOURCES: (OperationType.UNRESERVE,
                                   lambda b: {"resources": b.get("resources")}),
    CallType.CREATE_VOLUMES: (OperationType.CREATE, lambda b: {"volumes": b.get("volumes")}),
    CallType.DESTROY_VOLUMES: (OperationType.DESTROY, lambda b: {"volumes": b.get("volumes")}),
    CallType.GROW_VOLUME: (OperationType.GROW_VOLUME, lambda b: b),
    CallType.SHRINK_VOLUME: (OperationType.SHRINK_VOLUME, lambda b: b),
}


def _agent_id(body: dict[str, Any], field: str) -> str:
    agent = body.get("agent_id")
    value = agent.get("value") if isinstance(agent, dict) else None
    if not isinstance(value, str) or not value:
        raise BadRequest(f"Expecting '{field}.agent_id' to be present")
    return value


def resource_call(handler: Any, call: Call) -> None:
    """RESERVE_RESOURCES, UNRESERVE_RESOURCES, CREATE_VOLUMES, DESTROY_VOLUMES,
    GROW_VOLUME and SHRINK_VOLUME."""
    field = call.type.value.lower()
    body = call.extra.get(field)
    if not isinstance(body, dict):
        raise BadRequest(f"Expecting '{field}' to be present")
    op_type, make_body = _AS_OPERATION[call.type]
    master = handler.master
    agent_id = _agent_id(body, field)
    agent = master.book.agents.get(agent_id)
    if agent is None:
        raise BadRequest(f"No agent found with specified ID {agent_id}")
    if not agent.active:
        raise Conflict(f"Agent {agent_id} is not registered and reachable")
    master.rescind_agent_offers(agent)
    free = reservations.free_portion(agent, master.book.offers)
    pool = Pool(reservations.unreserved_available(agent, free), free)
    ctx = Context(None, handler.principal, authorizer(master.acls))
    try:
        apply(op_type, make_body(body), pool, agent.ledger.reserved, ctx)
    except OperationError as exc:
        if exc.forbidden:
            raise Forbidden(exc.message) from None
        if exc.conflict:
            raise Conflict(exc.message) from None
        raise BadRequest(exc.message) from None
    master.counters["operator_operations"] += 1
    commit(master, agent)
    handler.set_status(202)


def get_operations(handler: Any, call: Call) -> dict[str, Any]:
    """GET_OPERATIONS: the offer operations with an id the master tracks (``{}`` when
    none: proto3 JSON leaves out an empty repeated field)."""
    operations = handler.master.operation_statuses.to_json()
    return {"operations": operations} if operations else {}


OPERATOR_RESOURCE_CALLS: dict[CallType, Callable[[Any, Call], dict[str, Any] | None]] = {
    **dict.fromkeys(_AS_OPERATION, resource_call),
    CallType.GET_OPERATIONS: get_operations,
}
