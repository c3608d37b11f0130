"""A burst of short calls costs the agent few cgroup writes: a call joining others only
raises its container's limits, ends are applied together, and the limits then settle to
those of the calls still running (the CPU cap follows the calls, as before)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from client_support import on_loop, wait_for
from test_containerizer_limits import V1

from mesonb import Cluster

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(V1 is not None, reason=f"cgroups v1 not usable here: {V1}")]


def noop() -> None:
    return None


def my_cpu_dir() -> str:
    text = Path("/proc/self/cgroup").read_text()
    return re.search(r"^\d+:cpu:(.*)$", text, re.M).group(1)  # type: ignore[union-attr]


def test_a_burst_of_calls_writes_few_cgroup_limits() -> None:
    with Cluster.local(agents=1, resources="cpus:2;mem:4096;disk:1024") as cluster:
        cgroup = cluster.submit(my_cpu_dir).result(60)
        quota = Path(f"/sys/fs/cgroup/cpu{cgroup}/cpu.cfs_quota_us")
        wait_for(lambda: quota.read_text().strip() == "30000", "the cap of one call")
        isolator = cluster.local.agents[0].containerizer.isolator
        writes: list[float] = []
        update = isolator.update

        def counted(handle, limits):  # the real update, counted
            writes.append(limits.cpus)
            return update(handle, limits)

        on_loop(cluster, lambda: setattr(isolator, "update", counted))
        try:
            futures = [cluster.submit(noop) for _ in range(400)]
            assert [f.result(60) for f in futures] == [None] * 400
        finally:
            on_loop(cluster, lambda: setattr(isolator, "update", update))
        # Each call used to raise them and lower them again: two updates (of five cgroup
        # files) per call. Now a call joining others raises them only past what is applied
        # (ends are applied together later; a burst goes straight back to its peak after
        # a call alone, which gets the exact limits): a few dozen updates in all.
        assert 0 < len(writes) < len(futures) // 2, len(writes)
        # Once the burst is over the cap is that of the executor alone (0.1 cpus).
        wait_for(lambda: quota.read_text().strip() == "10000", "the cap to settle")
