"""The operator calls on reservations, volumes and operations (master.proto):
RESERVE_RESOURCES, UNRESERVE_RESOURCES, CREATE_VOLUMES, DESTROY_VOLUMES, GROW_VOLUME,
SHRINK_VOLUME and GET_OPERATIONS.

The changing calls act on one agent's free resources, applied as an offer operation would
be (:mod:`mesonb.master.operations`) with the caller's principal and no role limit. When
what the operation needs is held by outstanding offers, the master rescinds those offers
one at a time, as Mesos does (``Master::_operation`` in master/http.cpp): only an offer
holding some of the resources the operation needs, and no more once the free resources
cover it. Offers holding other resources of the agent stay with their frameworks.
They answer ``202 Accepted`` with no body, as Mesos does; a malformed call ``400``, an
unknown agent ``400``, resources that are not free ``409 Conflict``, an ACL refusal
``403`` — each with the reason, and nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mesonb.master import reservations
from mesonb.master.book import Agent, Offer
from mesonb.master.offer_operations import authorizer, commit
from mesonb.master.operations import Context, OperationError, Pool, apply
from mesonb.protocol.errors import BadRequest, Conflict, Forbidden
from mesonb.protocol.mesos import OperationType
from mesonb.protocol.operator import Call, CallType
from mesonb.protocol.reservations import Portion, split
from mesonb.protocol.resources import EMPTY, Resources

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
    ctx = Context(None, handler.principal, authorizer(master.acls))
    op_body = make_body(body)
    need: tuple[Resources, Portion] | None = None
    tried: set[str] = set()
    while True:
        free = reservations.free_portion(agent, master.book.offers)
        pool = Pool(reservations.unreserved_available(agent, free), free)
        try:
            apply(op_type, op_body, pool, agent.ledger.reserved, ctx)
            break
        except OperationError as exc:
            if exc.conflict:  # valid, but held: take back an offer holding some of it
                need = need or needed(op_type, op_body)
                offer = next((o for o in agent_offers(master, agent)
                              if o.id not in tried and holds(o, *need)), None)
                if offer is not None:
                    tried.add(offer.id)
                    master.rescind_offer(offer)
                    continue
            if exc.forbidden:
                raise Forbidden(exc.message) from None
            if exc.conflict:
                raise Conflict(exc.message) from None
            raise BadRequest(exc.message) from None
    master.counters["operator_operations"] += 1
    commit(master, agent)
    handler.set_status(202)


def needed(op_type: OperationType, body: Any) -> tuple[Resources, Portion]:
    """What an operation needs of the agent: unreserved resources (a RESERVE's) and a
    reserved portion (the reservation a refining RESERVE pushes on, the reservations an
    UNRESERVE or CREATE takes, the volumes a DESTROY or resize names, a GROW's
    addition)."""
    items: list[Any] = []
    for key in ("resources", "volumes", "volume", "addition"):
        value = body.get(key) if isinstance(body, dict) else None
        items.extend(value if isinstance(value, list) else [value] if value else [])
    try:
        portion = split(items, "operation")[1]
    except BadRequest:
        return EMPTY, Portion()
    if op_type is OperationType.RESERVE:  # unreserved resources, or the reservation refined
        plain, below = EMPTY, Portion()
        for k, res in portion.reserved.items():
            parent = k.popped()
            if parent is None:
                plain = plain + res
            else:
                below.add(parent, res)
        return plain, below
    if op_type is OperationType.CREATE:
        need = Portion()
        for volume in portion.volumes.values():
            need.add(volume.reservation, Resources({"disk": volume.disk}))
        return EMPTY, need
    return EMPTY, portion


def agent_offers(master: Any, agent: Agent) -> list[Offer]:
    """The agent's outstanding offers, oldest first."""
    offers = (master.book.offers.get(i) for i in list(agent.offers))
    return [o for o in offers if o is not None]


def _overlap(have: Resources, want: Resources) -> bool:
    return bool(have) and bool(want) and want - have != want


def holds(offer: Offer, unreserved: Resources, portion: Portion) -> bool:
    """Whether rescinding ``offer`` would give back some of what is needed (Mesos skips
    an offer when ``required - recovered == required``)."""
    mine = offer.portion or Portion()
    if _overlap(offer.resources - mine.total(), unreserved):
        return True
    if any(_overlap(mine.reserved.get(k, EMPTY), res) for k, res in portion.reserved.items()):
        return True
    return any(vid in mine.volumes for vid in portion.volumes)


def get_operations(handler: Any, call: Call) -> dict[str, Any]:
    """GET_OPERATIONS: the offer operations with an id the master tracks (``{}`` when
    none: proto3 JSON leaves out an empty repeated field)."""
    operations = handler.master.operation_statuses.to_json()
    return {"operations": operations} if operations else {}


OPERATOR_RESOURCE_CALLS: dict[CallType, Callable[[Any, Call], dict[str, Any] | None]] = {
    **dict.fromkeys(_AS_OPERATION, resource_call),
    CallType.GET_OPERATIONS: get_operations,
}
