"""Agent recovery: reading back the checkpoints of an earlier run on the same work dir.

Mesos's semantics (docs/agent-recovery.md): a restarted agent reads ``meta/`` (layout in
:mod:`mesonb.agent.paths`), keeps its agent id, re-attaches to the executors of
frameworks with ``checkpoint=true`` that are still alive, waits a short while for them to
re-subscribe (they resend their unacknowledged updates and tasks), kills those that do
not, reports what is left to the master when it re-registers, and resends the updates
the framework never acknowledged. A reboot (``meta/boot_id`` differs from the kernel's)
means no executor survived. Executors of frameworks that do not checkpoint are never
recovered; any still running are killed as orphans.

``--recover=cleanup`` kills every recovered executor instead (their tasks' terminal
updates are checkpointed for the next start) and the agent exits without registering.

This module only reads: :func:`read` returns plain data, and
:func:`mesonb.agent.reattach.recover` puts it back in the book.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesonb.protocol.errors import BadRequest
from mesonb.protocol.mesos import ExecutorInfo, FrameworkInfo, TaskInfo

from . import checkpoint, paths

log = logging.getLogger(__name__)

RECOVER_MODES = ("reconnect", "cleanup")
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


@dataclass
class RecoveryConfig:
    """The agent's recovery flags (Mesos: ``--recover``, ``--recovery_timeout``,
    ``--executor_reregistration_timeout``)."""

    recover: str = "reconnect"
    recovery_timeout: float = 15 * 60.0  # executors waiting for the agent give up after it
    executor_reregistration_timeout: float = 2.0  # the agent's wait for them to re-subscribe

    def __post_init__(self) -> None:
        if self.recover not in RECOVER_MODES:
            raise ValueError(f"--recover must be one of {', '.join(RECOVER_MODES)}")
        if self.recovery_timeout <= 0 or self.executor_reregistration_timeout <= 0:
            raise ValueError("recovery timeouts must be positive")


@dataclass
class TaskCheckpoint:
    info: TaskInfo
    records: list[dict[str, Any]]  # the task.updates journal


@dataclass
class ExecutorCheckpoint:
    framework_id: str
    info: ExecutorInfo
    container_id: str
    directory: Path  # the sandbox
    pid: int | None
    token: str | None
    tasks: list[TaskCheckpoint] = field(default_factory=list)
    in_agent: bool = False  # the pid is the task's own, run by the agent (command_runner)


@dataclass
class FrameworkCheckpoint:
    info: FrameworkInfo
    executors: list[ExecutorCheckpoint] = field(default_factory=list)


@dataclass
class AgentCheckpoint:
    agent_id: str
    rebooted: bool
    frameworks: list[FrameworkCheckpoint] = field(default_factory=list)

    def executors(self) -> list[ExecutorCheckpoint]:
        return [e for f in self.frameworks for e in f.executors]


def current_boot_id() -> str | None:
    try:
        return BOOT_ID_FILE.read_text().strip() or None
    except OSError:
        return None


def rebooted(work_dir: Path) -> bool:
    """True when ``meta/boot_id`` names another boot than the running kernel's."""
    try:
        old = paths.boot_id_path(work_dir).read_text().strip()
    except OSError:
        return False
    now = current_boot_id()
    return bool(old and now and old != now)


def write_boot_id(work_dir: Path) -> None:
    boot_id = current_boot_id()
    if boot_id is None:
        return
    path = paths.boot_id_path(work_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".boot_id.tmp")
        tmp.write_text(boot_id)
        os.replace(tmp, path)
    except OSError as exc:
        log.error("cannot checkpoint the boot id: %s", exc)


def read(work_dir: Path) -> AgentCheckpoint | None:
    """What an earlier run of the agent checkpointed, or None for a fresh work dir.

    Unreadable entries are logged and skipped (Mesos's ``--strict=false``): one torn file
    must not keep the agent from starting.
    """
    agent_id = checkpoint.read_agent_id(work_dir)
    if agent_id is None:
        return None
    state = AgentCheckpoint(agent_id=agent_id, rebooted=rebooted(work_dir))
    root = paths.agent_meta_dir(work_dir, agent_id) / "frameworks"
    for fw_dir in _children(root):
        info = _load(fw_dir / "framework.info", FrameworkInfo)
        if info is None or info.id != fw_dir.name:
            continue
        framework = FrameworkCheckpoint(info=info)
        for ex_dir in _children(fw_dir / "executors"):
            executor = _read_executor(work_dir, agent_id, info.id, ex_dir)
            if executor is not None:
                framework.executors.append(executor)
        state.frameworks.append(framework)
    return state


def _read_executor(
    work_dir: Path, agent_id: str, framework_id: str, ex_dir: Path
) -> ExecutorCheckpoint | None:
    info = _load(ex_dir / "executor.info", ExecutorInfo)
    if info is None or info.executor_id != ex_dir.name:
        return None
    try:
        container_id = os.readlink(ex_dir / "runs" / paths.LATEST)
    except OSError:
        return None
    container_id = Path(container_id).name
    if not paths.is_safe_id(container_id):
        return None
    run = paths.run_meta_dir(work_dir, agent_id, framework_id, info.executor_id, container_id)
    pid = None
    with contextlib.suppress(OSError, ValueError):
        pid = int((run / "pids" / "forked.pid").read_text().strip())
    in_agent = (run / "pids" / paths.IN_AGENT_MARKER).exists()
    token = None
    with contextlib.suppress(OSError):
        token = paths.executor_token_path(work_dir, agent_id, framework_id, info.executor_id,
                                          container_id).read_text().strip() or None
    executor = ExecutorCheckpoint(
        framework_id=framework_id, info=info, container_id=container_id,
        directory=paths.sandbox_dir(work_dir, agent_id, framework_id, info.executor_id,
                                    container_id),
        pid=pid, token=token, in_agent=in_agent)
    for task_dir in _children(run / "tasks"):
        task = _load(task_dir / "task.info", TaskInfo)
        if task is None or task.task_id != task_dir.name:
            continue
        executor.tasks.append(TaskCheckpoint(
            info=task, records=checkpoint.read_json_lines(task_dir / "task.updates")))
    return executor


def _children(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir()
                      if p.is_dir() and not p.is_symlink() and paths.is_safe_id(p.name))
    except OSError:
        return []


def _load(path: Path, cls: Any) -> Any:
    try:
        return cls.from_json(json.loads(path.read_text()), str(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, BadRequest) as exc:
        log.warning("skipping an unreadable checkpoint %s: %s", path, exc)
        return None
