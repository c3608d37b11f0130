"""A container's CPU limits change with few cgroup writes, and the files always hold what
writing them all would: cpu.cfs_period_us once per cgroup, the burst never above the
quota at any step (the kernel refuses that), nothing written for unchanged limits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_containerizer_limits import V1

from mesonb.agent.isolation import Limits, cgroups_v1
from mesonb.agent.isolation.cgroups_v1 import CgroupsV1

pytestmark = pytest.mark.skipif(V1 is not None, reason=f"cgroups v1 not usable here: {V1}")


@pytest.fixture
def isolator() -> Iterator[CgroupsV1]:
    isolator = CgroupsV1(f"mesonb-test-{uuid.uuid4().hex[:8]}")
    try:
        yield isolator
    finally:
        for base in set(isolator.bases.values()):
            for child in base.iterdir():
                if child.is_dir():
                    child.rmdir()
            base.rmdir()


def files(isolator: CgroupsV1, container_id: str) -> dict[str, str]:
    cpu = isolator.bases["cpu"] / container_id
    names = ("cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.cfs_burst_us")
    return {n: (cpu / n).read_text().strip() for n in names if (cpu / n).exists()}


def expected(limits: Limits, burst: bool) -> dict[str, str]:
    quota = limits.cfs_quota_us
    out = {"cpu.shares": str(limits.cpu_shares), "cpu.cfs_period_us": "100000",
           "cpu.cfs_quota_us": str(quota if quota is not None else -1)}
    if burst:
        out["cpu.cfs_burst_us"] = str(quota if quota is not None else 0)
    return out


def test_limit_changes_write_only_what_changes(isolator: CgroupsV1,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[str] = []
    real = cgroups_v1._write

    def counted(path: Path | str, value: str) -> None:
        written.append(Path(path).name)
        real(path, value)

    monkeypatch.setattr(cgroups_v1, "_write", counted)
    first = Limits(cpus=0.2, cpus_cap=0.3, mem_mb=64)
    handle = isolator.prepare("c1", first)
    burst = (isolator.bases["cpu"] / "c1" / "cpu.cfs_burst_us").exists()
    try:
        assert files(isolator, "c1") == expected(first, burst)
        steps = [Limits(cpus=0.4, cpus_cap=0.5, mem_mb=64),    # raised
                 Limits(cpus=0.4, cpus_cap=0.5, mem_mb=64),    # the same: nothing
                 Limits(cpus=0.1, cpus_cap=0.2, mem_mb=64),    # lowered
                 Limits(cpus=0.1, cpus_cap=None, mem_mb=64),   # no cap
                 Limits(cpus=0.1, cpus_cap=0.15, mem_mb=64),   # a cap again
                 Limits(cpus=2.0, cpus_cap=2.1, mem_mb=64),
                 Limits(cpus=0.05, cpus_cap=0.06, mem_mb=64)]
        for limits in steps:
            before = handle.limits
            written.clear()
            isolator.update(handle, limits)
            assert files(isolator, "c1") == expected(limits, burst), limits
            if limits == before:
                assert written == []
            elif before.cpus_cap is None:  # a cap again: the period set with it
                assert "cpu.cfs_period_us" in written
            else:  # the share, the quota and its burst; the period as it was
                assert "cpu.cfs_period_us" not in written
                assert len(written) <= 3, written
    finally:
        asyncio.run(isolator.destroy(handle))
