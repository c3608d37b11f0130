"""What health checks cost the agent: N command tasks, each with a TCP check every second.

A real master and agent process; a framework launches ``--tasks`` ``sleep`` tasks whose
``health_check`` is ``TCP`` against a port this script serves (interval 1 s, no delay),
waits until every task reported ``healthy``, then samples the agent's CPU time over
``--seconds``. The agent runs the checks itself (its command tasks have no executor
process). Goal: 1,000 tasks checked every second for <= 10% of a core.

    python bench/bench_health.py [--tasks 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.resources import Resources
from mesonb.testing.processes import ProcessCluster


class Launcher:
    def __init__(self, count: int, port: int) -> None:
        self.count, self.port = count, port
        self.driver: SchedulerDriver | None = None
        self.launched = False
        self.healthy: set[str] = set()
        self.all_healthy = asyncio.Event()

    async def on_offers(self, offers: list[dict[str, Any]]) -> None:
        assert self.driver is not None
        for offer in offers:
            if self.launched:
                await self.driver.decline([offer["id"]["value"]], 3600)
                continue
            self.launched = True
            resources = Resources.parse("cpus:0.01;mem:16").to_json()
            check = {"type": "TCP", "tcp": {"port": self.port}, "delay_seconds": 0,
                     "interval_seconds": 1, "timeout_seconds": 5, "grace_period_seconds": 60}
            tasks = [{"name": f"s{i}", "task_id": {"value": f"s{i}"},
                      "agent_id": offer["agent_id"], "command": {"value": "sleep 600"},
                      "resources": resources, "health_check": check}
                     for i in range(self.count)]
            await self.driver.launch([offer["id"]["value"]], tasks)

    def on_update(self, status: dict[str, Any]) -> None:
        if status.get("healthy") is True:
            self.healthy.add(status["task_id"]["value"])
            if len(self.healthy) >= self.count:
                self.all_healthy.set()


async def main(args: argparse.Namespace) -> int:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="bench-health-") as tmp:
        cluster = ProcessCluster(Path(tmp), agents=1,
                                 agent_resources="cpus:64;mem:65536;disk:100000").start()
        launcher = Launcher(args.tasks, port)
        driver = SchedulerDriver(cluster.address, {"user": getpass.getuser(),
                                                   "name": "bench-health"}, launcher)
        launcher.driver = driver
        try:
            await driver.start()
            started = time.monotonic()
            await asyncio.wait_for(launcher.all_healthy.wait(), args.timeout)
            print(f"{args.tasks} tasks healthy after {time.monotonic() - started:.1f} s")
            agent = psutil.Process(cluster.agents[0].proc.pid)
            before, t0 = sum(agent.cpu_times()[:2]), time.monotonic()
            await asyncio.sleep(args.seconds)  # sampling the agent's CPU over a window
            used = sum(agent.cpu_times()[:2]) - before
            share = used / (time.monotonic() - t0)
            print(f"agent CPU with {args.tasks} TCP checks/s: {share * 100:.1f}% of a core")
            return 0
        finally:
            await driver.stop(teardown=True)
            cluster.stop()
            server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=300.0)
    sys.exit(asyncio.run(main(parser.parse_args())))
