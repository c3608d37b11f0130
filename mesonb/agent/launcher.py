"""Preparing an executor's launch: its ExecutorInfo, command line, environment, checkpoints.

Mesos's rules (src/slave/slave.cpp ``getExecutorInfo``, ``executorEnvironment``):

* a command task gets a generated ExecutorInfo: executor id = task id, a name like
  ``Command Executor (Task: t) (Command: sh -c 'sleep 10')``, 0.1 cpus and 32 MB;
* an executor's environment is the agent's (minus the cluster secret and any ``MESOS_*``
  the agent itself inherited), the Mesos variables (framework and executor ids, sandbox,
  agent endpoint, checkpoint, shutdown grace period, its own authentication token), then
  the ExecutorInfo command's own variables;
* the built-in executors run as ``<this python> -m mesonb.executor.<name>``, with the
  package root prepended to ``PYTHONPATH`` (tasks get the path back as it was).

The checkpoint writers record what a later agent recovery reads (layout in
:mod:`mesonb.agent.paths`); only frameworks with ``checkpoint=true`` are recorded.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from mesonb.config import SECRET_ENV
from mesonb.executor.process import command_argv
from mesonb.protocol.executor import PYTHONPATH_MARK, SOCKET_ENV, TOKEN_ENV
from mesonb.protocol.mesos import CommandInfo, ExecutorInfo, TaskInfo
from mesonb.protocol.resources import Resources

from . import checkpoint, paths
from .book import Executor, Framework, Task
from .containerizer import LaunchSpec

log = logging.getLogger(__name__)

COMMAND_EXECUTOR_MODULE = "mesonb.executor.command"
DEFAULT_EXECUTOR_MODULE = "mesonb.executor.default"
EXECUTOR_CPUS = 0.1  # Mesos: DEFAULT_EXECUTOR_CPUS / DEFAULT_EXECUTOR_MEM
EXECUTOR_MEM = 32.0
RECOVERY_TIMEOUT = 15 * 60.0
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # makes ``-m mesonb...`` importable


def builtin_command(module: str) -> CommandInfo:
    """``<this python> -m <module>``: how the built-in executors are started."""
    return CommandInfo(
        shell=False, value=sys.executable, arguments=[sys.executable, "-m", module]
    )


def is_builtin(command: CommandInfo | None) -> bool:
    return command is not None and command.value == sys.executable and bool(
        command.arguments and command.arguments[1:2] == ["-m"]
        and len(command.arguments) > 2
        and str(command.arguments[2]).startswith("mesonb.executor."))


def wait_status(returncode: int) -> int:
    """An asyncio return code as a POSIX wait status (what Mesos reports to the master)."""
    return -returncode if returncode < 0 else (returncode & 0xFF) << 8


def command_executor_info(framework_id: str, task: TaskInfo) -> ExecutorInfo:
    """The ExecutorInfo the agent makes up for a command task."""
    command = task.command
    assert command is not None
    shown = command.value or ""
    if command.shell:
        shown = f"sh -c '{shown[:15]}{'...' if len(shown) > 15 else ''}'"
    role = None
    allocation = None
    for r in task.resources or ():
        role = role or r.get("role")
        allocation = allocation or r.get("allocation_info", {}).get("role")
    resources = Resources({"cpus": EXECUTOR_CPUS, "mem": EXECUTOR_MEM}).to_json(
        role=role or "*", allocation_role=allocation)
    return ExecutorInfo(
        executor_id=task.task_id,
        framework_id=framework_id,
        name=f"Command Executor (Task: {task.task_id}) (Command: {shown})",
        source=task.task_id,
        command=builtin_command(COMMAND_EXECUTOR_MODULE),
        resources=resources,
    )


def executor_env(
    framework: Framework,
    executor: Executor,
    *,
    agent_id: str | None,
    endpoint: str,
    socket: str | None = None,
    pid: str,
    shutdown_grace: float,
    recovery_timeout: float = RECOVERY_TIMEOUT,
    reregistration_timeout: float = 2.0,
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment an executor process starts with (see the module docstring)."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items()
           if k not in (SECRET_ENV, TOKEN_ENV, PYTHONPATH_MARK, SOCKET_ENV)
           and not k.startswith("MESOS_")}
    env.update({
        "MESOS_FRAMEWORK_ID": framework.framework_id,
        "MESOS_EXECUTOR_ID": executor.executor_id,
        "MESOS_DIRECTORY": str(executor.directory),
        "MESOS_SANDBOX": str(executor.directory),
        "MESOS_AGENT_ENDPOINT": endpoint,
        "MESOS_SLAVE_ID": agent_id or "",
        "MESOS_AGENT_ID": agent_id or "",
        "MESOS_SLAVE_PID": pid,
        "MESOS_CHECKPOINT": "1" if framework.checkpoint else "0",
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": f"{shutdown_grace:g}secs",
        TOKEN_ENV: executor.token,
    })
    if socket is not None:  # mesonb's executors reach the agent there (agent.executor_socket)
        env[SOCKET_ENV] = socket
    if framework.checkpoint:
        # Mesos: retry at least twice within the agent's re-registration window.
        env["MESOS_RECOVERY_TIMEOUT"] = f"{recovery_timeout:g}secs"
        env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = f"{reregistration_timeout / 2:g}secs"
    command = executor.info.command
    if is_builtin(command):
        env["MESOS_HTTP_COMMAND_EXECUTOR"] = "1" if executor.command_executor else "0"
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = PACKAGE_ROOT + (os.pathsep + old if old else "")
        env[PYTHONPATH_MARK] = PACKAGE_ROOT
    if command is not None and command.environment is not None:
        for var in command.environment.variables or ():
            env[var.name] = var.value
    return env


def launch_spec(executor: Executor, env: dict[str, str]) -> LaunchSpec:
    """The process to start for ``executor``; ValueError when its command is unusable."""
    command = executor.info.command
    if command is None:
        raise ValueError("the ExecutorInfo has no command")
    argv, executable = command_argv(command)
    return LaunchSpec(argv=argv, env=env, sandbox=executor.directory, executable=executable)


class Checkpointer:
    """Writes the ``meta/`` tree of one agent id (errors are logged, never raised)."""

    def __init__(self, work_dir: Path, agent_id: str) -> None:
        self.work_dir = work_dir
        self.agent_id = agent_id

    def framework(self, framework: Framework) -> None:
        self._write(paths.framework_info_path(self.work_dir, self.agent_id,
                                              framework.framework_id), framework.info.to_json())

    def executor(self, executor: Executor) -> None:
        fw, ex, run_id = executor.framework_id, executor.executor_id, executor.container_id
        self._write(paths.executor_info_path(self.work_dir, self.agent_id, fw, ex),
                    executor.info.to_json())
        run = paths.run_meta_dir(self.work_dir, self.agent_id, fw, ex, run_id)
        try:
            run.mkdir(parents=True, exist_ok=True)
            token = paths.executor_token_path(self.work_dir, self.agent_id, fw, ex, run_id)
            fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(executor.token)
            paths.ensure_latest_symlink(run)
        except OSError as exc:
            log.error("cannot checkpoint executor %s: %s", executor.executor_id, exc)

    def forked_pid(self, executor: Executor, pid: int, in_agent: bool = False) -> None:
        """The container's pid (``in_agent``: the task itself, run by the agent's command
        runner, which a restarted agent adopts; see :mod:`.command_runner`)."""
        path = paths.forked_pid_path(self.work_dir, self.agent_id, executor.framework_id,
                                     executor.executor_id, executor.container_id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if in_agent:
                (path.parent / paths.IN_AGENT_MARKER).touch()
            path.write_text(str(pid))
        except OSError as exc:
            log.error("cannot checkpoint the pid of executor %s: %s", executor.executor_id, exc)

    def task(self, executor: Executor, task: Task) -> None:
        self._write(paths.task_info_path(self.work_dir, self.agent_id, executor.framework_id,
                                         executor.executor_id, executor.container_id,
                                         task.task_id), task.info.to_json())

    def update(self, executor: Executor, task_id: str, record: dict[str, Any]) -> None:
        path = paths.task_updates_path(self.work_dir, self.agent_id, executor.framework_id,
                                       executor.executor_id, executor.container_id, task_id)
        try:
            checkpoint.append_json_line(path, record)
        except OSError as exc:
            log.error("failed to checkpoint a status update of task %s: %s", task_id, exc)

    def _write(self, path: Path, obj: Any) -> None:
        try:
            checkpoint.write_json(path, obj)
        except OSError as exc:
            log.error("cannot checkpoint %s: %s", path, exc)
