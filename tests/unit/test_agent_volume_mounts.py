"""Persistent volumes bind-mounted into sandboxes (as root, as Mesos's filesystem/linux
isolator does): RO enforced by the kernel, and no removal of a sandbox ever empties a
volume (the GC unmounts first and never descends into a mount). Real mounts: these
tests need root and a kernel that lets this process mount (skipped otherwise)."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from mesonb.agent import mounts
from mesonb.agent.sandbox_gc import SandboxGC
from mesonb.agent.volumes import BIND, SYMLINK, AgentVolumes


def _can_mount() -> bool:
    if os.geteuid() != 0:
        return False
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        a, b = Path(d, "a"), Path(d, "b")
        a.mkdir()
        b.mkdir()
        try:
            mounts.bind(a, b)
        except OSError:
            return False
        mounts.unmount(b)
        return True


needs_mounts = pytest.mark.skipif(not _can_mount(), reason="needs root and mount(2)")


def vol(pid: str, path: str = "data", mode: str = "RW") -> dict[str, Any]:
    return {"name": "disk", "type": "SCALAR", "scalar": {"value": 10},
            "reservations": [{"type": "DYNAMIC", "role": "db", "principal": "ops"}],
            "disk": {"persistence": {"id": pid}, "volume": {"container_path": path,
                                                              "mode": mode}}}


@pytest.fixture
def work(tmp_path: Path):
    yield tmp_path / "work"
    mounts.unmount_under(tmp_path)  # whatever a failing test left


def test_mountinfo_is_read_with_its_escapes_deepest_first(tmp_path: Path):
    info = tmp_path / "mountinfo"
    root = os.path.realpath(tmp_path)
    info.write_text(
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        f"40 22 8:1 /v {root}/s/a\\040b rw - ext4 /dev/sda1 rw\n"
        f"41 22 8:1 /v {root}/s/a\\040b/deep rw - ext4 /dev/sda1 rw\n"
        f"42 22 8:1 /v {root}/sx rw - ext4 /dev/sda1 rw\n")
    assert mounts.mount_points(tmp_path / "s", info) == [
        Path(f"{root}/s/a b/deep"), Path(f"{root}/s/a b")]
    assert mounts.mount_points(tmp_path / "nothing", info) == []


def test_the_agent_says_how_it_mounts_volumes(work: Path):
    volumes = AgentVolumes(work, None)
    assert volumes.mode == (BIND if os.geteuid() == 0 else SYMLINK)


@needs_mounts
def test_volumes_are_bind_mounted_and_ro_is_enforced(work: Path):
    volumes = AgentVolumes(work, None)
    volumes.checkpoint([vol("rw"), vol("ro", "ref/data", "RO")])
    sandbox = work / "slaves" / "s1"
    sandbox.mkdir(parents=True)
    volumes.mount(sandbox, [vol("rw", "data"), vol("ro", "ref/data", "RO")])
    rw, ro = sandbox / "data", sandbox / "ref" / "data"
    assert not rw.is_symlink() and not ro.is_symlink()
    assert set(mounts.mount_points(sandbox)) == {Path(os.path.realpath(rw)),
                                                Path(os.path.realpath(ro))}
    (rw / "f").write_text("kept")
    assert (work / "volumes" / "roles" / "db" / "rw" / "f").read_text() == "kept"
    (work / "volumes" / "roles" / "db" / "ro" / "g").write_text("read me")
    assert (ro / "g").read_text() == "read me"
    with pytest.raises(OSError) as refused:
        (ro / "h").write_text("no")
    assert refused.value.errno == errno.EROFS
    volumes.mount(sandbox, [vol("rw", "data")])  # again (a second task): one mount
    assert len(mounts.mount_points(sandbox)) == 2


@needs_mounts
def test_the_sandbox_gc_unmounts_and_never_empties_a_volume(work: Path):
    volumes = AgentVolumes(work, None)
    volumes.checkpoint([vol("v")])
    run = work / "slaves" / "S1" / "frameworks" / "f" / "executors" / "e" / "runs" / "c1"
    run.mkdir(parents=True)
    volumes.mount(run, [vol("v", "data")])
    (run / "data" / "precious").write_text("data")
    (run / "stdout").write_text("log")
    gc = SandboxGC(work, delay=0.0)
    gc.schedule(run, 0.0)
    assert gc.prune(now=1e12) == [run]
    assert not run.exists()
    assert (work / "volumes" / "roles" / "db" / "v" / "precious").read_text() == "data"
    assert mounts.mount_points(work) == []
    # A whole tree of an old agent id goes the same way.
    tree = work / "slaves" / "OLD"
    (tree / "x").mkdir(parents=True)
    volumes.mount(tree / "x", [vol("v", "data")])
    gc.schedule(tree, 0.0, tree=True)
    gc.prune(now=1e12)
    assert not tree.exists()
    assert (work / "volumes" / "roles" / "db" / "v" / "precious").read_text() == "data"


@needs_mounts
def test_a_tree_whose_mount_cannot_go_is_not_removed(work: Path, monkeypatch):
    volumes = AgentVolumes(work, None)
    volumes.checkpoint([vol("v")])
    sandbox = work / "slaves" / "s"
    sandbox.mkdir(parents=True)
    volumes.mount(sandbox, [vol("v", "data")])
    (sandbox / "data" / "precious").write_text("data")

    def refuse(target: Path) -> None:
        raise OSError(errno.EBUSY, "busy")

    monkeypatch.setattr(mounts, "unmount", refuse)  # a kernel that says EBUSY
    assert mounts.remove_tree(sandbox) is False
    assert (work / "volumes" / "roles" / "db" / "v" / "precious").read_text() == "data"
    monkeypatch.undo()
    assert mounts.remove_tree(sandbox) is True


@needs_mounts
def test_stale_mounts_are_taken_down_and_live_ones_kept(work: Path):
    volumes = AgentVolumes(work, None)
    volumes.checkpoint([vol("v")])
    live, dead = work / "slaves" / "live", work / "slaves" / "dead"
    for sandbox in (live, dead):
        sandbox.mkdir(parents=True)
        volumes.mount(sandbox, [vol("v", "data")])
    assert volumes.unmount_stale([live]) == [Path(os.path.realpath(dead / "data"))]
    assert mounts.mount_points(work) == [Path(os.path.realpath(live / "data"))]
