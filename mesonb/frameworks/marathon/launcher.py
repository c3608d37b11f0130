"""Matching offers to the instances apps are waiting for (pure: no I/O, no clock reads).

:func:`match` takes the offers and what each app needs (:class:`Demand`) and returns
the task launches per offer, the offers left unused, and for each app why offers did
not fit, in Marathon's reasons (the ``processedOffersSummary`` of ``/v2/queue``):
InsufficientCpus, InsufficientMemory, InsufficientDisk, InsufficientGpus,
InsufficientPorts, UnfulfilledRole, UnfulfilledConstraint, AgentMaintenance,
NoCorrespondingReservationFound, DeclinedScarceResources.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from typing import Any

from .constraints import field_value, offer_meets
from .model import AppDefinition

REASONS = ("UnfulfilledRole", "UnfulfilledConstraint", "NoCorrespondingReservationFound",
           "AgentMaintenance", "InsufficientCpus", "InsufficientMemory", "InsufficientDisk",
           "InsufficientGpus", "InsufficientPorts", "DeclinedScarceResources")
EPS = 1e-6


@dataclasses.dataclass
class Demand:
    """An app waiting for ``count`` more instances; ``placed`` holds the constraint
    fields' values of its live instances (for UNIQUE, MAX_PER, GROUP_BY...)."""

    app: AppDefinition
    count: int
    placed: list[dict[str, str | None]] = dataclasses.field(default_factory=list)
    roles: tuple[str, ...] = ("*",)


@dataclasses.dataclass
class Placement:
    """One instance to launch: the app, the offer's agent and what it takes."""

    app: AppDefinition
    offer_id: str
    agent_id: str
    host: str
    ip: str
    role: str
    ports: list[int]
    fields: dict[str, str | None] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Result:
    placements: list[Placement] = dataclasses.field(default_factory=list)
    unused_offers: list[str] = dataclasses.field(default_factory=list)
    rejections: dict[str, Counter[str]] = dataclasses.field(default_factory=dict)
    # per app: [{"offer": {...}, "reason": [...], "timestamp"}] (lastUnusedOffers)
    unused_detail: dict[str, list[tuple[dict[str, Any], list[str]]]] = dataclasses.field(
        default_factory=dict)


class _Free:
    """What remains of one offer, per role."""

    def __init__(self, offer: dict[str, Any]) -> None:
        self.scalars: dict[str, dict[str, float]] = {}
        self.ports: dict[str, list[tuple[int, int]]] = {}
        for resource in offer.get("resources") or []:
            role = resource.get("role") or "*"
            reservations = resource.get("reservations") or []
            if reservations:
                role = reservations[-1].get("role", role)
            if resource.get("type") == "SCALAR":
                by = self.scalars.setdefault(role, {})
                by[resource["name"]] = by.get(resource["name"], 0.0) \
                    + resource["scalar"]["value"]
            elif resource.get("name") == "ports" and resource.get("type") == "RANGES":
                self.ports.setdefault(role, []).extend(
                    (r["begin"], r["end"]) for r in resource["ranges"]["range"])

    def roles(self) -> list[str]:
        return sorted(set(self.scalars) | set(self.ports))

    def shortfall(self, app: AppDefinition, role: str) -> str | None:
        have = self.scalars.get(role, {})
        if have.get("cpus", 0.0) + EPS < app.cpus:
            return "InsufficientCpus"
        if have.get("mem", 0.0) + EPS < app.mem:
            return "InsufficientMemory"
        if have.get("disk", 0.0) + EPS < app.disk:
            return "InsufficientDisk"
        if have.get("gpus", 0.0) + EPS < app.gpus:
            return "InsufficientGpus"
        if self.pick_ports(app, role, take=False) is None:
            return "InsufficientPorts"
        return None

    def pick_ports(self, app: AppDefinition, role: str, take: bool) -> list[int] | None:
        """Host ports for the app's port definitions (fixed ones with ``requirePorts``),
        in their order; None if the offer lacks them."""
        ranges = self.ports.get(role, [])
        wanted = [int(p.get("port", 0) or 0) for p in app.ports]
        fixed = {w for w in wanted if w and app.require_ports}

        def offered(port: int) -> bool:
            return any(begin <= port <= end for begin, end in ranges)

        def dynamic() -> Any:
            for begin, end in ranges:
                for port in range(begin, end + 1):
                    if port not in fixed:
                        yield port

        source = dynamic()
        chosen: list[int] = []
        for port in wanted:
            if port and app.require_ports:
                if not offered(port) or port in chosen:
                    return None
                chosen.append(port)
            else:
                candidate = next(source, None)
                if candidate is None:
                    return None
                chosen.append(candidate)
        if take and chosen:
            used = set(chosen)
            left: list[tuple[int, int]] = []
            for begin, end in ranges:
                start = begin
                for port in sorted(p for p in used if begin <= p <= end):
                    if start < port:
                        left.append((start, port - 1))
                    start = port + 1
                if start <= end:
                    left.append((start, end))
            self.ports[role] = left
        return chosen

    def take(self, app: AppDefinition, role: str) -> None:
        have = self.scalars.setdefault(role, {})
        for name, amount in (("cpus", app.cpus), ("mem", app.mem), ("disk", app.disk),
                             ("gpus", float(app.gpus))):
            if amount:
                have[name] = have.get(name, 0.0) - amount


def _address(offer: dict[str, Any]) -> str:
    address = (offer.get("url") or {}).get("address") or {}
    return str(address.get("ip") or offer.get("hostname") or "")


def match(offers: list[dict[str, Any]], demands: list[Demand], *,
          max_per_offer: int = 1000, overhead: dict[str, float] | None = None,
          overhead_done: frozenset[str] = frozenset()) -> Result:
    """Place as many waiting instances as the offers hold (see the module docstring).

    Instances are spread: a first pass gives each offer at most its even share of what
    waits, a second fills the offers up to ``max_per_offer`` with the rest (500 instances
    and 4 agents: 125 on each, so the agents start them in parallel). ``overhead`` (e.g.
    a shared executor's cpus and mem) is taken from the first offer of each agent not in
    ``overhead_done``."""
    result = Result()
    waiting = [d for d in demands if d.count > 0]
    known_values: dict[str, set[str]] = {}
    for offer in offers:
        for demand in waiting:
            for constraint in demand.app.constraints:
                value = field_value(constraint[0], offer)
                if value is not None:
                    known_values.setdefault(constraint[0], set()).add(value)
    known = {k: len(v) for k, v in known_values.items()}
    offers = list(offers)
    random.shuffle(offers)  # spread instances over agents
    usable: list[_OfferFill] = []
    for offer in offers:
        free = _Free(offer)
        if overhead and offer["agent_id"]["value"] not in overhead_done:
            role = next((r for r in free.roles()
                         if all(free.scalars.get(r, {}).get(k, 0.0) + EPS >= v
                                for k, v in overhead.items())), None)
            if role is None:
                result.unused_offers.append(offer["id"]["value"])
                continue
            for name, amount in overhead.items():
                free.scalars[role][name] -= amount
        usable.append(_OfferFill(offer, free))
    share = -(-sum(d.count for d in waiting) // max(1, len(usable)))
    for cap in (min(share, max_per_offer), max_per_offer):
        for fill in usable:
            waiting = [d for d in waiting if d.count > 0]
            fill.place(waiting, cap, known, result)
    result.unused_offers.extend(f.offer["id"]["value"] for f in usable if not f.launched)
    return result


class _OfferFill:
    """One offer being filled, over the passes of :func:`match`."""

    def __init__(self, offer: dict[str, Any], free: _Free) -> None:
        self.offer = offer
        self.free = free
        self.launched = 0
        self.refused: set[str] = set()  # apps this offer cannot take another of

    def place(self, waiting: list[Demand], cap: int, known: dict[str, int],
              result: Result) -> None:
        offer, free = self.offer, self.free
        maintenance = bool(offer.get("unavailability"))
        for demand in waiting:
            app = demand.app
            if app.id in self.refused:
                continue
            reasons: list[str] = []
            while demand.count > 0 and self.launched < cap:
                reason = _why_not(app, offer, free, demand, known, maintenance)
                if isinstance(reason, str):
                    reasons.append(reason)
                    break
                role = reason[1]
                ports = free.pick_ports(app, role, take=True) or []
                free.take(app, role)
                demand.count -= 1
                self.launched += 1
                fields = {c[0]: field_value(c[0], offer) for c in app.constraints}
                result.placements.append(Placement(
                    app, offer["id"]["value"], offer["agent_id"]["value"],
                    str(offer.get("hostname", "")), _address(offer), role, ports, fields))
                demand.placed.append(fields)
            if reasons:
                self.refused.add(app.id)
                result.rejections.setdefault(app.id, Counter()).update(reasons)
                result.unused_detail.setdefault(app.id, []).append((offer, reasons))


def _why_not(app: AppDefinition, offer: dict[str, Any], free: _Free, demand: Demand,
             known: dict[str, int], maintenance: bool) -> str | tuple[None, str]:
    """The reason the offer cannot take one more instance, or ``(None, role)`` to use."""
    roles = [r for r in free.roles() if r in demand.roles]
    if not roles:
        return "UnfulfilledRole"
    if maintenance:
        return "AgentMaintenance"
    if app.constraints and not offer_meets(app.constraints, offer, demand.placed, known):
        return "UnfulfilledConstraint"
    if not app.gpus and any(free.scalars.get(r, {}).get("gpus", 0.0) > 0 for r in roles):
        return "DeclinedScarceResources"
    shortfall = "InsufficientCpus"
    for role in roles:
        problem = free.shortfall(app, role)
        if problem is None:
            return (None, role)
        shortfall = problem
    return shortfall


def summary(processed: int, rejections: Counter[str]) -> list[dict[str, Any]]:
    """Marathon's ``rejectSummaryLastOffers``: every reason with its count."""
    return [{"reason": r, "declined": rejections.get(r, 0), "processed": processed}
            for r in REASONS]
