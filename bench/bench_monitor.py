"""Latency of the agent's usage endpoints with 200 live containers.

A real ``mesonb master`` and one real ``mesonb agent`` process (cgroups v1 as root here,
else whatever ``--isolation`` the agent picks); a framework (the v1 scheduler API) launches
``--containers`` command tasks ``sleep 600`` (cpus 0.01, mem 16), each in a container of its
own, and waits until all are TASK_RUNNING. Then ``--requests`` GETs of each of
``/monitor/statistics`` and ``/containers`` are made one after the other, and ``--spaced``
more 0.6 s apart (past the monitor's 0.5 s sample reuse, as a dashboard polling the agent
would), each checked to list every container; the script prints p50, p99 and the maximum
of each pass. Goal (issue 16): p99 <= 100 ms with 200 containers.

    python bench/bench_monitor.py [--containers 200] [--requests 100]
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.resources import Resources
from mesonb.testing.frameworks import Tracker
from mesonb.testing.processes import ProcessCluster


def timed_get(url: str, expected: int) -> float:
    """Seconds one GET took; AssertionError unless it listed ``expected`` containers."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as answer:
        body = answer.read()
    took = time.perf_counter() - started
    listed = json.loads(body)
    assert len(listed) == expected, f"{url}: {len(listed)} entries, not {expected}"
    return took


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        cluster = ProcessCluster(Path(tmp), agents=1,
                                 agent_resources="cpus:64;mem:65536;disk:100000",
                                 agent_args=["--isolation", args.isolation]).start()
        resources = Resources.parse("cpus:0.01;mem:16").to_json()
        tracker = Tracker([{"name": f"sleep-{i}", "task_id": {"value": f"sleep-{i}"},
                            "command": {"value": "sleep 600"}, "resources": resources}
                           for i in range(args.containers)])
        driver = SchedulerDriver(cluster.address, {"user": getpass.getuser(),
                                                   "name": "bench-monitor"}, tracker)
        tracker.driver = driver
        try:
            await driver.start()
            started = time.monotonic()
            failed = await tracker.until(lambda s: s["state"] == "TASK_RUNNING",
                                         args.containers, args.timeout)
            if failed:
                print("a container failed:", failed[0].get("message"))
                return 1
            print(f"{args.containers} containers running after "
                  f"{time.monotonic() - started:.1f} s; load average "
                  f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
            url = cluster.agents[0].url
            loop = asyncio.get_running_loop()
            worst = 0.0
            passes = [("back to back", args.requests, 0.0),
                      ("0.6 s apart, past the sample reuse", args.spaced, 0.6)]
            for path in ("/monitor/statistics", "/containers"):
                await loop.run_in_executor(None, timed_get, url + path, args.containers)
                for how, count, spacing in passes:
                    timings = []
                    for _ in range(count):
                        await asyncio.sleep(spacing)
                        timings.append(await loop.run_in_executor(
                            None, timed_get, url + path, args.containers))
                    timings.sort()
                    p50, p99 = percentile(timings, 0.5), percentile(timings, 0.99)
                    worst = max(worst, p99)
                    print(f"{path} ({count} requests, {how}): p50 {p50 * 1000:.1f} ms, "
                          f"p99 {p99 * 1000:.1f} ms, max {timings[-1] * 1000:.1f} ms")
            print(f"goal p99 <= 100 ms: {'met' if worst <= 0.1 else 'NOT met'}")
            return 0
        finally:
            await driver.stop(teardown=True)
            cluster.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=200)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--spaced", type=int, default=20, help="requests 0.6 s apart")
    parser.add_argument("--isolation", default="auto")
    parser.add_argument("--timeout", type=float, default=300.0)
    sys.exit(asyncio.run(main(parser.parse_args())))
