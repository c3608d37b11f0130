"""Measured usage: the agents' psutil figures reach /monitor/statistics and the DataFrames."""

from __future__ import annotations

import sys

import pytest

from mesonb import Cluster
from mesonb.testing.processes import get_json, wait_for

pytestmark = pytest.mark.slow

BUSY = ("import time\n"
        "block = bytearray(80 * 1024 * 1024)\n"  # resident: every page written
        "for i in range(0, len(block), 4096): block[i] = 1\n"
        "end = time.time() + 60\n"
        "while time.time() < end: pass\n")


def test_a_busy_task_shows_as_measured_cpu_and_memory():
    with Cluster.local(agents=1) as cluster:
        run = cluster.run(f"{sys.executable} -c '{BUSY}'", cpus=1, mem=256)
        try:
            def measured():
                agents = cluster.agents()
                row = agents.iloc[0]
                ok = row["cpus_used"] > 0.5 and row["mem_used"] > 70
                return row.to_dict() if ok else None

            row = wait_for(measured, 30, interval=0.3, what="measured usage on the agent")
            assert row["cpus_used"] <= 1.5  # one busy process: about one core
            agent_url = f"http://{row['hostname']}:{int(row['port'])}"
            stats = get_json(agent_url + "/monitor/statistics")
            (entry,) = [s for s in stats if s["statistics"]["cpus_limit"] >= 1]
            assert entry["statistics"]["mem_rss_bytes"] > 70 * 1024 * 1024
            assert entry["statistics"]["cpus_user_time_secs"] > 0
            assert entry["statistics"]["mem_limit_bytes"] >= 256 * 1024 * 1024
        finally:
            run.cancel()
