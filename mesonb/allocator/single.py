"""The allocation run of the common small case: one framework in one role, one agent.

An event-triggered run of a notebook's cluster (one agent whose task just ended, the
functions framework alone) is this case, several times a second. :func:`allocate_single`
decides it as :func:`mesonb.allocator.drf.allocate` does, step for step and with the
same arithmetic (the same offer, the same why-not counters, the same role share to the
last bit), without building the sorters, the per-framework bookkeeping and the walk
that many frameworks and agents need. It returns None for any other snapshot (several
frameworks or agents, several roles, a suppressed role, reservations, quota), which
``drf.allocate`` then decides itself. tests/unit/test_allocator_single.py compares both
on random snapshots.
"""

from __future__ import annotations

from mesonb.protocol.resources import EMPTY, Resources

from .explain import (
    BELOW_MIN_ALLOCATABLE,
    FILTERED,
    LOST_TO_LOWER_SHARE,
    NOTHING_AVAILABLE,
    OFFERED,
    WhyNot,
    empty_counts,
)
from .filters import MinAllocatable
from .snapshot import Snapshot

Decision = tuple[str, str, str, Resources]  # framework_id, agent_id, role, resources


def allocate_single(snapshot: Snapshot, now: float) -> tuple[list[Decision], WhyNot] | None:
    """``(offers, why_not)`` of the run as ``drf.allocate`` decides it, each offer the
    fields of its ``OfferDecision`` (nothing reserved); None when the snapshot is not
    the one-framework, one-role, one-agent case (see the module docstring)."""
    frameworks, agents = snapshot.frameworks, snapshot.agents
    if len(frameworks) != 1 or len(agents) != 1 or snapshot.quota_limits:
        return None
    view, agent = frameworks[0], agents[0]
    roles = view.role_list
    if len(roles) != 1 or agent.reserved:
        return None
    role = roles[0]
    if role in view.suppressed_roles:
        return None
    inv_total = {name: 1.0 / v for name, v in snapshot.total.scalars.items() if v > 0}
    # what the framework holds in its role, as drf's _split_by_role and role sorter read it
    if view.allocated_by_role:
        held = view.allocated_by_role.get(role, EMPTY).scalars
    else:
        held = {k: v * 1.0 for k, v in view.allocated.scalars.items()}
    alloc = {name: value * inv_total[name] for name, value in held.items() if name in inv_total}
    dominant = max(alloc.values(), default=0.0)

    counts = empty_counts()
    offers: list[Decision] = []
    n_empty = n_small = n_unoffered = 0
    avail = agent.available
    if not avail:
        n_empty = 1
    else:
        cluster_min = MinAllocatable.of_list(snapshot.min_allocatable)
        if view.min_allocatable is None:
            fits = cluster_min.met_by(avail)
            small = not fits
        else:  # drf: an agent below every list is not walked; else the framework's own
            own = MinAllocatable.of(tuple(view.min_allocatable))
            fits = own.met_by(avail)
            small = not (cluster_min.met_by(avail) or fits)
        if small:
            n_small = 1
        else:
            reason = None
            if not fits:
                reason = BELOW_MIN_ALLOCATABLE
            else:
                flt = view.filters.get(agent.agent_id) if view.filters else None
                if flt is not None and flt.applies(avail, now):
                    reason = FILTERED
            if reason is not None:
                counts[reason] += 1
                n_unoffered = 1
            else:
                offered = avail
                if not view.gpu_aware and avail.get("gpus"):
                    offered = avail - Resources({"gpus": avail.get("gpus")})
                for name, value in offered.scalars.items():  # DRFSorter.allocated
                    if name in inv_total:
                        share = alloc.get(name, 0.0) + value * inv_total[name]
                        alloc[name] = share
                        if share > dominant:
                            dominant = share
                offers.append((view.framework_id, agent.agent_id, role, offered))
                counts[OFFERED] += 1

    with_resources = 1 - n_empty
    counts[BELOW_MIN_ALLOCATABLE] += n_small
    counts[LOST_TO_LOWER_SHARE] = with_resources - sum(counts.values())  # (it is at 0)
    counts[NOTHING_AVAILABLE] = n_empty
    why_not = WhyNot(
        agents_considered=1,
        frameworks_considered=1,
        offers=len(offers),
        agents_unoffered=n_unoffered + n_small,
        frameworks={view.framework_id: counts},
        role_shares={role: dominant / snapshot.weight(role)},
    )
    return offers, why_not
