"""The pure DRF allocator: fairness, weights, filters, suppression, minimum offer size,
multi-role frameworks, event-triggered runs, purity and the why-not counters."""

from __future__ import annotations

import copy
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mesonb.allocator import (
    DEFAULT_MIN_ALLOCATABLE,
    AgentView,
    Allocation,
    Filter,
    FrameworkView,
    Snapshot,
    WhyNot,
    allocate,
)
from mesonb.allocator.explain import BUCKETS
from mesonb.protocol.resources import Resources

R = Resources.parse
ROOT = Path(__file__).resolve().parents[2]


def agent(agent_id: str, available: str = "cpus:4;mem:4096", total: str | None = None):
    return AgentView(agent_id, f"{agent_id}.example", R(available), R(total or available))


def fw(framework_id: str, *roles: str, allocated: str = "", **kw) -> FrameworkView:
    return FrameworkView(framework_id, roles or ("*",), R(allocated), **kw)


def snap(agents, frameworks, total: str | None = None, **kw) -> Snapshot:
    cluster = R(total) if total else sum((a.total for a in agents), Resources())
    return Snapshot(agents, frameworks, cluster, **kw)


def run(snapshot: Snapshot, now: float = 0.0, seed: int = 1) -> Allocation:
    return allocate(snapshot, now, random.Random(seed))


def given(allocation: Allocation) -> dict[str, str]:
    """agent_id -> framework_id."""
    return {o.agent_id: o.framework_id for o in allocation.offers}


# -- DRF ---------------------------------------------------------------------------------


def test_lower_dominant_share_gets_the_agent():
    # f1 holds little CPU but half the memory (dominant 0.5); f2 holds 40% of the CPUs.
    s = snap(
        [agent("a1", "cpus:2;mem:2048")],
        [fw("f1", allocated="cpus:1;mem:5120"), fw("f2", allocated="cpus:4")],
        total="cpus:10;mem:10240",
    )
    assert given(run(s)) == {"a1": "f2"}


def test_the_whole_available_is_offered():
    s = snap([agent("a1", "cpus:3;mem:100;ports:[31000-31005]")], [fw("f1")])
    [offer] = run(s).offers
    assert offer.resources == R("cpus:3;mem:100;ports:[31000-31005]")
    assert (offer.framework_id, offer.agent_id, offer.role) == ("f1", "a1", "*")


def test_ties_are_broken_by_name():
    s = snap([agent("a1")], [fw("fb"), fw("fa")])
    assert given(run(s)) == {"a1": "fa"}


@pytest.mark.parametrize("n_frameworks", [2, 3, 7])
def test_offers_spread_across_frameworks_within_one_run(n_frameworks):
    agents = [agent(f"a{i}") for i in range(21)]
    frameworks = [fw(f"f{j}") for j in range(n_frameworks)]
    counts = Counter(given(run(snap(agents, frameworks))).values())
    assert sum(counts.values()) == 21
    assert max(counts.values()) - min(counts.values()) <= 1
    assert len(counts) == n_frameworks


def test_weights_shift_the_role_order():
    agents = [agent("a1", "cpus:1;mem:1024")]
    frameworks = [fw("f1", "heavy", allocated="cpus:3"), fw("f2", "light", allocated="cpus:2")]
    total = "cpus:10;mem:10240"
    assert given(run(snap(agents, frameworks, total))) == {"a1": "f2"}
    weighted = snap(agents, frameworks, total, role_weights={"heavy": 3.0})
    assert given(run(weighted)) == {"a1": "f1"}  # 0.3 / 3 = 0.1 < 0.2


def test_weights_split_a_run_in_proportion():
    agents = [agent(f"a{i}") for i in range(40)]
    frameworks = [fw("f1", "big"), fw("f2", "small")]
    counts = Counter(given(run(snap(agents, frameworks, role_weights={"big": 3.0}))).values())
    assert counts == {"f1": 30, "f2": 10}


def test_role_share_counts_every_framework_in_the_role():
    # Role "crowd" holds 0.5 in total although f1 alone holds only 0.1.
    frameworks = [
        fw("f1", "crowd", allocated="cpus:1"),
        fw("f2", "crowd", allocated="cpus:4", suppressed_roles=frozenset({"crowd"})),
        fw("f3", "alone", allocated="cpus:2"),
    ]
    s = snap([agent("a1", "cpus:1;mem:64")], frameworks, total="cpus:10;mem:1000")
    assert given(run(s)) == {"a1": "f3"}
    assert run(s).why_not.role_shares == {"crowd": 0.5, "alone": pytest.approx(0.3)}


def test_frameworks_in_a_role_are_ordered_by_their_own_share():
    frameworks = [fw("f1", "r", allocated="cpus:3"), fw("f2", "r", allocated="cpus:1")]
    s = snap([agent("a1")], frameworks, total="cpus:10;mem:10000")
    assert given(run(s)) == {"a1": "f2"}


def test_resources_without_a_cluster_total_do_not_count():
    # "gpus" is not in the total, so f1's many GPUs do not raise its share.
    frameworks = [fw("f1", allocated="gpus:8"), fw("f2", allocated="cpus:1")]
    s = snap([agent("a1")], frameworks, total="cpus:10;mem:10000")
    assert given(run(s)) == {"a1": "f1"}


# -- filters -----------------------------------------------------------------------------


def test_filter_hides_the_agent_until_it_expires():
    declined = R("cpus:4;mem:4096")
    frameworks = [
        fw("f1", filters={"a1": Filter(refuse_until=10.0, resources=declined)}),
        fw("f2", allocated="cpus:1"),
    ]
    s = snap([agent("a1")], frameworks, total="cpus:10;mem:10000")
    before = run(s, now=9.9)
    assert given(before) == {"a1": "f2"}
    assert before.why_not.for_framework("f1")["filtered"] == 1
    assert given(run(s, now=10.0)) == {"a1": "f1"}  # refuse_until reached: expired


def test_filter_does_not_apply_when_more_became_free():
    frameworks = [fw("f1", filters={"a1": Filter(100.0, R("cpus:1;mem:1024"))})]
    s = snap([agent("a1", "cpus:2;mem:1024")], frameworks)
    assert given(run(s)) == {"a1": "f1"}


def test_filter_applies_when_the_same_or_less_is_free():
    for free in ("cpus:4;mem:4096", "cpus:1;mem:4096", "cpus:4"):
        frameworks = [fw("f1", filters={"a1": Filter(100.0, R("cpus:4;mem:4096"))})]
        allocation = run(snap([agent("a1", free)], frameworks))
        assert allocation.offers == [], free
        assert allocation.why_not.agents_unoffered == 1


def test_filter_is_per_agent():
    frameworks = [fw("f1", filters={"a1": Filter(100.0, R("cpus:4;mem:4096"))})]
    assert given(run(snap([agent("a1"), agent("a2")], frameworks))) == {"a2": "f1"}


# -- suppression -------------------------------------------------------------------------


def test_suppressed_framework_is_skipped():
    frameworks = [
        fw("f1", "r", suppressed_roles=frozenset({"r"})),
        fw("f2", "r", allocated="cpus:4"),
    ]
    allocation = run(snap([agent("a1"), agent("a2", "")], frameworks, total="cpus:8;mem:8192"))
    assert given(allocation) == {"a1": "f2"}
    assert allocation.why_not.for_framework("f1")["suppressed"] == 1
    assert allocation.why_not.for_framework("f1")["nothing_available"] == 1


def test_suppression_is_per_role():
    frameworks = [fw("f1", "a", "b", suppressed_roles=frozenset({"a"}))]
    allocation = run(snap([agent("a1"), agent("a2")], frameworks))
    assert {o.role for o in allocation.offers} == {"b"}
    assert len(allocation.offers) == 2


def test_all_suppressed_means_no_offers():
    frameworks = [fw("f1", "a", "b", suppressed_roles=frozenset({"a", "b"}))]
    allocation = run(snap([agent("a1")], frameworks))
    assert allocation.offers == []
    assert allocation.why_not.agents_unoffered == 1


# -- minimum offer size ------------------------------------------------------------------


def test_agent_below_min_allocatable_is_not_offered():
    allocation = run(snap([agent("a1", "cpus:0.005;mem:10")], [fw("f1")]))
    assert allocation.offers == []
    assert allocation.why_not.for_framework("f1")["below_min_allocatable"] == 1


@pytest.mark.parametrize("free", ["cpus:0.01", "mem:32", "cpus:0.005;mem:32", "disk:1;cpus:1"])
def test_any_one_minimum_quantity_is_enough(free):
    assert given(run(snap([agent("a1", free)], [fw("f1")]))) == {"a1": "f1"}


def test_cluster_min_allocatable_can_be_changed_or_removed():
    tiny = [agent("a1", "cpus:0.005;mem:10")]
    assert run(snap(tiny, [fw("f1")], min_allocatable=())).offers != []
    big = (R("cpus:2;mem:1024"),)
    assert run(snap([agent("a1", "cpus:1;mem:4096")], [fw("f1")], min_allocatable=big)).offers == []


def test_framework_min_allocatable_overrides_the_cluster_default():
    frameworks = [
        fw("picky", min_allocatable=(R("cpus:8"),)),
        fw("easy", allocated="cpus:2"),
        fw("any", allocated="cpus:3", min_allocatable=()),
    ]
    agents = [agent("small", "cpus:1;mem:1024"), agent("tiny", "cpus:0.001")]
    allocation = run(snap(agents, frameworks, total="cpus:16;mem:16384"))
    assert given(allocation) == {"small": "easy", "tiny": "any"}
    picky = allocation.why_not.for_framework("picky")
    assert picky["below_min_allocatable"] == 2
    assert (R("cpus:0.01"), R("mem:32")) == DEFAULT_MIN_ALLOCATABLE


# -- roles -------------------------------------------------------------------------------


def test_multi_role_framework_is_offered_in_its_least_served_role():
    frameworks = [fw("multi", "a", "b"), fw("other", "a", allocated="cpus:5")]
    allocation = run(snap([agent("a1")], frameworks, total="cpus:10;mem:10000"))
    [offer] = allocation.offers
    assert (offer.framework_id, offer.role) == ("multi", "b")


def test_multi_role_framework_takes_part_in_each_role():
    # Both roles start at 0 and trade agents; in each role "multi" competes with one
    # single-role framework on its allocation *in that role*.
    agents = [agent(f"a{i}") for i in range(6)]
    frameworks = [fw("multi", "a", "b"), fw("x", "a"), fw("y", "b")]
    offers = run(snap(agents, frameworks)).offers
    assert Counter((o.framework_id, o.role) for o in offers) == {
        ("multi", "a"): 2,
        ("multi", "b"): 2,
        ("x", "a"): 1,
        ("y", "b"): 1,
    }


def test_allocated_by_role_feeds_the_role_shares():
    frameworks = [
        fw(
            "multi",
            "a",
            "b",
            allocated="cpus:6",
            allocated_by_role={"a": R("cpus:6")},
        ),
        fw("other", "b", allocated="cpus:1"),
    ]
    s = snap([agent("a1")], frameworks, total="cpus:10;mem:10000")
    allocation = run(s)
    # role b (0.1) is lowest; within b, "multi" holds nothing in b and goes first;
    # why_not.role_shares are those after the run (b received a1's cpus:4)
    assert allocation.why_not.role_shares == pytest.approx({"a": 0.6, "b": 0.5})
    assert [(o.framework_id, o.role) for o in allocation.offers] == [("multi", "b")]


def test_multi_role_allocation_without_a_split_is_shared_evenly():
    frameworks = [fw("multi", "a", "b", allocated="cpus:4")]
    allocation = run(snap([], frameworks, total="cpus:10;mem:10000"))
    assert allocation.why_not.role_shares == {"a": 0.2, "b": 0.2}


def test_framework_without_roles_is_in_star():
    view = FrameworkView("f1", (), Resources())
    assert run(snap([agent("a1")], [view])).offers[0].role == "*"


# -- event-triggered runs ----------------------------------------------------------------


def test_event_triggered_run_offers_only_the_given_agents_with_cluster_shares():
    everyone = [agent(f"a{i}") for i in range(10)]
    total = sum((a.total for a in everyone), Resources())  # cpus:40;mem:40960
    frameworks = [fw("f1", allocated="cpus:8"), fw("f2", allocated="mem:4096;cpus:1")]
    changed = [everyone[3]]
    allocation = run(Snapshot(changed, frameworks, total))
    assert given(allocation) == {"a3": "f2"}  # f1 at 0.2, f2 at 0.1 of the cluster
    assert allocation.why_not.agents_considered == 1
    # Shares are measured against the total passed, never against the agents passed.
    flipped = Snapshot(changed, frameworks, R("cpus:40;mem:4096"))
    assert given(run(flipped)) == {"a3": "f1"}  # f1 at 0.2, f2 at 1.0


# -- purity and inputs -------------------------------------------------------------------


def test_inputs_are_not_mutated():
    agents = [agent(f"a{i}") for i in range(20)] + [agent("empty", "")]
    frameworks = [
        fw("f1", "a", "b", allocated="cpus:1", filters={"a1": Filter(5.0, R("cpus:4;mem:4096"))}),
        fw("f2", "b", suppressed_roles=frozenset({"b"})),
        fw("f3", "c", min_allocatable=(R("cpus:2"),), allocated_by_role={"c": R("mem:5")}),
    ]
    s = snap(agents, frameworks, role_weights={"a": 2.0})
    before = copy.deepcopy(s)
    agent_order = list(s.agents)
    run(s)
    assert s == before
    assert list(s.agents) == agent_order


def test_same_seed_same_decisions_and_the_agents_are_shuffled():
    agents = [agent(f"a{i:02}") for i in range(50)]
    s = snap(agents, [fw("f1"), fw("f2")])
    assert run(s, seed=3).offers == run(s, seed=3).offers
    orders = {tuple(o.agent_id for o in run(s, seed=seed).offers) for seed in range(5)}
    assert len(orders) > 1


def test_default_rng_works():
    assert len(allocate(snap([agent("a1")], [fw("f1")]), 0.0).offers) == 1


def test_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match="agent"):
        run(snap([agent("a1"), agent("a1")], [fw("f1")]))
    with pytest.raises(ValueError, match="framework"):
        run(snap([agent("a1")], [fw("f1"), fw("f1")]))


def test_weights_must_be_positive():
    with pytest.raises(ValueError, match="weight"):
        snap([], [], role_weights={"r": 0.0})


def test_empty_cluster_and_no_frameworks():
    assert run(snap([], [])).offers == []
    allocation = run(snap([agent("a1")], []))
    assert allocation.offers == [] and allocation.why_not.agents_unoffered == 1
    no_total = Snapshot([agent("a1")], [fw("f1")], Resources())
    assert given(run(no_total)) == {"a1": "f1"}


def test_allocator_imports_no_clock_io_or_daemon_libraries():
    code = (
        "import sys, mesonb.allocator\n"
        "bad = {'tornado', 'kazoo', 'psutil', 'socket', 'asyncio', 'mesonb.master'}\n"
        "print(sorted(bad & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
    for path in (ROOT / "mesonb" / "allocator").glob("*.py"):
        text = path.read_text()
        assert "import time" not in text and "datetime" not in text, path


# -- why-not counters --------------------------------------------------------------------


def test_why_not_counts_every_agent_once_per_framework():
    agents = [
        agent("empty", ""),
        agent("tiny", "cpus:0.001;mem:1"),
        agent("big", "cpus:8;mem:8192"),
        agent("mid", "cpus:2;mem:2048"),
    ]
    frameworks = [
        fw("first", allocated="cpus:0.5", filters={"big": Filter(50.0, R("cpus:8;mem:8192"))}),
        fw("second", allocated="cpus:3"),
        fw("asleep", suppressed_roles=frozenset({"*"})),
    ]
    allocation = run(snap(agents, frameworks, total="cpus:20;mem:20480"), now=1.0)
    assert given(allocation) == {"big": "second", "mid": "first"}
    why = allocation.why_not
    assert why.agents_considered == 4
    assert why.frameworks_considered == 3
    assert why.offers == 2
    assert why.agents_unoffered == 1  # tiny
    zero = dict.fromkeys(BUCKETS, 0)
    assert why.frameworks["first"] == {
        **zero,
        "offered": 1,
        "filtered": 1,
        "below_min_allocatable": 1,
        "nothing_available": 1,
    }
    # "first" stays below "second" whatever the agent order, so "second" is never
    # asked for "mid"
    assert why.frameworks["second"] == {
        **zero,
        "offered": 1,
        "below_min_allocatable": 1,
        "nothing_available": 1,
        "lost_to_lower_share": 1,
    }
    assert why.frameworks["asleep"] == {**zero, "suppressed": 3, "nothing_available": 1}
    for counts in why.frameworks.values():
        assert sum(counts.values()) == why.agents_considered


def test_why_not_multi_role_framework_counted_once_per_agent():
    # "m" is filtered on a1 in both of its roles: one "filtered", not two.
    frameworks = [fw("m", "a", "b", filters={"a1": Filter(9.0, R("cpus:4;mem:4096"))})]
    why = run(snap([agent("a1")], frameworks)).why_not
    assert why.frameworks["m"]["filtered"] == 1
    assert sum(why.frameworks["m"].values()) == 1


def test_why_not_json_round_trip_and_explain():
    frameworks = [
        fw("f1", filters={"a1": Filter(9.0, R("cpus:4;mem:4096"))}),
        fw("f2", allocated="cpus:8"),
    ]
    why = run(snap([agent("a1"), agent("a2")], frameworks)).why_not
    data = why.to_json()
    assert WhyNot.from_json(data) == why
    assert data["frameworks"]["f1"]["filtered"] == 1
    text = why.explain("f1")
    assert text.startswith("f1: offered 1 of 2 agents")
    assert "refuse_seconds" in text
    assert why.for_framework("nobody") == dict.fromkeys(BUCKETS, 0)
