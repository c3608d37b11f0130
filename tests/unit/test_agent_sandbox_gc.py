"""Sandbox garbage collection (delay, disk pressure) and log rotation, on real files."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mesonb.agent.sandbox_gc import LogRotator, SandboxGC, rotate


def make_run(root: Path, executor: str, run: str) -> Path:
    sandbox = root / "executors" / executor / "runs" / run
    sandbox.mkdir(parents=True)
    (sandbox / "stdout").write_text("out")
    (sandbox.parent / "latest").symlink_to(run)
    return sandbox


def test_sandboxes_go_after_the_delay_with_their_executor_dir(tmp_path: Path) -> None:
    gc = SandboxGC(tmp_path, delay=3600, headroom=0.0)
    gc.max_age = lambda: 3600.0  # type: ignore[method-assign]  # a disk with room to spare
    old, fresh = make_run(tmp_path, "a", "r1"), make_run(tmp_path, "b", "r2")
    now = time.time()
    gc.scheduled = {old: now - 7200, fresh: now - 10}
    assert gc.prune(now) == [old]
    assert not (tmp_path / "executors" / "a").exists()
    assert fresh.exists()


def test_a_full_disk_prunes_at_once(tmp_path: Path) -> None:
    gc = SandboxGC(tmp_path, delay=7 * 86400, headroom=1.0)  # as if the disk were full
    assert gc.max_age() == 0.0
    sandbox = make_run(tmp_path, "a", "r1")
    gc.scheduled = {sandbox: time.time()}
    assert gc.prune() == [sandbox]


def test_rotation_keeps_copies_and_truncates_in_place(tmp_path: Path) -> None:
    path = tmp_path / "stdout"
    with open(path, "ab") as writer:  # a task's append-mode descriptor stays valid
        for round_ in range(4):
            writer.write(f"{round_}".encode() * 200)
            writer.flush()
            assert rotate(path, 100, keep=2)
        writer.write(b"live")
        writer.flush()
    assert path.read_bytes() == b"live"
    assert (tmp_path / "stdout.1").read_bytes() == b"3" * 200
    assert (tmp_path / "stdout.2").read_bytes() == b"2" * 200
    assert not (tmp_path / "stdout.3").exists()
    assert not rotate(path, 100, keep=2)  # small enough


def test_the_rotator_covers_task_group_members(tmp_path: Path) -> None:
    member = tmp_path / "tasks" / "t1"
    member.mkdir(parents=True)
    (member / "stderr").write_bytes(b"x" * 50)
    (tmp_path / "stdout").write_bytes(b"y" * 10)
    rotator = LogRotator(max_size=20)
    rotator.sandboxes["c"] = tmp_path
    assert rotator.check() == 1
    assert (member / "stderr.1").exists() and (member / "stderr").stat().st_size == 0


def agent_run(work_dir: Path, agent_id: str, executor: str, run: str) -> tuple[Path, Path]:
    """A sandbox and its checkpoints, as an agent lays them out."""
    framework = Path(agent_id) / "frameworks" / "fw"
    tail = framework / "executors" / executor / "runs"
    sandbox = make_run(work_dir / "slaves" / framework, executor, run)
    meta = work_dir / "meta" / "slaves" / tail / run
    meta.mkdir(parents=True)
    (meta.parent / "latest").symlink_to(run)
    (meta.parent.parent / "executor.info").write_text("{}")
    return sandbox, meta


def test_leftovers_of_an_earlier_run_wait_from_their_mtime(tmp_path: Path) -> None:
    from mesonb.agent.sandbox_gc import leftovers

    old, old_meta = agent_run(tmp_path, "a1", "old", "r1")
    fresh, _ = agent_run(tmp_path, "a1", "fresh", "r2")
    live, _ = agent_run(tmp_path, "a1", "live", "r3")
    stale, _ = agent_run(tmp_path, "a0", "x", "r4")  # an agent id of an earlier start
    week_ago = time.time() - 7 * 86400
    os.utime(old, (week_ago, week_ago))
    os.utime(stale.parents[5], (week_ago, week_ago))  # old, but given a full delay
    found = leftovers(tmp_path, "a1", {live})
    assert sorted(found.container_ids) == ["r1", "r2", "r4"]
    gc = SandboxGC(tmp_path, delay=86400, headroom=0.0)
    gc.max_age = lambda: 86400.0  # type: ignore[method-assign]
    gc.schedule_leftovers(found)
    assert gc.prune() == [old]  # a week old; the others ended "now" at the earliest
    assert not old.parent.parent.exists()
    assert not old_meta.parent.parent.exists()  # its checkpoints went with it
    assert fresh.exists() and live.exists() and stale.exists()
    assert set(gc.scheduled) == {fresh, tmp_path / "slaves" / "a0",
                                 tmp_path / "meta" / "slaves" / "a0"}


def test_leftovers_go_at_once_under_disk_pressure(tmp_path: Path) -> None:
    from mesonb.agent.sandbox_gc import leftovers

    fresh, _ = agent_run(tmp_path, "a1", "fresh", "r1")
    agent_run(tmp_path, "a0", "x", "r2")
    gc = SandboxGC(tmp_path, delay=7 * 86400, headroom=1.0)  # as if the disk were full
    gc.schedule_leftovers(leftovers(tmp_path, "a1", set()))
    assert len(gc.prune()) == 3 and gc.removed == 3
    assert not fresh.exists()
    assert not (tmp_path / "slaves" / "a0").exists()
    assert not (tmp_path / "meta" / "slaves" / "a0").exists()
