"""The command executor: runs one command task, as Mesos's ``mesos-executor`` does.

Run as ``python -m mesonb.executor.command`` by the agent for a task without an executor.

* LAUNCH: TASK_STARTING, start the command in the sandbox (its own process group), then
  TASK_RUNNING; when it exits, TASK_FINISHED (status 0) or TASK_FAILED with
  ``"Command exited with status N"`` / ``"Command terminated with signal SIGNAME"``.
* KILL: TASK_KILLING (frameworks with the TASK_KILLING_STATE capability), SIGTERM to the
  task's process group, SIGKILL after the grace period (the KILL's kill policy, else the
  task's, else ``MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD``), then TASK_KILLED.
* ``max_completion_time``: the task is killed and fails with
  REASON_MAX_COMPLETION_TIME_REACHED.
* SHUTDOWN: kill the task within the agent's shutdown grace period.

After the terminal update the executor waits (briefly) for the agent's acknowledgement,
then exits. Startup stays light: only asyncio and :mod:`mesonb.protocol` are imported.

The sandbox's ``stdout`` and ``stderr`` hold only what the command wrote: the executor's
own log lines ("started task ...", the kill's signals) go to :data:`LOG_FILE`
(``executor.log``) in the sandbox, at ``MESONB_EXECUTOR_LOG_LEVEL`` (default INFO). Only
when that file cannot be opened do they go to stderr. (Mesos's command executor prints
its lines into the task's stderr; a ``cluster.run`` user wants the command's own output.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from typing import Any

from mesonb.protocol.mesos import KillPolicy, TaskInfo
from mesonb.protocol.states import Reason, TaskState
from mesonb.tasks import spawn

from .driver import ExecutorDriver, ExecutorHandler
from .health import check_update, start_checks
from .process import TaskProcess, executor_main, task_environment, terminal_status

log = logging.getLogger("mesonb.executor.command")

ACK_TIMEOUT = 10.0  # how long to wait for the terminal update's acknowledgement
LOG_FILE = "executor.log"  # in the sandbox: this executor's own log lines


def shutdown_kill_grace(shutdown_grace: float) -> float:
    """The grace a task gets when its executor is shut down: a little less than the agent's
    (Mesos subtracts a reap interval), so the executor still reports TASK_KILLED."""
    return max(shutdown_grace - 1.0, shutdown_grace / 2)


class CommandExecutor(ExecutorHandler):
    """Runs the single task of a command executor."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.task: TaskInfo | None = None
        self.process: TaskProcess | None = None
        self.kill_grace: float | None = None  # set once a kill was asked for
        self.timed_out = False
        self.done = asyncio.Event()  # set once the terminal update was sent
        self._deadline: asyncio.TimerHandle | None = None
        self._killer: asyncio.Future[None] | None = None
        self.checks: list[Any] = []
        self.unhealthy = False
        self._pending: set[asyncio.Future[Any]] = set()

    async def launch(self, driver: ExecutorDriver, task: TaskInfo) -> None:
        if self.task is not None:
            await driver.update(task.task_id, TaskState.TASK_FAILED,
                                message="Attempted to run multiple tasks using a"
                                        " \"command\" executor")
            return
        self.task = task
        await driver.update(task.task_id, TaskState.TASK_STARTING)
        if task.command is None:
            await self._fail(driver, "The task has no command")
            return
        env = task_environment(self.env, task, driver.sandbox)
        process = TaskProcess(task.command, env, driver.sandbox)
        try:
            await process.start()
        except (OSError, ValueError) as exc:
            await self._fail(driver, f"Failed to launch task subprocess: {exc}")
            return
        self.process = process
        log.info("started task %s: pid %s", task.task_id, process.pid)
        if self.kill_grace is not None:  # a KILL came while we were starting
            self._killer = asyncio.ensure_future(process.kill(self.kill_grace))
        else:
            await driver.update(task.task_id, TaskState.TASK_RUNNING)
            self.checks = start_checks(
                task, env, driver.sandbox,
                lambda healthy: self._later(driver.update(
                    task.task_id, TaskState.TASK_RUNNING, healthy=healthy,
                    reason=Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED)),
                lambda: self._health_kill(driver),
                lambda status: self._later(driver.send_status(check_update(task, status))))
        if task.max_completion_time is not None:
            seconds = max(0.0, task.max_completion_time.nanoseconds / 1e9)
            self._deadline = asyncio.get_running_loop().call_later(
                seconds, self._max_completion_reached, driver)
        returncode = await process.wait()
        if self._deadline is not None:
            self._deadline.cancel()
        for checker in self.checks:
            checker.stop()
        state, reason, message = terminal_status(
            returncode, killed=process.kill_requested, timed_out=self.timed_out)
        log.info("task %s: %s (%s)", task.task_id, state.value, message)
        await driver.update(task.task_id, state, message=message, reason=reason,
                            healthy=False if self.unhealthy else None)
        self.done.set()

    async def kill(
        self, driver: ExecutorDriver, task_id: str, kill_policy: KillPolicy | None
    ) -> None:
        if self.task is None or task_id != self.task.task_id:
            log.warning("asked to kill unknown task %s", task_id)
            return
        if self.kill_grace is not None or self.done.is_set():
            return
        default = driver.shutdown_grace_period
        policy = kill_policy or self.task.kill_policy
        grace = policy.grace_seconds(default) if policy else default
        self.kill_grace = grace
        framework = driver.framework_info
        if framework is not None and framework.has_capability("TASK_KILLING_STATE"):
            await driver.update(task_id, TaskState.TASK_KILLING)
        if self.process is not None:
            await self.process.kill(grace)

    async def shutdown(self, driver: ExecutorDriver) -> None:
        grace = shutdown_kill_grace(driver.shutdown_grace_period)
        if self.process is not None and self.process.returncode is None:
            self.kill_grace = grace
            await self.process.kill(grace)
        if self.task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), grace + 1.0)
        await driver.wait_acknowledged(timeout=min(ACK_TIMEOUT, grace))

    def _later(self, coro: Any) -> None:
        spawn(coro, self._pending, "command executor work", logger=log)

    def _health_kill(self, driver: ExecutorDriver) -> None:
        """Too many failed health checks: kill the task (TASK_KILLED, unhealthy)."""
        if self.process is None or self.kill_grace is not None or self.task is None:
            return
        self.unhealthy = True
        default = driver.shutdown_grace_period
        policy = self.task.kill_policy
        self.kill_grace = policy.grace_seconds(default) if policy else default
        self._later(self.process.kill(self.kill_grace))

    def _max_completion_reached(self, driver: ExecutorDriver) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        log.info("task %s reached its max_completion_time", self.task and self.task.task_id)
        self.timed_out = True
        policy = self.task.kill_policy if self.task else None
        grace = policy.grace_seconds(0.0) if policy else 0.0
        self._killer = asyncio.ensure_future(self.process.kill(grace))

    async def _fail(self, driver: ExecutorDriver, message: str) -> None:
        assert self.task is not None
        log.error("task %s: %s", self.task.task_id, message)
        await driver.update(self.task.task_id, TaskState.TASK_FAILED, message=message,
                            reason=Reason.REASON_COMMAND_EXECUTOR_FAILED)
        self.done.set()


async def run_executor(handler: CommandExecutor, driver: ExecutorDriver) -> int:
    """Run until the task is over and its terminal update acknowledged (or the agent is
    gone); the process exit code."""
    runner = asyncio.ensure_future(driver.run())
    finished = asyncio.ensure_future(handler.done.wait())
    await asyncio.wait({runner, finished}, return_when=asyncio.FIRST_COMPLETED)
    if finished.done() and not runner.done():
        if not await driver.wait_acknowledged_or_agent_gone(timeout=ACK_TIMEOUT):
            log.warning("terminal update not acknowledged within %gs; exiting", ACK_TIMEOUT)
        driver.stop()
    finished.cancel()
    await asyncio.gather(runner, finished, return_exceptions=True)
    process = handler.process
    if process is not None and process.returncode is None:  # the agent went away
        await process.kill(0.0)
    return 0


def log_to_sandbox(env: dict[str, str] | None = None) -> str | None:
    """Send this process's log lines to :data:`LOG_FILE` in the sandbox instead of the
    task's stderr; the file's path, or None when it could not be opened."""
    env = dict(os.environ if env is None else env)
    sandbox = env.get("MESOS_SANDBOX") or env.get("MESOS_DIRECTORY") or os.getcwd()
    path = os.path.join(sandbox, LOG_FILE)
    try:
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)  # executor_main's logging.basicConfig then adds no stderr one
    try:
        root.setLevel(env.get("MESONB_EXECUTOR_LOG_LEVEL", "INFO").upper())
    except ValueError:
        root.setLevel(logging.INFO)
    return path


def main() -> int:
    log_to_sandbox()
    return executor_main(CommandExecutor(), run_executor)


if __name__ == "__main__":
    sys.exit(main())
