"""The agent's on-disk layout, after Mesos's ``src/slave/paths.hpp``.

Two trees live under ``--work_dir``::

    meta/                                   checkpoints (what recovery reads)
      boot_id
      slaves/latest -> <agent_id>
      slaves/<agent_id>/slave.info
      slaves/<agent_id>/frameworks/<fw_id>/framework.info
        .../executors/<exec_id>/executor.info
        .../executors/<exec_id>/runs/latest -> <container_id>
        .../executors/<exec_id>/runs/<container_id>/pids/forked.pid
        .../executors/<exec_id>/runs/<container_id>/executor.token   (mesonb: 0600)
        .../executors/<exec_id>/runs/<container_id>/tasks/<task_id>/task.info
        .../executors/<exec_id>/runs/<container_id>/tasks/<task_id>/task.updates
    slaves/<agent_id>/frameworks/<fw_id>/executors/<exec_id>/runs/<container_id>/
                                            the sandbox (stdout, stderr, task files)

Every function here is pure path arithmetic; nothing touches the disk except
:func:`ensure_latest_symlink`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

LATEST = "latest"


def meta_dir(work_dir: Path) -> Path:
    return work_dir / "meta"


def boot_id_path(work_dir: Path) -> Path:
    """``meta/boot_id``: the machine's boot id when the agent last started (reboot detection)."""
    return meta_dir(work_dir) / "boot_id"


def latest_agent_link(work_dir: Path) -> Path:
    """``meta/slaves/latest``: points at the checkpointed agent id's directory."""
    return meta_dir(work_dir) / "slaves" / LATEST


def agent_meta_dir(work_dir: Path, agent_id: str) -> Path:
    return meta_dir(work_dir) / "slaves" / agent_id


def agent_info_path(work_dir: Path, agent_id: str) -> Path:
    return agent_meta_dir(work_dir, agent_id) / "slave.info"


def framework_meta_dir(work_dir: Path, agent_id: str, framework_id: str) -> Path:
    return agent_meta_dir(work_dir, agent_id) / "frameworks" / framework_id


def framework_info_path(work_dir: Path, agent_id: str, framework_id: str) -> Path:
    return framework_meta_dir(work_dir, agent_id, framework_id) / "framework.info"


def executor_meta_dir(work_dir: Path, agent_id: str, framework_id: str, executor_id: str) -> Path:
    return framework_meta_dir(work_dir, agent_id, framework_id) / "executors" / executor_id


def executor_info_path(
    work_dir: Path, agent_id: str, framework_id: str, executor_id: str
) -> Path:
    return executor_meta_dir(work_dir, agent_id, framework_id, executor_id) / "executor.info"


def run_meta_dir(
    work_dir: Path, agent_id: str, framework_id: str, executor_id: str, container_id: str
) -> Path:
    return executor_meta_dir(work_dir, agent_id, framework_id, executor_id) / "runs" / container_id


IN_AGENT_MARKER = "in_agent"  # beside forked.pid: the pid is an in-agent command task's


def forked_pid_path(
    work_dir: Path, agent_id: str, framework_id: str, executor_id: str, container_id: str
) -> Path:
    run = run_meta_dir(work_dir, agent_id, framework_id, executor_id, container_id)
    return run / "pids" / "forked.pid"


def executor_token_path(
    work_dir: Path, agent_id: str, framework_id: str, executor_id: str, container_id: str
) -> Path:
    """The executor's authentication token, so a restarted agent still knows it (mesonb's
    addition: Mesos signs its tokens with a key the agent is started with)."""
    return run_meta_dir(work_dir, agent_id, framework_id, executor_id, container_id) / (
        "executor.token")


def task_meta_dir(
    work_dir: Path,
    agent_id: str,
    framework_id: str,
    executor_id: str,
    container_id: str,
    task_id: str,
) -> Path:
    run = run_meta_dir(work_dir, agent_id, framework_id, executor_id, container_id)
    return run / "tasks" / task_id


def task_info_path(*args: str | Path) -> Path:
    """``.../tasks/<task_id>/task.info``; same arguments as :func:`task_meta_dir`."""
    return task_meta_dir(*args) / "task.info"  # type: ignore[arg-type]


def task_updates_path(*args: str | Path) -> Path:
    """``.../tasks/<task_id>/task.updates``; same arguments as :func:`task_meta_dir`."""
    return task_meta_dir(*args) / "task.updates"  # type: ignore[arg-type]


def sandboxes_root(work_dir: Path) -> Path:
    """Every sandbox of every agent id that ever ran on this work dir lies below this."""
    return work_dir / "slaves"


def executor_sandbox_parent(
    work_dir: Path, agent_id: str, framework_id: str, executor_id: str
) -> Path:
    return (
        sandboxes_root(work_dir) / agent_id / "frameworks" / framework_id / "executors"
        / executor_id / "runs"
    )


def sandbox_dir(
    work_dir: Path, agent_id: str, framework_id: str, executor_id: str, container_id: str
) -> Path:
    """Mesos's executor run directory, the sandbox (docs/sandbox.md)."""
    return executor_sandbox_parent(work_dir, agent_id, framework_id, executor_id) / container_id


def executor_virtual_path(framework_id: str, executor_id: str) -> str:
    """The path under which Mesos's files API also publishes the latest run's sandbox."""
    return f"/frameworks/{framework_id}/executors/{executor_id}/runs/{LATEST}"


def ensure_latest_symlink(run_dir: Path) -> None:
    """Point ``<run_dir>/../latest`` at ``run_dir`` (replacing an older link atomically)."""
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(run_dir.name, tmp)
    os.replace(tmp, link)


def is_safe_id(value: str) -> bool:
    """True when an id can be used as one path component (no ``/``, not ``.``/``..``)."""
    return bool(value) and "/" not in value and "\0" not in value and value not in (".", "..")
