"""What of each agent is reserved, and what of that is free: the master's side of
reservations and persistent volumes.

Each :class:`~mesonb.master.book.Agent` carries a :class:`Ledger`: its reserved
:class:`~mesonb.protocol.reservations.Portion` (static reservations from the agent's
``--resources``, dynamic ones from RESERVE, persistent volumes from CREATE). The agent's
plain ``total`` bag counts all of it too; the ledger only says which part belongs to whom.

What of the reserved part is *held* (in outstanding offers, by live tasks or by
executors) is not counted incrementally: :func:`free_portion` reads it off the agent's
offers, tasks and executors each time it is asked, so it can never drift from the book
(re-registration and reconciliation rebuild ``Agent.used`` wholesale). Only agents with
reservations pay for it; the others skip it in one test.

The unreserved part offered to any role is then ``agent.available - free.total()``; the
free reserved part goes only to frameworks in the reservation's role (see
:mod:`mesonb.allocator.drf`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mesonb.allocator.drf import OfferDecision
from mesonb.protocol.reservations import (
    DYNAMIC,
    Portion,
    carved_from_static,
    portion_of,
    render,
    split,
)
from mesonb.protocol.resources import EMPTY, Resources

from .book import Agent, Offer
from .ledger import Ledger


def held_portion(agent: Agent, offers: Mapping[str, Offer] | None) -> Portion:
    """The reserved resources and volumes the agent's offers (none when ``offers`` is
    None), tasks and executors hold."""
    held = Portion()
    for offer_id in agent.offers if offers is not None else ():
        offer = offers.get(offer_id) if offers is not None else None
        if offer is not None and offer.portion:
            held = held + offer.portion
    for task in agent.tasks.values():
        part = portion_of(task.info.resources)
        if part:
            held = held + part
    for executors in agent.executors.values():
        for executor in executors.values():
            part = portion_of(executor.resources)
            if part:
                held = held + part
    return held


def free_portion(agent: Agent, offers: Mapping[str, Offer]) -> Portion:
    """The agent's reserved resources and volumes that nothing holds."""
    if not agent.ledger:
        return Portion()
    return agent.ledger.reserved - held_portion(agent, offers)


def unreserved_available(agent: Agent, free: Portion) -> Resources:
    """What of the agent's available resources any role may be offered."""
    return agent.available - free.total() if free else agent.available


def portion_for(free: Portion, decision: OfferDecision) -> Portion:
    """The reserved part of an allocator decision: the free reservations of the roles it
    names (its own role, or ancestors of it: Mesos offers those to sub-roles)."""
    roles = decision.reserved_roles or (decision.role,)
    out = Portion()
    for role in roles:
        out = out + free.for_role(role)
    return out


def free_by_role(free: Portion) -> dict[str, Resources]:
    """The free reserved resources per role, as bags (what the allocator sees)."""
    out: dict[str, Resources] = {}
    for k, res in free.reserved.items():
        out[k.role] = out.get(k.role, EMPTY) + res
    for volume in free.volumes.values():
        out[volume.role] = out.get(volume.role, EMPTY) + Resources({"disk": volume.disk})
    return {role: res for role, res in out.items() if res}


def unheld_by_role(agents: Iterable[Agent], offers: Mapping[str, Offer],
                   known: Mapping[str, Portion]) -> dict[str, dict[str, float]]:
    """Per role, the scalars of its reservations (volumes included) that no offer, task
    or executor holds, over all ``agents`` (``known``: free portions already worked
    out). With what the role's frameworks hold, that is its consumed quota."""
    out: dict[str, dict[str, float]] = {}
    for agent in agents:
        if not agent.ledger:
            continue
        free = known.get(agent.id)
        if free is None:
            free = free_portion(agent, offers)
        for role, res in free_by_role(free).items():
            into = out.setdefault(role, {})
            for name, value in res.scalars.items():
                into[name] = into.get(name, 0.0) + value
    return out


def quota_consumed(agents: Iterable[Agent]) -> dict[str, dict[str, float]]:
    """Per role, its reservations (all of them) less what of them tasks and executors
    hold: added to the role's tasks and executors, Mesos's consumed quota."""
    out: dict[str, dict[str, float]] = {}
    for agent in agents:
        if not agent.ledger:
            continue
        unheld = agent.ledger.reserved - held_portion(agent, None)
        for role, res in free_by_role(unheld).items():
            into = out.setdefault(role, {})
            for name, value in res.scalars.items():
                into[name] = into.get(name, 0.0) + value
    return out


def agent_resources_json(total: Resources, ledger: Ledger) -> list[dict[str, Any]]:
    """The agent's whole ``resources`` list as Mesos shows it (``SlaveInfo.resources`` in
    the registry, ``/master/slaves``): unreserved, then each reservation and volume."""
    return render(total - ledger.reserved.total(), ledger.reserved)


def ledger_from_agent(resources: Any) -> Ledger:
    """The ledger an agent reports in its REGISTER (its static and checkpointed ones)."""
    return Ledger(split(resources or [], "agent_info.resources")[1])


def reserved_resources_json(ledger: Ledger) -> dict[str, list[dict[str, Any]]]:
    """``reserved_resources_full`` of ``/master/slaves``: role -> Resource list."""
    out: dict[str, list[dict[str, Any]]] = {}
    for role in sorted(ledger.reserved.roles()):
        out[role] = ledger.reserved.for_role(role).to_json()
    return out


def adopt(agent: Agent, reported: Any, known: Portion | None) -> bool:
    """Set ``agent.ledger`` from a (re-)registration: the static reservations the agent
    reports, and the dynamic ones and volumes the master knew (``known``: from its book or
    registry), else the ones the agent checkpointed. True when the agent's checkpoint must
    be corrected (send it CHECKPOINT_RESOURCES)."""
    try:
        portion = split(reported or [], "agent_info.resources")[1]
    except Exception:  # validated where it came in; never lose the master's record
        portion = Portion()
    static = Portion({k: v for k, v in portion.reserved.items() if k.type != DYNAMIC})
    agent_dynamic = Ledger(portion).dynamic()
    dynamic = agent_dynamic if known is None else known
    # A volume on statically reserved disk, or a refinement of a static reservation, is
    # carved out of that reservation: give the agent's back to it, then carve out the
    # ones that stay.
    static = (static + carved_from_static(agent_dynamic)) - carved_from_static(dynamic)
    agent.ledger = Ledger(static + dynamic)
    return dynamic != agent_dynamic


def known_portion(resources: Any) -> Portion:
    """The dynamic reservations and volumes in a registry record's ``resources``."""
    return Ledger(portion_of(resources)).dynamic()


def reserved_by_role(ledger: Ledger) -> dict[str, Resources]:
    """All of the agent's reserved resources (volumes included) per role, as bags."""
    out: dict[str, Resources] = {}
    for role in ledger.reserved.roles():
        out[role] = ledger.reserved.for_role(role).total()
    return out
