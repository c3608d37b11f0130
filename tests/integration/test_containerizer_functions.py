"""Function calls run inside their executor's container: its cgroup, its limits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_containerizer_limits import V1

from mesonb import Cluster

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(V1 is not None, reason=f"cgroups v1 not usable here: {V1}")]


def my_memory_cgroup() -> tuple[str, int]:
    text = Path("/proc/self/cgroup").read_text()
    path = re.search(r"^\d+:memory:(.*)$", text, re.M).group(1)  # type: ignore[union-attr]
    limit = int(Path(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes").read_text())
    return path, limit


def test_calls_run_in_the_executor_container() -> None:
    with Cluster.local(agents=1, resources="cpus:2;mem:2048;disk:1024") as cluster:
        path, limit = cluster.submit(my_memory_cgroup, cpus=0.1, mem="100MiB").result(60)
        assert re.search(r"/mesonb/[0-9a-f-]{36}$", path), path
        assert limit >= (32 + 100) * 2**20  # the executor's 32 MB overhead and the call's
        again, _ = cluster.submit(my_memory_cgroup, cpus=0.1, mem="100MiB").result(60)
        assert again == path  # a reused worker, the same container


def my_cpu_quota() -> int:
    text = Path("/proc/self/cgroup").read_text()
    path = re.search(r"^\d+:cpu:(.*)$", text, re.M).group(1)  # type: ignore[union-attr]
    return int(Path(f"/sys/fs/cgroup/cpu{path}/cpu.cfs_quota_us").read_text())


def test_the_cpu_cap_follows_the_calls_running() -> None:
    with Cluster.local(agents=1, resources="cpus:2;mem:2048;disk:1024") as cluster:
        assert cluster.submit(my_cpu_quota, cpus=1, mem="64MiB").result(60) == 110_000
        # That call ended: the next one shares the executor's 0.1 cpus with its own 0.1.
        assert cluster.submit(my_cpu_quota, cpus=0.1, mem="64MiB").result(60) == 20_000
