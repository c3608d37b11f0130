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

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.resources import Resources
from mesonb.testing.frameworks import Tracker
from mesonb.testing.processes import ProcessCluster


async def main(args: argparse.Namespace) -> int:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="bench-health-") as tmp:
        cluster = ProcessCluster(Path(tmp), agents=1,
                                 agent_resources="cpus:64;mem:65536;disk:100000").start()
        resources = Resources.parse("cpus:0.01;mem:16").to_json()
        check = {"type": "TCP", "tcp": {"port": port}, "delay_seconds": 0,
                 "interval_seconds": 1, "timeout_seconds": 5, "grace_period_seconds": 60}
        tracker = Tracker([{"name": f"s{i}", "task_id": {"value": f"s{i}"},
                            "command": {"value": "sleep 600"}, "resources": resources,
                            "health_check": check} for i in range(args.tasks)])
        driver = SchedulerDriver(cluster.address, {"user": getpass.getuser(),
                                                   "name": "bench-health"}, tracker)
        tracker.driver = driver
        try:
            await driver.start()
            started = time.monotonic()
            failed = await tracker.until(lambda s: s.get("healthy") is True, args.tasks,
                                         args.timeout)
            if failed:
                print("a task ended:", failed[0].get("message"))
                return 1
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
