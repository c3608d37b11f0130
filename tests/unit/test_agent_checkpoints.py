"""Reading an agent's checkpoints back (no processes): the layout, the journal replay, reboots."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mesonb.agent import checkpoint, paths, recovery
from mesonb.agent.book import Executor, Framework, Task
from mesonb.agent.launcher import Checkpointer
from mesonb.agent.status_updates import StatusUpdateManager, ack_record, update_record
from mesonb.protocol.mesos import CommandInfo, ExecutorInfo, FrameworkInfo, TaskInfo, TaskStatus
from mesonb.protocol.states import TaskState


def status(state: TaskState, task_id: str = "t1") -> TaskStatus:
    return TaskStatus(task_id=task_id, state=state, uuid=uuid.uuid4().bytes)


def test_journal_replay_keeps_unacknowledged_updates_in_order() -> None:
    m = StatusUpdateManager()
    s1, s2, s3 = (status(TaskState.TASK_STARTING), status(TaskState.TASK_RUNNING),
                  status(TaskState.TASK_FINISHED))
    records = [update_record("fw", s1), update_record("fw", s2), ack_record(s1.uuid),
               update_record("fw", s3), {"type": "UPDATE"}]  # a bad record is skipped
    got = m.recover("fw", "t1", records)
    assert [s.state for s in got.statuses] == [s1.state, s2.state, s3.state]
    assert got.latest_state is TaskState.TASK_FINISHED
    assert not got.closed
    assert [s.uuid for s in got.pending] == [s2.uuid, s3.uuid]
    assert m.seen("fw", "t1", s3.uuid)  # an executor resending s3 is a duplicate
    assert m.resume(now=0.0)[0].status.uuid == s2.uuid  # the head goes out on registration


def test_journal_with_acknowledged_terminal_update_closes_the_stream() -> None:
    m = StatusUpdateManager()
    s1, s2 = status(TaskState.TASK_RUNNING), status(TaskState.TASK_FAILED)
    got = m.recover("fw", "t1", [update_record("fw", s1), ack_record(s1.uuid),
                                 update_record("fw", s2), ack_record(s2.uuid)])
    assert got.closed and not got.pending
    assert not m.has_stream("fw", "t1")


def write_tree(work_dir: Path) -> None:
    checkpoint.write_agent_id(work_dir, "S1", {"hostname": "h"})
    ckpt = Checkpointer(work_dir, "S1")
    framework = Framework(info=FrameworkInfo(user="u", name="f", id="fw", checkpoint=True))
    ckpt.framework(framework)
    info = ExecutorInfo(executor_id="e1", framework_id="fw",
                        command=CommandInfo(value="true", shell=True))
    executor = Executor(info=info, framework_id="fw", container_id="c1",
                        directory=paths.sandbox_dir(work_dir, "S1", "fw", "e1", "c1"),
                        token="secret-token")
    ckpt.executor(executor)
    ckpt.forked_pid(executor, 4242)
    task = Task(info=TaskInfo(name="t1", task_id="t1", agent_id="S1"), framework_id="fw",
                executor_id="e1")
    ckpt.task(executor, task)
    ckpt.update(executor, "t1", update_record("fw", status(TaskState.TASK_RUNNING)))


def test_read_returns_what_was_checkpointed(tmp_path: Path) -> None:
    assert recovery.read(tmp_path) is None
    write_tree(tmp_path)
    state = recovery.read(tmp_path)
    assert state is not None and state.agent_id == "S1" and not state.rebooted
    [framework] = state.frameworks
    assert framework.info.id == "fw" and framework.info.checkpoint
    [executor] = framework.executors
    assert (executor.container_id, executor.pid, executor.token) == ("c1", 4242, "secret-token")
    assert executor.directory == paths.sandbox_dir(tmp_path, "S1", "fw", "e1", "c1")
    token = paths.executor_token_path(tmp_path, "S1", "fw", "e1", "c1")
    assert token.stat().st_mode & 0o077 == 0  # only the agent's user may read it
    [task] = executor.tasks
    assert task.info.task_id == "t1" and len(task.records) == 1


def test_a_torn_checkpoint_is_skipped(tmp_path: Path) -> None:
    write_tree(tmp_path)
    paths.executor_info_path(tmp_path, "S1", "fw", "e1").write_text("{not json")
    state = recovery.read(tmp_path)
    assert state is not None and state.frameworks[0].executors == []


def test_reboot_is_detected_from_the_boot_id(tmp_path: Path) -> None:
    if recovery.current_boot_id() is None:
        pytest.skip("no /proc/sys/kernel/random/boot_id here")
    write_tree(tmp_path)
    recovery.write_boot_id(tmp_path)
    assert not recovery.read(tmp_path).rebooted
    paths.boot_id_path(tmp_path).write_text("another-boot")
    assert recovery.read(tmp_path).rebooted


def test_recovery_flags_are_checked() -> None:
    with pytest.raises(ValueError):
        recovery.RecoveryConfig(recover="restart")
    with pytest.raises(ValueError):
        recovery.RecoveryConfig(executor_reregistration_timeout=0)
