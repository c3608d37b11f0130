"""The hierarchical DRF allocator, stage 2 of Mesos's ``__generateOffers``.

``allocate(snapshot, now, rng) -> Allocation`` is a pure function: it reads a frozen
:class:`~mesonb.allocator.snapshot.Snapshot`, never the clock, the network or the disk,
and changes none of its inputs. The master turns the decisions into offers.

::

    agents (shuffled with rng)            role sorter: (share, role), lowest first
    ┌────┬────┬────┬────┐                 ┌───────────────┬───────────────┐
    │ a7 │ a2 │ a9 │ .. │                 │ (0.10, "dev") │ (0.40, "prd") │
    └─┬──┴────┴────┴────┘                 └──────┬────────┴───────┬───────┘
      │ one agent at a time                      │ per role: framework sorter
      ▼                                          ▼                ▼
    available empty? ──yes──► nothing_available  (0.05,"f1")     (0.30,"f3")
      │ no                                       (0.08,"f2")     (0.41,"f4")
      ▼
    for role in role order:                      suppressed frameworks are not in
      for framework in the role's order:         the sorters at all
        below its min_allocatable? ──► skip (below_min_allocatable)
        refuse filter covers it?   ──► skip (filtered)
        otherwise: OFFER the agent's whole `available` to (framework, role),
                   add it to the framework's and the role's allocation, move
                   both in their sorters (bisect + insort), next agent
    frameworks not asked for this agent ──► lost_to_lower_share

Updating the shares after every agent is what spreads one run's offers across
frameworks: the next agent sees the framework that just received one further back.
A framework in several roles (MULTI_ROLE) sits in each role's sorter; the decision names
the role. Resources reserved to a role (``AgentView.reserved``) are offered first, to the
lowest-share framework of that role alone (``_offer_reserved``); when the unreserved
stage then picks the same framework and role, both go in one offer.

Cost per agent: one list walk that stops at the first eligible framework (usually the
first one), two incremental sorter updates and one decision. An event-triggered run
passes only the agents that changed and the full cluster ``total``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from mesonb.protocol.resources import EMPTY, Resources

from .explain import (
    BELOW_MIN_ALLOCATABLE,
    BUCKETS,
    FILTERED,
    LOST_TO_LOWER_SHARE,
    NOTHING_AVAILABLE,
    OFFERED,
    QUOTA_LIMIT,
    SUPPRESSED,
    WhyNot,
    empty_counts,
)
from .filters import MinAllocatable
from .quota import QuotaHeadroom
from .single import allocate_single
from .snapshot import AgentView, Filter, FrameworkView, Snapshot
from .sorter import DRFSorter, dominant_share, fractions


@dataclass(frozen=True, slots=True)
class OfferDecision:
    """Offer all of ``resources`` (one agent's available) to one framework in one role."""

    framework_id: str
    agent_id: str
    role: str
    resources: Resources
    reserved: Resources = EMPTY  # the part of ``resources`` reserved (to ``role`` or above)
    # the roles whose reservations ``reserved`` holds: ``role`` itself or ancestors of it
    # (Mesos offers a role's reservation to its sub-roles too); empty: ``(role,)``
    reserved_roles: tuple[str, ...] = ()


@dataclass(slots=True)
class Allocation:
    """What one run decided: the offers to make, and the why-not counters."""

    offers: list[OfferDecision] = field(default_factory=list)
    why_not: WhyNot = field(default_factory=WhyNot)


class _Fw:
    """Per-run bookkeeping for one framework that takes part (not fully suppressed)."""

    __slots__ = ("counts", "filters", "gpu_aware", "last_agent", "min_index")

    def __init__(self, filters: Mapping[str, Filter] | None, min_index: int,
                 gpu_aware: bool = True) -> None:
        self.filters = filters  # None when it has no filters: skip the lookup
        self.min_index = min_index
        self.gpu_aware = gpu_aware
        self.counts = empty_counts()
        # Index of the last agent it turned down. Minimum and filters do not depend on
        # the role, so a framework that turned an agent down in one of its roles would
        # in all of them: it is asked (and counted) once per agent.
        self.last_agent = -1


def _split_by_role(view: FrameworkView, roles: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Scalars held per role: ``allocated_by_role`` if given, else ``allocated`` spread."""
    if view.allocated_by_role:
        return {r: dict(view.allocated_by_role.get(r, EMPTY).scalars) for r in roles}
    part = 1.0 / len(roles)
    return {r: {k: v * part for k, v in view.allocated.scalars.items()} for r in roles}


_NO_MERGE: dict[tuple[str, str], int] = {}  # shared, never written: no reservations


def _candidates(reserved_role: str, framework_sorters: dict[str, DRFSorter],
                role_sorter: DRFSorter) -> list[str]:
    """The roles a reservation for ``reserved_role`` may go to, in role order: itself and
    its sub-roles (Mesos's ``Resources::isAllocatableTo``)."""
    prefix = reserved_role + "/"
    if not any(r.startswith(prefix) for r in framework_sorters):
        return [reserved_role] if reserved_role in framework_sorters else []
    return [r for _, r in role_sorter.order if r == reserved_role or r.startswith(prefix)]


def _offer_reserved(agent: AgentView, framework_sorters: dict[str, DRFSorter],
                    role_sorter: DRFSorter, fws: dict[str, _Fw], inv_total: dict[str, float],
                    now: float, offers: list[OfferDecision]) -> dict[tuple[str, str], int]:
    """Offer each role's reservation on ``agent`` to the lowest-share framework, in role
    order, of that role or one of its sub-roles that does not filter it (Mesos offers
    reserved resources to their role and its sub-roles only: ``eng``'s to ``eng/dev``
    too). Returns (framework, role) -> index of its decision in ``offers``, so that a
    second reservation and the unreserved stage add to the same offer."""
    made: dict[tuple[str, str], int] = {}
    for reserved_role in sorted(agent.reserved):
        res = agent.reserved[reserved_role]
        if not res:
            continue
        for role in _candidates(reserved_role, framework_sorters, role_sorter):
            sorter = framework_sorters[role]
            chosen = None
            for _, fid in sorter.order:
                fw = fws[fid]
                flt = fw.filters.get(agent.agent_id) if fw.filters is not None else None
                if flt is None or not flt.applies(res, now):
                    chosen = fid
                    break
            if chosen is None:
                continue
            received = fractions(res.scalars, inv_total)
            sorter.allocated(chosen, received)
            role_sorter.allocated(role, received)
            at = made.get((chosen, role))
            if at is None:
                made[(chosen, role)] = len(offers)
                offers.append(OfferDecision(chosen, agent.agent_id, role, res, res,
                                            (reserved_role,)))
                fws[chosen].counts[OFFERED] += 1
            else:
                earlier = offers[at]
                offers[at] = OfferDecision(chosen, agent.agent_id, role,
                                           earlier.resources + res, earlier.reserved + res,
                                           (*earlier.reserved_roles, reserved_role))
            break
    return made


def allocate(snapshot: Snapshot, now: float, rng: random.Random | None = None) -> Allocation:
    """Decide who is offered each agent's available resources (see the module docstring).

    ``now`` is compared with filters' ``refuse_until``; ``rng`` shuffles the agents
    (default: a fresh ``random.Random()``). Raises ``ValueError`` when two agents or two
    frameworks share an id. One framework in one role and one agent (a notebook's
    cluster) is decided by :func:`.single.allocate_single`, the same way in fewer steps;
    every other snapshot by :func:`allocate_walk`.
    """
    single = allocate_single(snapshot, now)
    if single is not None:
        decisions, why_not = single
        return Allocation([OfferDecision(*d) for d in decisions], why_not)
    return allocate_walk(snapshot, now, rng)


def allocate_walk(snapshot: Snapshot, now: float, rng: random.Random | None = None) -> Allocation:
    """:func:`allocate` of any snapshot: the sorters and the walk over the agents."""
    rng = random.Random() if rng is None else rng
    inv_total = {name: 1.0 / v for name, v in snapshot.total.scalars.items() if v > 0}

    # -- minimum offer sizes: one compiled entry per distinct list ------------------------
    mins: list[MinAllocatable] = [MinAllocatable.of_list(snapshot.min_allocatable)]
    min_index: dict[tuple[Resources, ...], int] = {}

    def min_index_of(view: FrameworkView) -> int:
        if view.min_allocatable is None:
            return 0
        key = tuple(view.min_allocatable)
        if key not in min_index:
            min_index[key] = len(mins)
            mins.append(MinAllocatable.of(key))
        return min_index[key]

    # -- sorters: roles by weighted share, frameworks by share within each role -----------
    role_alloc: dict[str, dict[str, float]] = {}
    active: dict[str, list[tuple[str, dict[str, float]]]] = {}  # role -> [(fid, alloc)]
    fws: dict[str, _Fw] = {}
    all_ids: list[str] = []
    for view in snapshot.frameworks:
        fid = view.framework_id
        all_ids.append(fid)
        roles = view.role_list
        by_role = _split_by_role(view, roles)
        live = [r for r in roles if r not in view.suppressed_roles]
        if live:
            fws[fid] = _Fw(view.filters or None, min_index_of(view), view.gpu_aware)
        for role in roles:
            total = role_alloc.setdefault(role, {})
            for name, value in by_role[role].items():
                total[name] = total.get(name, 0.0) + value
        for role in live:
            active.setdefault(role, []).append((fid, by_role[role]))
    if len(set(all_ids)) != len(all_ids):
        raise ValueError("a framework id appears twice in the snapshot")

    quota = (QuotaHeadroom(snapshot.quota_limits, role_alloc, snapshot.unheld_reserved)
             if snapshot.quota_limits else None)
    role_sorter = DRFSorter(inv_total)
    framework_sorters: dict[str, DRFSorter] = {}
    for role, members in active.items():
        role_sorter.add(role, role_alloc[role], snapshot.weight(role))
        sorter = framework_sorters[role] = DRFSorter(inv_total)
        for fid, alloc in members:
            sorter.add(fid, alloc)

    # -- the walk over the shuffled agents ------------------------------------------------
    agents = list(snapshot.agents)
    if len({a.agent_id for a in agents}) != len(agents):
        raise ValueError("an agent appears twice in the snapshot")
    rng.shuffle(agents)

    offers: list[OfferDecision] = []
    role_order = role_sorter.order
    single_min = mins[0] if len(mins) == 1 else None
    n_empty = 0  # agents with nothing available
    n_small = 0  # agents below every minimum: not walked, below_min for everyone
    n_unoffered = 0  # agents walked that no framework could take

    for index, agent in enumerate(agents):
        avail = agent.available
        merge_into = _NO_MERGE
        if agent.reserved:
            merge_into = _offer_reserved(agent, framework_sorters, role_sorter, fws, inv_total,
                                         now, offers)
        if not avail:
            n_empty += 1
            continue
        if not role_order:
            n_unoffered += 1
            continue
        if single_min is not None:
            if not single_min.met_by(avail):
                n_small += 1
                continue
            min_ok: tuple[bool, ...] = (True,)
        else:
            min_ok = tuple(m.met_by(avail) for m in mins)
            if not any(min_ok):
                n_small += 1
                continue

        agent_id = agent.agent_id
        chosen_role = chosen_fid = None
        offered = avail
        held_back: list[str] | None = None  # frameworks of roles at their quota limit here
        for _, role in role_order:
            if quota is not None:  # clipped to the role's quota headroom; none left: skip
                clipped = quota.clip(role, avail, mins[0])
                if clipped is None:
                    held_back = (held_back or []) + [f for _, f in framework_sorters[role].order]
                    continue
                offered = clipped
            for _, fid in framework_sorters[role].order:
                fw = fws[fid]
                if fw.last_agent == index:  # turned down in another of its roles
                    continue
                if not min_ok[fw.min_index]:
                    reason = BELOW_MIN_ALLOCATABLE
                else:
                    flt = fw.filters.get(agent_id) if fw.filters is not None else None
                    if flt is None or not flt.applies(offered, now):
                        chosen_role, chosen_fid = role, fid
                        break
                    reason = FILTERED
                fw.last_agent = index
                fw.counts[reason] += 1
            if chosen_fid is not None:
                break

        for fid in held_back or ():  # counted once per agent, unless asked in another role
            fw = fws[fid]
            if fw.last_agent != index and fid != chosen_fid:
                fw.last_agent = index
                fw.counts[QUOTA_LIMIT] += 1
        if chosen_fid is None or chosen_role is None:
            n_unoffered += 1
            continue
        if not fws[chosen_fid].gpu_aware and avail.get("gpus"):
            # Mesos: gpus go only to frameworks with the GPU_RESOURCES capability; the
            # others are offered the rest of the agent, its gpus staying free.
            offered = avail - Resources({"gpus": avail.get("gpus")})
        received = fractions(offered.scalars, inv_total)
        framework_sorters[chosen_role].allocated(chosen_fid, received)
        role_sorter.allocated(chosen_role, received)
        if quota is not None:
            quota.consume(chosen_role, offered.scalars)
        at = merge_into.get((chosen_fid, chosen_role)) if merge_into else None
        if at is not None:  # the same framework and role got this agent's reservation
            earlier = offers[at]
            offers[at] = OfferDecision(chosen_fid, agent_id, chosen_role,
                                       earlier.resources + offered, earlier.reserved,
                                       earlier.reserved_roles)
            continue
        offers.append(OfferDecision(chosen_fid, agent_id, chosen_role, offered))
        fws[chosen_fid].counts[OFFERED] += 1

    # -- why-not: fill in the buckets that were counted in bulk ---------------------------
    n_agents = len(agents)
    with_resources = n_agents - n_empty
    per_framework: dict[str, dict[str, int]] = {}
    for fid in all_ids:
        fw_state = fws.get(fid)
        if fw_state is None:
            counts = empty_counts()
            counts[SUPPRESSED] = with_resources
        else:
            counts = fw_state.counts
            counts[BELOW_MIN_ALLOCATABLE] += n_small
            counts[LOST_TO_LOWER_SHARE] = with_resources - sum(
                counts[b] for b in BUCKETS if b != LOST_TO_LOWER_SHARE
            )
        counts[NOTHING_AVAILABLE] = n_empty
        per_framework[fid] = counts

    role_shares = {
        role: role_sorter.share(role)
        if role in role_sorter
        else dominant_share(alloc, inv_total) / snapshot.weight(role)
        for role, alloc in role_alloc.items()
    }
    why_not = WhyNot(
        agents_considered=n_agents,
        frameworks_considered=len(all_ids),
        offers=len(offers),
        agents_unoffered=n_unoffered + n_small,
        frameworks=per_framework,
        role_shares=role_shares,
    )
    return Allocation(offers, why_not)
