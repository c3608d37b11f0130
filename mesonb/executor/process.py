"""Running a task's ``CommandInfo`` as a process: shared by the built-in executors.

Mesos's rules (src/launcher/executor.cpp):

* ``shell=true``: ``/bin/sh -c <value>``;
* ``shell=false``: exec ``value`` with ``arguments`` as argv (``arguments[0]`` is argv[0]);
* the task sees the executor's environment, plus ``MESOS_SANDBOX`` and ``MESOS_TASK_ID``,
  plus ``PORT0``, ``PORT1``, ... ``PORT`` and ``PORTS`` for the ports it was given (what
  Marathon exports), plus ``CommandInfo.environment``, minus the executor's token;
* the exit maps to TASK_FINISHED (status 0), TASK_KILLED (killed on request) or
  TASK_FAILED, with the message ``"Command exited with status N"`` or
  ``"Command terminated with signal SIGNAME"``.

Each task runs in its own process group (inside the executor's session), so a kill
reaches everything the task started: SIGTERM to the group, SIGKILL after the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import IO, Any

from mesonb.protocol.executor import PYTHONPATH_MARK, TOKEN_ENV
from mesonb.protocol.mesos import CommandInfo, TaskInfo
from mesonb.protocol.states import Reason, TaskState

log = logging.getLogger(__name__)

EXECUTOR_ONLY_ENV = (TOKEN_ENV, PYTHONPATH_MARK, "MESOS_HTTP_COMMAND_EXECUTOR")


def command_argv(command: CommandInfo) -> tuple[list[str], str | None]:
    """``(argv, executable)`` for a CommandInfo; raises ValueError when it has no value."""
    if not command.value:
        raise ValueError("the command has no 'value'")
    if command.shell:
        return ["/bin/sh", "-c", command.value], None
    argv = list(command.arguments) if command.arguments else [command.value]
    return argv, command.value


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_returncode(returncode: int) -> str:
    """``exited with status N`` / ``terminated with signal SIGTERM`` (asyncio return codes:
    negative means killed by that signal)."""
    if returncode < 0:
        return f"terminated with signal {signal_name(-returncode)}"
    return f"exited with status {returncode}"


def terminal_status(
    returncode: int, *, killed: bool = False, timed_out: bool = False
) -> tuple[TaskState, Reason | None, str]:
    """The terminal ``(state, reason, message)`` of a command task, as Mesos's command
    executor decides it."""
    message = "Command " + describe_returncode(returncode)
    if timed_out:
        return TaskState.TASK_FAILED, Reason.REASON_MAX_COMPLETION_TIME_REACHED, message
    if returncode == 0:
        return TaskState.TASK_FINISHED, None, message
    if killed:
        return TaskState.TASK_KILLED, None, message
    return TaskState.TASK_FAILED, None, message


def task_ports(task: TaskInfo) -> list[int]:
    """The ports a task was given, in the order of its ``ports`` resource's ranges."""
    ports: list[int] = []
    for resource in task.resources or ():
        if resource.get("name") != "ports":
            continue
        for r in (resource.get("ranges") or {}).get("range") or ():
            try:
                begin, end = int(r["begin"]), int(r["end"])
            except (KeyError, TypeError, ValueError):
                continue
            ports.extend(range(begin, min(end, begin + 65535) + 1))
    return ports


def task_environment(
    base: Mapping[str, str], task: TaskInfo, sandbox: str, command: CommandInfo | None = None
) -> dict[str, str]:
    """The environment a task runs with (see the module docstring)."""
    env = {k: v for k, v in base.items() if k not in EXECUTOR_ONLY_ENV}
    added = base.get(PYTHONPATH_MARK)
    if added and "PYTHONPATH" in env:
        parts = [p for p in env["PYTHONPATH"].split(os.pathsep) if p != added]
        if parts:
            env["PYTHONPATH"] = os.pathsep.join(parts)
        else:
            del env["PYTHONPATH"]
    env["MESOS_SANDBOX"] = sandbox
    env["MESOS_TASK_ID"] = task.task_id
    ports = task_ports(task)
    if ports:  # as Marathon gives them: PORT0, PORT1, ... and PORTS
        env.update({f"PORT{i}": str(p) for i, p in enumerate(ports)})
        env["PORT"] = str(ports[0])
        env["PORTS"] = ",".join(str(p) for p in ports)
    command = command or task.command
    if command is not None and command.environment is not None:
        for var in command.environment.variables or ():
            env[var.name] = var.value
    return env


class TaskProcess:
    """One task's command, running as a child in its own process group."""

    def __init__(
        self,
        command: CommandInfo,
        env: Mapping[str, str],
        cwd: str,
        stdout: IO[bytes] | int | None = None,
        stderr: IO[bytes] | int | None = None,
    ) -> None:
        self.command = command
        self.env = dict(env)
        self.cwd = cwd
        self.stdout = stdout  # None: inherit the executor's (the sandbox's stdout file)
        self.stderr = stderr
        self.process: asyncio.subprocess.Process | None = None
        self.returncode: int | None = None
        self.kill_requested = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def start(self) -> None:
        """Start the command (stdout/stderr are the executor's, i.e. the sandbox files).

        Raises OSError or ValueError when it cannot be started.
        """
        argv, executable = command_argv(self.command)
        self.process = await asyncio.create_subprocess_exec(
            *argv,
            executable=executable,
            env=self.env,
            cwd=self.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self.stdout,
            stderr=self.stderr,
            process_group=0,
        )

    async def wait(self) -> int:
        assert self.process is not None
        self.returncode = await self.process.wait()
        return self.returncode

    def signal_group(self, sig: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    async def kill(self, grace: float) -> None:
        """SIGTERM the task's process group, SIGKILL it after ``grace`` seconds."""
        self.kill_requested = True
        if self.process is None:
            return
        if self.returncode is None:
            log.info("sending SIGTERM to task process group %d (grace %.3gs)",
                     self.process.pid, grace)
            self.signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self.process.wait()), max(grace, 0.0))
            except TimeoutError:
                log.info("task process group %d still alive after %.3gs: SIGKILL",
                         self.process.pid, grace)
        self.signal_group(signal.SIGKILL)  # and whatever the task left in its group


def executor_main(handler: object, run: Callable[[Any, Any], Coroutine[Any, Any, int]]) -> int:
    """The ``main()`` of a built-in executor: logging to the sandbox's stderr, a driver
    from the Mesos environment (exit 2 when it is missing), then ``run(handler, driver)``."""
    from .driver import ExecutorDriver

    logging.basicConfig(
        level=os.environ.get("MESONB_EXECUTOR_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        driver = ExecutorDriver(handler)  # type: ignore[arg-type]
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    return asyncio.run(run(handler, driver))
