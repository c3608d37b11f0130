"""The CFS cap: a busy loop with ``cpus`` 0.5 gets half a core over 10 s.

A real ``mesonb master`` and one real ``mesonb agent`` process (cgroups v1 as root here);
a framework launches one command task ``while :; do :; done`` asking for ``--cpus`` 0.4
(the agent adds the command executor's 0.1 on top: a 0.5-core cap with
``--cgroups-enable-cfs``, the default here) and the script reads the task's CPU time from
the agent's ``/monitor/statistics`` over ``--seconds``. Goal (issue 16): 0.5 ± 0.05 of a
core. On a loaded machine the loop may get less than its cap, never more.

    python bench/bench_cpu_cap.py [--cpus 0.4] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.resources import Resources
from mesonb.testing.frameworks import Tracker
from mesonb.testing.processes import ProcessCluster, get_json


async def sample(agent_url: str) -> tuple[float, float, float]:
    """The busy task's CPU seconds, when they were measured, and its ``cpus_limit``. The
    agent answers with its last sample and refreshes it in the background when it is
    over 0.5 s old: a second request 0.6 s later gets a fresh one."""
    stats: dict[str, Any] = {}
    for _ in range(2):
        (entry,) = [e for e in get_json(agent_url + "/monitor/statistics")
                    if e["executor_id"] == "busy"]
        stats = entry["statistics"]
        await asyncio.sleep(0.6)
    return (stats["cpus_user_time_secs"] + stats["cpus_system_time_secs"],
            stats["timestamp"], stats["cpus_limit"])


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp:
        cluster = ProcessCluster(Path(tmp), agents=1).start()
        tracker = Tracker([{
            "name": "busy", "task_id": {"value": "busy"},
            "command": {"value": "while :; do :; done"},
            "resources": Resources.parse(f"cpus:{args.cpus};mem:32").to_json()}])
        driver = SchedulerDriver(cluster.address, {"user": getpass.getuser(),
                                                   "name": "bench-cpu-cap"}, tracker)
        tracker.driver = driver
        try:
            await driver.start()
            if await tracker.until(lambda s: s["state"] == "TASK_RUNNING", 1, 60):
                print("the busy loop ended:", tracker.last("busy").get("message"))
                return 1
            url = cluster.agents[0].url
            first, t0, limit = await sample(url)
            await asyncio.sleep(args.seconds)  # a rate over a window
            last, t1, _ = await sample(url)
            rate = (last - first) / (t1 - t0)
            print(f"busy loop with cpus {args.cpus} (cpus_limit {limit:g}): {rate:.3f} of a "
                  f"core over {t1 - t0:.1f} s; load average {os.getloadavg()[0]:.1f} on "
                  f"{os.cpu_count()} cores; goal {limit:g} ± 0.05")
            return 0
        finally:
            await driver.stop(teardown=True)
            cluster.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=float, default=0.4)
    parser.add_argument("--seconds", type=float, default=10.0)
    sys.exit(asyncio.run(main(parser.parse_args())))
