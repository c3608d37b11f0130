"""The one-framework, one-agent allocation run (mesonb.allocator.single) decides as the
general walk does (drf.allocate_walk): the same offers and the same why-not counters and
role shares, to the last bit, on random snapshots; and it declines every other case."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from mesonb.allocator import AgentView, Filter, FrameworkView, Snapshot
from mesonb.allocator.drf import allocate, allocate_walk
from mesonb.allocator.single import allocate_single
from mesonb.protocol.resources import EMPTY, Resources

cpus = st.sampled_from([0.0, 0.001, 0.005, 0.01, 0.2, 0.3, 0.45, 1.0, 1.7, 2.0])
mem = st.sampled_from([0.0, 10.0, 31.0, 32.0, 64.0, 512.0, 1024.0, 4096.0])
gpus = st.sampled_from([0.0, 0.0, 1.0, 2.0])
ports = st.sampled_from([(), ((31000, 31009),)])
roles = st.sampled_from([(), ("*",), ("dev",), ("dev", "dev"), ("a", "b")])


@st.composite
def resources(draw: st.DrawFn) -> Resources:
    return Resources({"cpus": draw(cpus), "mem": draw(mem), "gpus": draw(gpus)},
                     {"ports": draw(ports)})


@st.composite
def minimums(draw: st.DrawFn) -> tuple[Resources, ...] | None:
    return draw(st.sampled_from([
        None, (), (Resources({"cpus": 0.01}), Resources({"mem": 32.0})),
        (Resources({"cpus": 0.5}),), (Resources({"mem": 1024.0, "cpus": 0.2}),),
        (Resources(ranges={"ports": [(31000, 31000)]}),)]))


@st.composite
def snapshots(draw: st.DrawFn) -> tuple[Snapshot, float]:
    now = draw(st.sampled_from([0.0, 5.0, 10.0]))
    available = draw(st.one_of(st.just(EMPTY), resources()))
    used = draw(resources())
    agent_id = "ag0"
    agent = AgentView(agent_id, "host0", available, available + used,
                      reserved=draw(st.sampled_from([{}, {}, {"dev": Resources({"cpus": 1.0})}])))
    filters = {}
    if draw(st.booleans()):
        declined = draw(st.sampled_from([available, EMPTY, available + Resources({"cpus": 1.0}),
                                         Resources({"cpus": 0.2})]))
        filters[draw(st.sampled_from([agent_id, "other"]))] = Filter(
            draw(st.sampled_from([3.0, 7.0, 20.0])), declined)
    fw_roles = draw(roles)
    held = draw(resources())
    by_role = draw(st.sampled_from([{}, {"dev": held}, {"*": held, "x": Resources({"mem": 1.0})}]))
    framework = FrameworkView(
        "fw0", fw_roles, held,
        suppressed_roles=frozenset(draw(st.sampled_from([(), (), ("dev",), ("*",)]))),
        filters=filters, min_allocatable=draw(minimums()), allocated_by_role=by_role,
        gpu_aware=draw(st.booleans()))
    frameworks = [framework]
    agents = [agent]
    if draw(st.integers(0, 5)) == 0:  # now and then a second framework or agent
        if draw(st.booleans()):
            frameworks.append(FrameworkView("fw1", ("*",), EMPTY))
        else:
            agents.append(AgentView("ag1", "host1", available, available))
    total = available + used + draw(st.sampled_from([EMPTY, Resources({"disk": 100.0}),
                                                     Resources({"cpus": 3.0})]))
    if draw(st.booleans()):
        total = total - Resources({"gpus": total.get("gpus")})  # gpus with no total
    snapshot = Snapshot(
        agents, frameworks, total,
        role_weights=draw(st.sampled_from([{}, {"dev": 2.5}, {"*": 0.3, "dev": 7.0}])),
        min_allocatable=draw(minimums()) or (),
        quota_limits=draw(st.sampled_from([{}, {}, {}, {"dev": {"cpus": 1.0}}])))
    return snapshot, now


@settings(max_examples=600, deadline=None)
@given(snapshots())
def test_the_single_run_decides_as_the_walk(case: tuple[Snapshot, float]) -> None:
    snapshot, now = case
    walk = allocate_walk(snapshot, now, random.Random(7))
    ours = allocate(snapshot, now, random.Random(7))
    assert ours.offers == walk.offers
    assert ours.why_not == walk.why_not
    assert [type(v) for v in ours.why_not.role_shares.values()] == \
        [type(v) for v in walk.why_not.role_shares.values()]


def test_it_declines_what_it_does_not_decide() -> None:
    avail = Resources({"cpus": 1.0, "mem": 64.0})
    agent = AgentView("ag0", "h", avail, avail)
    one = FrameworkView("fw0", ("*",), EMPTY)
    assert allocate_single(Snapshot([agent], [one], avail), 0.0) is not None
    for snapshot in (
        Snapshot([agent, AgentView("ag1", "h", avail, avail)], [one], avail + avail),
        Snapshot([agent], [one, FrameworkView("fw1", ("*",), EMPTY)], avail),
        Snapshot([agent], [FrameworkView("fw0", ("a", "b"), EMPTY)], avail),
        Snapshot([agent], [FrameworkView("fw0", ("*",), EMPTY, frozenset({"*"}))], avail),
        Snapshot([AgentView("ag0", "h", avail, avail, reserved={"*": avail})], [one], avail),
        Snapshot([agent], [one], avail, quota_limits={"*": {"cpus": 1.0}}),
    ):
        assert allocate_single(snapshot, 0.0) is None


def test_a_run_of_the_common_case_offers_the_agent() -> None:
    avail = Resources({"cpus": 0.6, "mem": 3072.0})
    agent = AgentView("ag0", "h", avail, Resources({"cpus": 2.0, "mem": 4096.0}))
    held = Resources({"cpus": 1.4, "mem": 1024.0})
    snapshot = Snapshot([agent], [FrameworkView("fw0", ("*",), held)], agent.total)
    result = allocate(snapshot, 0.0)
    (offer,) = result.offers
    assert (offer.framework_id, offer.agent_id, offer.role) == ("fw0", "ag0", "*")
    assert offer.resources == avail
    assert result.why_not.role_shares == {"*": 1.0}
    assert result.why_not.frameworks["fw0"]["offered"] == 1
