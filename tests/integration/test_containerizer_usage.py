"""Measured usage in Mesos's shapes: /monitor/statistics and /containers, sandbox disk
usage (disk/du) and its quota, and the endpoints' latency with 200 live containers."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from test_containerizer_limits import V1, Harness, reach, task

from mesonb.agent.isolation import ContainerizerConfig
from mesonb.protocol.states import Reason, Source, TaskState

pytestmark = pytest.mark.slow


def run(body: Any, work_dir: Path, config: ContainerizerConfig, timeout: float = 120) -> None:
    async def main() -> None:
        async with Harness(work_dir, config) as harness:
            await asyncio.wait_for(body(harness), timeout)

    asyncio.run(main())


def with_disk(t: Any, mb: float) -> Any:
    t.resources.append({"name": "disk", "type": "SCALAR", "scalar": {"value": mb}})
    return t


WRITE_3MB = "head -c 3145728 /dev/urandom > blob && sleep 60"


def test_statistics_and_containers_in_mesos_shape(tmp_path: Path) -> None:
    async def body(h: Any) -> None:
        m = h.master
        task_id = "writer"
        m.run_task(with_disk(task(task_id, WRITE_3MB, cpus=0.5, mem=64), 10))
        await reach(m, task_id, TaskState.TASK_RUNNING)
        executor = h.executor(task_id)

        async def stats() -> dict[str, Any]:
            (entry,) = json.loads((await h.http("/monitor/statistics")).body)
            return entry

        await m.until(lambda: (executor.directory / "blob").exists()
                      and (executor.directory / "blob").stat().st_size == 3 * 2**20)
        deadline = time.monotonic() + 10
        entry = await stats()
        while entry["statistics"].get("disk_used_bytes", 0) < 3 * 2**20:
            assert time.monotonic() < deadline, entry
            await asyncio.sleep(0.1)  # the next disk/du pass
            entry = await stats()
        assert entry["executor_id"] == task_id and entry["framework_id"] == "fw-1"
        s = entry["statistics"]
        for key in ("timestamp", "cpus_user_time_secs", "cpus_system_time_secs",
                    "cpus_limit", "mem_rss_bytes", "mem_limit_bytes", "disk_used_bytes",
                    "disk_limit_bytes"):
            assert key in s, key
        assert s["cpus_limit"] == pytest.approx(0.6)  # with the command executor's 0.1
        assert s["mem_limit_bytes"] == (64 + 32) * 2**20
        assert s["disk_limit_bytes"] == 10 * 2**20
        if V1 is None:  # cgroup counters
            assert "cpus_nr_throttled" in s and "cpus_nr_periods" in s
            assert s["processes"] >= 1
        (container,) = json.loads((await h.http("/containers")).body)
        assert container["container_id"] == executor.container_id
        assert container["status"]["container_id"] == {"value": executor.container_id}
        assert container["statistics"]["mem_limit_bytes"] == s["mem_limit_bytes"]
        # An occasional reader gets today's usage, not that of its previous visit.
        h.agent.monitor._last[executor.container_id].wall -= 60
        later = (await stats())["statistics"]
        assert later["timestamp"] > time.time() - 5
        m.kill(task_id)
        await m.terminal(task_id)

    run(body, tmp_path, ContainerizerConfig(container_disk_watch_interval=0.1))


def test_a_sandbox_over_its_disk_quota_is_killed(tmp_path: Path) -> None:
    async def body(h: Any) -> None:
        m = h.master
        m.run_task(with_disk(task("filler", WRITE_3MB), 1))
        failed = await m.terminal("filler")
        status = failed.status
        assert status.state is TaskState.TASK_FAILED
        assert status.source is Source.SOURCE_AGENT
        assert status.reason is Reason.REASON_CONTAINER_LIMITATION_DISK
        assert re.fullmatch(r"Disk usage \((2|3)MB\) exceeds quota \(1MB\)", status.message)

    run(body, tmp_path, ContainerizerConfig(container_disk_watch_interval=0.1,
                                            enforce_container_disk_quota=True))


def test_usage_endpoints_list_200_live_containers(tmp_path: Path) -> None:
    """Every one of 200 live containers is in both endpoints, in Mesos's shape. (Their
    latency, p99 <= 100 ms, is a figure of bench/bench_monitor.py, not a timed test.)"""
    async def body(h: Any) -> None:
        m = h.master
        ids = [f"sleeper-{i}" for i in range(200)]
        for task_id in ids:
            m.run_task(task(task_id, "sleep 120", cpus=0.01, mem=16))
        acked: set[bytes] = set()

        def all_running() -> bool:  # acknowledging, as a framework would
            running = 0
            for u in m.updates():
                if u.status.uuid not in acked:
                    acked.add(u.status.uuid)
                    m.ack(u)
                running += u.status.state is TaskState.TASK_RUNNING
            return running == len(ids)

        await m.until(all_running, 90)
        await m.until(lambda: not any(h.agent.status_updates.pending("fw-1", t) for t in ids))
        containers = {e.container_id: e.executor_id for e in h.agent.executors.all_executors()}
        statistics = json.loads((await h.http("/monitor/statistics")).body)
        assert sorted(s["executor_id"] for s in statistics) == sorted(ids)
        for entry in statistics:
            assert entry["framework_id"] == "fw-1" and entry["source"] == entry["executor_id"]
            stats = entry["statistics"]
            assert stats["cpus_limit"] == pytest.approx(0.11)  # the executor's 0.1 on top
            assert stats["mem_limit_bytes"] == (16 + 32) * 2**20
            assert stats["mem_rss_bytes"] >= 0 and stats["timestamp"] > 0  # a sleep: ~0 anon
            assert stats["cpus_user_time_secs"] >= 0 and stats["cpus_system_time_secs"] >= 0
        listed = json.loads((await h.http("/containers")).body)
        assert {c["container_id"]: c["executor_id"] for c in listed} == containers
        assert all(c["framework_id"] == "fw-1" and "statistics" in c for c in listed)

    run(body, tmp_path, ContainerizerConfig(), timeout=180)
