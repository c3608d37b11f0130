"""Container limits from resources (Mesos's sums), TaskInfo.limits, and --isolation."""

from __future__ import annotations

import pytest

from mesonb.agent.isolation import resolve
from mesonb.agent.isolation.limits import Limits, container_limits, memory_message
from mesonb.protocol.resources import Resources


def limits(*tasks, cfs=True, executor="cpus:0.1;mem:32"):
    return container_limits(Resources.parse(executor),
                            [(Resources.parse(r), lim) for r, lim in tasks],
                            enable_cfs=cfs, pids_max=100, enforce_disk=False)


def test_limits_sum_the_executor_and_its_tasks():
    got = limits(("cpus:0.4;mem:96", None), ("cpus:0.5;mem:128", None))
    assert got.cpus == pytest.approx(1.0)
    assert got.cpu_shares == 1024
    assert got.cfs_quota_us == 100_000
    assert got.mem_mb == pytest.approx(256)
    assert got.mem_bytes == 256 * 2**20
    assert got.pids == 100 and got.disk_mb is None


def test_without_cfs_there_is_no_cap_and_shares_have_a_floor():
    got = limits(("cpus:0.001;mem:1", None), cfs=False, executor="cpus:0.001;mem:0.001")
    assert got.cfs_quota_us is None
    assert got.cpu_shares == 2
    assert got.mem_bytes == 32 * 2**20  # Mesos's MIN_MEMORY


def test_task_limits_raise_or_lift_the_caps():
    raised = limits(("cpus:0.5;mem:64", {"cpus": {"value": 2}, "mem": {"value": 512}}))
    assert raised.cpus == pytest.approx(0.6)  # shares follow the request
    assert raised.cpus_cap == pytest.approx(2.1)
    assert raised.mem_mb == pytest.approx(544)
    lifted = limits(("cpus:0.5;mem:64", {"cpus": {"value": "Infinity"},
                                         "mem": {"value": float("inf")}}))
    assert lifted.cpus_cap is None and lifted.mem_bytes is None


def test_memory_limits_only_rise():
    big, small = Limits(cpus=1, mem_mb=512), Limits(cpus=0.2, mem_mb=64)
    assert big.raised_to(small).mem_mb == 512
    assert big.raised_to(small).cpus == 0.2
    assert small.raised_to(big).mem_mb == 512


def test_mesos_memory_message():
    assert memory_message(80 * 2**20, 81 * 2**20) == (
        "Memory limit exceeded: Requested: 80MB Maximum Used: 81MB")


def test_isolation_flag():
    assert resolve("auto") == ("auto", ["disk/du"])
    assert resolve("cgroups/cpu,cgroups/mem,disk/du") == ("cgroups", ["disk/du"])
    assert resolve("posix/cpu,posix/mem") == ("posix", [])
    with pytest.raises(ValueError, match="unknown isolator"):
        resolve("cgroups/cpu,docker/runtime")
    with pytest.raises(ValueError, match="cannot mix"):
        resolve("cgroups/mem,posix/mem")


def test_an_executor_declaring_nothing_runs_on_the_agents_overhead():
    got = limits(("cpus:0.5;mem:100", None), executor="cpus:0;mem:0")
    assert got.cpus_cap == pytest.approx(0.6)  # Mesos's 0.1 cpus for the executor itself
    assert got.mem_mb == pytest.approx(132)  # and its 32 MB


def test_cgroups_v2_takes_a_left_cgroup_back_with_its_limits(tmp_path):
    """(The v2 backend cannot run here: its adopt reads a cgroup directory's files.)"""
    from mesonb.agent.isolation.cgroups_v2 import CgroupsV2

    backend = object.__new__(CgroupsV2)
    backend.base = tmp_path
    left = tmp_path / "c1"
    left.mkdir()
    (left / "memory.max").write_text("100663296\n")
    (left / "cpu.max").write_text("50000 100000\n")
    handle = backend.adopt("c1", 0)
    assert handle.limits.mem_mb == 96 and handle.limits.cpus_cap == 0.5
    assert backend.adopt("c2", 0) is None


def test_raised_to_is_the_other_limits_with_memory_that_never_drops():
    cases = [(Limits(1.0, 1.1, 64.0), Limits(0.5, 0.6, 64.0)),  # the same memory
             (Limits(1.0, 1.1, 128.0), Limits(0.5, 0.6, 64.0)),  # memory kept
             (Limits(1.0, 1.1, 64.0), Limits(0.5, None, 96.0)),  # raised
             (Limits(1.0, 1.1, None), Limits(0.5, 0.6, 64.0)),  # no limit stays none
             (Limits(1.0, 1.1, 64.0), Limits(0.5, 0.6, None, 10.0, 5, 1))]
    for applied, wanted in cases:
        mem = None if applied.mem_mb is None or wanted.mem_mb is None else max(
            applied.mem_mb, wanted.mem_mb)
        assert applied.raised_to(wanted) == Limits(wanted.cpus, wanted.cpus_cap, mem,
                                                   wanted.disk_mb, wanted.pids, wanted.gpus)

