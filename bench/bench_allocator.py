"""Benchmark the pure allocator in-process, like Mesos's HierarchicalAllocator_BENCHMARK_Test.

Builds snapshots of 1,000 and 10,000 agents with 1, 10 and 100 frameworks (and a few
heavier shapes), runs ``allocate`` on each and prints a table: milliseconds per full
cycle and microseconds per agent (best of several runs). It prints figures and asserts
nothing about speed.

    .venv/bin/python bench/bench_allocator.py [--repeat N] [--quick]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mesonb.allocator import AgentView, Filter, FrameworkView, Snapshot, allocate
from mesonb.protocol.resources import Resources

AGENT = Resources.parse("cpus:16;mem:65536;disk:500000;ports:[31000-32000]")
NOW = 1000.0


def build(
    n_agents: int,
    n_frameworks: int,
    *,
    roles: int = 1,
    declined: bool = False,
    subset: int | None = None,
) -> Snapshot:
    """A cluster of identical agents, part used, and frameworks holding a little each.

    ``roles``: frameworks spread over this many roles. ``declined``: every framework has
    a live filter on every agent (Mesos's DeclineOffers shape: a worst case, every
    framework is asked for every agent). ``subset``: pass only this many agents (an
    event-triggered run) with the full total.
    """
    rng = random.Random(7)
    agents = []
    for i in range(n_agents):
        used = Resources({"cpus": rng.choice([0, 2, 4, 8]), "mem": rng.choice([0, 4096, 8192])})
        agents.append(AgentView(f"agent-{i}", f"host-{i}", AGENT - used, AGENT))
    total = Resources(
        {name: value * n_agents for name, value in AGENT.scalars.items()}, AGENT.ranges
    )
    frameworks = []
    for j in range(n_frameworks):
        filters = {}
        if declined:  # equal to, but not the same object as, what is available now
            filters = {a.agent_id: Filter(NOW + 3600, a.available + Resources()) for a in agents}
        frameworks.append(
            FrameworkView(
                framework_id=f"fw-{j}",
                roles=(f"role-{j % roles}",),
                allocated=Resources({"cpus": rng.uniform(0, 64), "mem": rng.uniform(0, 1 << 18)}),
                filters=filters,
            )
        )
    shown = agents if subset is None else agents[:subset]
    return Snapshot(shown, frameworks, total)


def best_ms(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per shape (best kept)")
    parser.add_argument("--quick", action="store_true", help="skip the heavy shapes")
    args = parser.parse_args()

    shapes: list[tuple[str, int, int, dict]] = [
        (f"{a:,} agents x {f} fw", a, f, {}) for a in (1_000, 10_000) for f in (1, 10, 100)
    ]
    shapes += [
        ("10,000 agents x 100 fw, 10 roles", 10_000, 100, {"roles": 10}),
        ("10,000 agents x 1,000 fw, 100 roles", 10_000, 1_000, {"roles": 100}),
        ("event: 100 of 10,000 agents x 100 fw", 10_000, 100, {"subset": 100}),
    ]
    if not args.quick:
        shapes += [("1,000 agents x 100 fw, all declined", 1_000, 100, {"declined": True})]

    print(f"{'shape':<40} {'offers':>7} {'ms/cycle':>10} {'us/agent':>10}")
    print("-" * 70)
    for label, n_agents, n_frameworks, kw in shapes:
        snapshot = build(n_agents, n_frameworks, **kw)
        result = allocate(snapshot, NOW, random.Random(1))
        ms = best_ms(lambda s=snapshot: allocate(s, NOW, random.Random(1)), args.repeat)
        per_agent = ms * 1000 / len(snapshot.agents)
        print(f"{label:<40} {len(result.offers):>7} {ms:>10.2f} {per_agent:>10.2f}")


if __name__ == "__main__":
    main()
