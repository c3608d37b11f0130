"""``mesonb demo``: start a local cluster, run real work on it, show what happened, stop.

The work: count the primes below two million in eight slices, each slice a command task
(a real ``python3`` process in a Mesos sandbox on one of the agents), launched by a
framework on the v1 scheduler API from the offers the master makes.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from typing import Any

from mesonb.frameworks.driver import SchedulerDriver
from mesonb.local import LocalCluster
from mesonb.protocol.resources import Resources
from mesonb.protocol.states import TERMINAL_STATE_NAMES

PRIMES = (
    "import sys; lo, hi = map(int, sys.argv[1:3]); "
    "print(sum(all(n % d for d in range(2, int(n ** 0.5) + 1)) for n in range(max(lo, 2), hi)))"
)
TASK = Resources({"cpus": 0.25, "mem": 64})


class PrimeCounter:
    """A framework: one task per slice, placed on whatever offers arrive."""

    def __init__(self, slices: list[tuple[int, int]]) -> None:
        self.todo = {f"primes-{lo}-{hi}": (lo, hi) for lo, hi in slices}
        self.where: dict[str, str] = {}
        self.states: dict[str, str] = {}
        self.done = asyncio.Event()
        self.total = len(self.todo)
        self.driver: SchedulerDriver | None = None

    async def on_offers(self, offers: list[dict[str, Any]]) -> None:
        assert self.driver is not None
        for offer in offers:
            free = Resources.from_json(offer["resources"])
            tasks = []
            while self.todo and free.contains(TASK):
                task_id, (lo, hi) = self.todo.popitem()
                tasks.append({
                    "name": task_id, "task_id": {"value": task_id},
                    "agent_id": offer["agent_id"], "resources": TASK.to_json(),
                    "command": {"shell": False, "value": sys.executable,
                                "arguments": ["python3", "-c", PRIMES, str(lo), str(hi)]},
                })
                free = free - TASK
                self.where[task_id] = offer["hostname"] + " / " + offer["agent_id"]["value"][-3:]
            if tasks:
                await self.driver.launch([offer["id"]["value"]], tasks)
            else:
                await self.driver.decline([offer["id"]["value"]], 60)

    def on_update(self, status: dict[str, Any]) -> None:
        task_id, state = status["task_id"]["value"], status["state"]
        self.states[task_id] = state
        print(f"  {task_id:<26} {state}", flush=True)
        if sum(s in TERMINAL for s in self.states.values()) == self.total:
            self.done.set()


TERMINAL = TERMINAL_STATE_NAMES


async def demo(agents: int, limit: int, slices: int) -> int:
    started = time.perf_counter()
    cluster = LocalCluster(agents, port=0, publish_secret=True)  # secure by default
    await cluster.start()
    try:
        await cluster.wait_ready()
        print(f"local cluster up in {time.perf_counter() - started:.2f}s: master {cluster.url}, "
              f"{agents} agents", flush=True)
        step = limit // slices
        framework = PrimeCounter([(i * step, (i + 1) * step) for i in range(slices)])
        driver = SchedulerDriver(cluster.master_address,
                                 {"user": getpass.getuser(), "name": "prime-counter"}, framework,
                                 secret=cluster.secret)
        framework.driver = driver
        await driver.start()
        await asyncio.wait_for(framework.done.wait(), 300)
        total = 0
        # Each task printed its count to stdout in its sandbox (Mesos's layout).
        pattern = f"agent*/slaves/*/frameworks/{driver.framework_id}/executors/*/runs/latest/stdout"
        for stdout in cluster.work_dir.glob(pattern):
            total += int(stdout.read_text().strip() or 0)
        await driver.stop(teardown=True)
        ok = all(s == "TASK_FINISHED" for s in framework.states.values())
        print(f"{sum(framework.states[t] == 'TASK_FINISHED' for t in framework.states)}/"
              f"{framework.total} tasks finished; primes below {limit:,}: {total:,}")
        print(f"done in {time.perf_counter() - started:.2f}s")
        return 0 if ok else 1
    finally:
        await cluster.stop()


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("demo", help="run real work on a throw-away local cluster",
                              description=__doc__)
    p.add_argument("--agents", type=int, default=2)
    p.add_argument("--limit", type=int, default=2_000_000, help="count primes below this")
    p.add_argument("--slices", type=int, default=8, help="number of tasks")
    p.add_argument("--log-level", default="WARNING")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    return asyncio.run(demo(args.agents, args.limit, args.slices))
