"""Hypothesis properties of the DRF allocator over random clusters.

Checked on every generated snapshot: offers never exceed what is available, an agent is
offered at most once, never to a suppressed role, a filtered agent or below the
framework's minimum; every agent that some framework could take is taken; each offer
went to a role and framework that came first in DRF order at that moment (replayed from
the offers); the why-not counters add up; nothing passed in is changed.
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from mesonb.allocator import AgentView, Filter, FrameworkView, Snapshot, allocate
from mesonb.allocator.explain import BUCKETS
from mesonb.allocator.filters import MinAllocatable
from mesonb.protocol.resources import Resources

ROLES = ("a", "b", "c")
EPS = 1e-9

cpus = st.sampled_from([0.0, 0.001, 0.005, 0.01, 0.5, 1.0, 2.0, 4.0])
mem = st.sampled_from([0.0, 10.0, 31.0, 32.0, 512.0, 4096.0])
ports = st.sampled_from([(), ((31000, 31009),), ((31000, 31000), (31005, 31009))])


@st.composite
def resources(draw: st.DrawFn) -> Resources:
    return Resources({"cpus": draw(cpus), "mem": draw(mem)}, {"ports": draw(ports)})


@st.composite
def snapshots(draw: st.DrawFn) -> tuple[Snapshot, float]:
    n_agents = draw(st.integers(0, 10))
    agents = []
    for i in range(n_agents):
        available = draw(resources())
        used = Resources({"cpus": draw(cpus), "mem": draw(mem)})
        agents.append(AgentView(f"ag{i}", f"host{i}", available, available + used))
    now = draw(st.sampled_from([0.0, 5.0, 10.0]))
    frameworks = []
    for j in range(draw(st.integers(0, 5))):
        roles = tuple(draw(st.lists(st.sampled_from(ROLES), min_size=1, max_size=3)))
        suppressed = frozenset(draw(st.lists(st.sampled_from(ROLES), max_size=2)))
        filters = {}
        for a in draw(st.lists(st.sampled_from(agents), max_size=4)) if agents else ():
            kind = draw(st.sampled_from(["same", "more", "less", "other"]))
            declined = {
                "same": a.available,
                "more": a.available + Resources({"cpus": 1.0}),
                "less": a.available - Resources({"cpus": 0.5}),
                "other": draw(resources()),
            }[kind]
            filters[a.agent_id] = Filter(draw(st.sampled_from([0.0, 5.0, 10.0, 99.0])), declined)
        minimum = draw(
            st.sampled_from(
                [None, None, (), (Resources({"cpus": 1.0}),), (Resources({"mem": 512}),)]
            )
        )
        by_role = {}
        if draw(st.booleans()):
            by_role = {r: Resources({"cpus": draw(cpus), "mem": draw(mem)}) for r in set(roles)}
        frameworks.append(
            FrameworkView(
                f"fw{j}",
                roles,
                Resources({"cpus": draw(cpus), "mem": draw(mem)}),
                suppressed,
                filters,
                minimum,
                by_role,
            )
        )
    total = sum((a.total for a in agents), Resources()) + Resources({"cpus": draw(cpus)})
    weights = draw(st.dictionaries(st.sampled_from(ROLES), st.sampled_from([0.5, 1.0, 3.0])))
    cluster_min = draw(st.sampled_from([None, (), (Resources({"cpus": 0.5}),)]))
    extra = {} if cluster_min is None else {"min_allocatable": cluster_min}
    return Snapshot(agents, frameworks, total, weights, **extra), now


def eligible(snapshot: Snapshot, view: FrameworkView, role: str, agent: AgentView, now: float):
    """Could ``view`` be offered ``agent`` in ``role``? (From the definitions, not drf.py.)"""
    if role in view.suppressed_roles or role not in view.role_list:
        return False
    minimum = snapshot.min_allocatable if view.min_allocatable is None else view.min_allocatable
    if minimum and not any(agent.available.contains(q) for q in minimum):
        return False
    if not agent.available:
        return False
    flt = view.filters.get(agent.agent_id)
    return not (
        flt is not None and now < flt.refuse_until and flt.resources.contains(agent.available)
    )


def share(alloc: dict[str, float], total: Resources) -> float:
    return max(
        (v / total.scalars[k] for k, v in alloc.items() if total.scalars.get(k, 0) > 0),
        default=0.0,
    )


def start_allocations(frameworks: Sequence[FrameworkView]) -> dict[tuple[str, str], dict]:
    """(framework_id, role) -> scalars held, as FrameworkView documents the split."""
    out = {}
    for view in frameworks:
        roles = view.role_list
        for role in roles:
            if view.allocated_by_role:
                held = dict(view.allocated_by_role.get(role, Resources()).scalars)
            else:
                held = {k: v / len(roles) for k, v in view.allocated.scalars.items()}
            out[view.framework_id, role] = held
    return out


@settings(max_examples=300, deadline=None)
@given(snapshots(), st.integers(0, 2**32))
def test_offers_are_safe_complete_and_in_drf_order(case, seed):
    snapshot, now = case
    before = copy.deepcopy(snapshot)
    allocation = allocate(snapshot, now, random.Random(seed))
    assert snapshot == before  # inputs untouched

    agents = {a.agent_id: a for a in snapshot.agents}
    views = {f.framework_id: f for f in snapshot.frameworks}
    offers = allocation.offers

    # never the same agent twice; never more than is available
    assert len({o.agent_id for o in offers}) == len(offers)
    for o in offers:
        available = agents[o.agent_id].available
        assert available.contains(o.resources) and o.resources == available
        # never to a suppressed role, a filtered agent, below the minimum
        assert eligible(snapshot, views[o.framework_id], o.role, agents[o.agent_id], now)

    # complete: an agent someone could take is taken
    offered = {o.agent_id for o in offers}
    for a in snapshot.agents:
        takers = [
            (f.framework_id, r)
            for f in snapshot.frameworks
            for r in f.role_list
            if eligible(snapshot, f, r, a, now)
        ]
        assert (a.agent_id in offered) == bool(takers), (a, takers)

    # DRF order, replayed: each offer went to the lowest role, then the lowest framework
    # in it, among those that could take the agent (ties within float noise allowed).
    held = start_allocations(snapshot.frameworks)
    for o in offers:
        a = agents[o.agent_id]

        def role_share(role: str) -> float:
            alloc: Counter[str] = Counter()
            for (_fid, r), h in held.items():
                if r == role:
                    alloc.update(h)
            return share(dict(alloc), snapshot.total) / snapshot.weight(role)

        candidates = [(fid, r) for (fid, r) in held if eligible(snapshot, views[fid], r, a, now)]
        best_role = min(role_share(r) for _, r in candidates)
        assert role_share(o.role) <= best_role + EPS
        in_role = [fid for fid, r in candidates if r == o.role]
        best_fw = min(share(held[fid, o.role], snapshot.total) for fid in in_role)
        assert share(held[o.framework_id, o.role], snapshot.total) <= best_fw + EPS
        got = held[o.framework_id, o.role]
        for k, v in o.resources.scalars.items():
            got[k] = got.get(k, 0.0) + v

    # the why-not counters add up
    why = allocation.why_not
    assert why.agents_considered == len(snapshot.agents)
    assert why.frameworks_considered == len(snapshot.frameworks)
    assert why.offers == len(offers)
    assert why.agents_unoffered == sum(
        1 for a in snapshot.agents if a.available and a.agent_id not in offered
    )
    per_framework = Counter(o.framework_id for o in offers)
    for fid, counts in why.frameworks.items():
        assert set(counts) == set(BUCKETS)
        assert all(v >= 0 for v in counts.values())
        assert sum(counts.values()) == len(snapshot.agents)
        assert counts["offered"] == per_framework[fid]


@settings(max_examples=100, deadline=None)
@given(snapshots(), st.integers(0, 2**32), st.data())
def test_event_triggered_run_offers_only_the_agents_passed(case, seed, data):
    snapshot, now = case
    subset = []
    if snapshot.agents:
        subset = data.draw(st.lists(st.sampled_from(list(snapshot.agents)), unique_by=id))
    part = Snapshot(
        subset,
        snapshot.frameworks,
        snapshot.total,
        snapshot.role_weights,
        snapshot.min_allocatable,
    )
    allocation = allocate(part, now, random.Random(seed))
    assert {o.agent_id for o in allocation.offers} <= {a.agent_id for a in subset}


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.integers(1, 8), st.integers(0, 2**32))
def test_equal_frameworks_share_equal_agents_evenly(n_agents, n_frameworks, seed):
    agent = Resources({"cpus": 4, "mem": 4096})
    agents = [AgentView(f"ag{i}", "h", agent, agent) for i in range(n_agents)]
    frameworks = [FrameworkView(f"fw{j}", ("r",), Resources()) for j in range(n_frameworks)]
    total = Resources({"cpus": 4 * n_agents, "mem": 4096 * n_agents})
    offers = allocate(Snapshot(agents, frameworks, total), 0.0, random.Random(seed)).offers
    counts = Counter(o.framework_id for o in offers)
    assert len(offers) == n_agents
    assert max(counts.values()) - min(counts.get(f.framework_id, 0) for f in frameworks) <= 1


@given(st.lists(resources(), max_size=3), resources())
def test_compiled_minimum_agrees_with_contains(quantities, offerable):
    expected = bool(offerable) and (
        not quantities or any(offerable.contains(q) for q in quantities)
    )
    assert MinAllocatable(quantities).met_by(offerable) == expected


@given(resources(), resources(), st.floats(0, 20), st.floats(0, 20))
def test_filter_applies_exactly_as_documented(declined, offerable, until, now):
    expected = now < until and declined.contains(offerable)
    assert Filter(until, declined).applies(offerable, now) == expected
