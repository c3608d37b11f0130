"""Resource detection with Mesos's default formulas, and the flag forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesonb.agent.fingerprint import (
    GB,
    MB,
    Machine,
    agent_attributes,
    agent_resources,
    default_disk_mb,
    default_mem_mb,
    default_resources,
    detect_gpus,
    detect_machine,
    flat_attributes,
    merge_resources,
)
from mesonb.protocol.resources import Resources


def test_mem_leaves_one_gb_on_big_machines_and_half_on_small_ones() -> None:
    assert default_mem_mb(16 * GB) == 15 * 1024
    assert default_mem_mb(2 * GB) == 1024
    assert default_mem_mb(2 * GB - MB) == (2 * GB - MB) / 2 / MB
    assert default_mem_mb(1 * GB) == 512


def test_disk_leaves_five_gb_on_big_disks_and_half_on_small_ones() -> None:
    assert default_disk_mb(100 * GB) == 95 * 1024
    assert default_disk_mb(10 * GB) == 5 * 1024
    assert default_disk_mb(8 * GB) == 4 * 1024


def test_default_resources() -> None:
    r = default_resources(Machine(cpus=8, mem_bytes=16 * GB, disk_bytes=100 * GB))
    assert r.get("cpus") == 8
    assert r.get("mem") == 15 * 1024
    assert r.get("disk") == 95 * 1024
    assert r.get("gpus") == 0
    assert r.ranges["ports"] == ((31000, 32000),)
    assert r.to_flat()["gpus"] == 0
    assert detect_gpus() == 0


def test_given_resources_win_and_the_rest_is_detected(tmp_path: Path) -> None:
    machine = Machine(cpus=8, mem_bytes=16 * GB, disk_bytes=100 * GB)
    r = agent_resources("cpus:2;ports:[5000-5009];gpus:1", tmp_path, machine)
    assert r.get("cpus") == 2
    assert r.get("gpus") == 1
    assert r.get("mem") == 15 * 1024
    assert r.ranges["ports"] == ((5000, 5009),)
    full = agent_resources("cpus:2;mem:4096;disk:20000;ports:[31000-32000]", tmp_path, machine)
    assert full == Resources.parse("cpus:2;mem:4096;disk:20000;ports:[31000-32000]")
    assert merge_resources(None, full) is full
    with pytest.raises(ValueError):
        agent_resources("cpus:many", tmp_path, machine)


def test_detect_machine_reads_this_machine(tmp_path: Path) -> None:
    m = detect_machine(tmp_path / "not" / "yet" / "there")
    assert m.cpus >= 1
    assert m.mem_bytes > 0
    assert m.disk_bytes > 0


def test_attributes() -> None:
    attrs = agent_attributes("rack:a;zone:1;slots:[1-3]")
    assert flat_attributes(attrs) == {"rack": "a", "zone": 1.0, "slots": "[1-3]"}
    assert agent_attributes(None) == []
    with pytest.raises(ValueError):
        agent_attributes("novalue")
