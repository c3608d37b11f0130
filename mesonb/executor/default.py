"""The default executor: runs task groups (pods), as Mesos's ``mesos-default-executor``.

Run as ``python -m mesonb.executor.default`` by the agent for RUN_TASK_GROUP when the
ExecutorInfo has no command of its own. Every task of a group runs as a process with its
own sandbox ``<executor sandbox>/tasks/<task_id>/`` (``stdout``/``stderr`` there, and
``MESOS_SANDBOX`` pointing at it), the way Mesos gives nested containers their own sandbox.

Group semantics (docs/nested-container-and-task-group.md): all tasks start together; a
KILL of one task kills its whole group; when a task fails or is killed, the rest of its
group is killed. The executor exits once every task it was given is terminal and the
agent acknowledged the updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesonb.protocol.mesos import KillPolicy, TaskGroupInfo, TaskInfo
from mesonb.protocol.states import Reason, TaskState
from mesonb.tasks import spawn

from .command import ACK_TIMEOUT, shutdown_kill_grace
from .driver import ExecutorDriver, ExecutorHandler
from .health import check_update, start_checks
from .process import TaskProcess, executor_main, task_environment, terminal_status

log = logging.getLogger("mesonb.executor.default")


@dataclass
class _Running:
    info: TaskInfo
    group: list[str]
    process: TaskProcess | None = None
    killed: bool = False
    terminal: bool = False
    started: asyncio.Event = field(default_factory=asyncio.Event)
    checks: list[Any] = field(default_factory=list)
    unhealthy: bool = False


class DefaultExecutor(ExecutorHandler):
    """Runs every task group the agent launches on it."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.tasks: dict[str, _Running] = {}
        self.idle = asyncio.Event()  # every task given so far is terminal (and there was one)
        self._pending: set[asyncio.Future[Any]] = set()

    async def launch(self, driver: ExecutorDriver, task: TaskInfo) -> None:
        await driver.update(task.task_id, TaskState.TASK_FAILED,
                            message="The default executor runs task groups only (LAUNCH_GROUP)",
                            reason=Reason.REASON_TASK_INVALID)

    async def launch_group(self, driver: ExecutorDriver, group: TaskGroupInfo) -> None:
        ids = [t.task_id for t in group.tasks]
        entries = [_Running(info=t, group=ids) for t in group.tasks]
        for entry in entries:
            self.tasks[entry.info.task_id] = entry
        self.idle.clear()
        for entry in entries:
            await driver.update(entry.info.task_id, TaskState.TASK_STARTING)
        failure = None
        for entry in entries:
            try:
                entry.process = await self._start(driver, entry.info)
            except (OSError, ValueError) as exc:
                failure = f"Failed to launch task {entry.info.task_id}: {exc}"
                break
            finally:
                entry.started.set()
        if failure is not None:  # all or nothing
            log.error("%s", failure)
            for entry in entries:
                if entry.process is not None:
                    await entry.process.kill(0.0)
                    await entry.process.wait()
                await self._terminal(driver, entry, TaskState.TASK_FAILED, failure,
                                     Reason.REASON_CONTAINER_LAUNCH_FAILED)
            return
        for entry in entries:
            if not entry.killed:
                await driver.update(entry.info.task_id, TaskState.TASK_RUNNING)
                self._start_checks(driver, entry)
        await asyncio.gather(*(self._watch(driver, e) for e in entries))

    async def kill(
        self, driver: ExecutorDriver, task_id: str, kill_policy: KillPolicy | None
    ) -> None:
        entry = self.tasks.get(task_id)
        if entry is None:
            log.warning("asked to kill unknown task %s", task_id)
            return
        await self._kill_group(driver, entry.group, kill_policy)

    async def shutdown(self, driver: ExecutorDriver) -> None:
        grace = shutdown_kill_grace(driver.shutdown_grace_period)
        policy = KillPolicy.from_json({"grace_period": {"nanoseconds": int(grace * 1e9)}})
        groups = {tuple(e.group) for e in self.tasks.values() if not e.terminal}
        await asyncio.gather(*(self._kill_group(driver, list(g), policy) for g in groups))
        if self.tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.idle.wait(), grace + 1.0)
        await driver.wait_acknowledged(timeout=min(ACK_TIMEOUT, grace))

    # -- internals ------------------------------------------------------------------
    async def _start(self, driver: ExecutorDriver, task: TaskInfo) -> TaskProcess:
        if task.command is None:
            raise ValueError("the task has no command")
        sandbox = Path(driver.sandbox) / "tasks" / task.task_id
        sandbox.mkdir(parents=True, exist_ok=True)
        env = task_environment(self.env, task, str(sandbox))
        with open(sandbox / "stdout", "ab") as out, open(sandbox / "stderr", "ab") as err:
            process = TaskProcess(task.command, env, str(sandbox), stdout=out, stderr=err)
            await process.start()
        log.info("started task %s: pid %s", task.task_id, process.pid)
        return process

    def _start_checks(self, driver: ExecutorDriver, entry: _Running) -> None:
        """The task's health check and check (mesonb.executor.health); too many failed
        health checks kill its group, the task ending TASK_KILLED and unhealthy."""
        task = entry.info
        sandbox = str(Path(driver.sandbox) / "tasks" / task.task_id)

        def later(coro: Any) -> None:
            spawn(coro, self._pending, "task health work", logger=log)

        def kill() -> None:
            entry.unhealthy = True
            later(self._kill_group(driver, entry.group, None))

        entry.checks = start_checks(
            task, task_environment(self.env, task, sandbox), sandbox,
            lambda healthy: later(driver.update(
                task.task_id, TaskState.TASK_RUNNING, healthy=healthy,
                reason=Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED)),
            kill, lambda status: later(driver.send_status(check_update(task, status))))

    async def _watch(self, driver: ExecutorDriver, entry: _Running) -> None:
        assert entry.process is not None
        returncode = await entry.process.wait()
        for checker in entry.checks:
            checker.stop()
        state, reason, message = terminal_status(returncode, killed=entry.killed)
        await self._terminal(driver, entry, state, message, reason)
        if state is not TaskState.TASK_FINISHED:
            await self._kill_group(driver, entry.group, None)

    async def _kill_group(
        self, driver: ExecutorDriver, group: list[str], policy: KillPolicy | None
    ) -> None:
        kills = []
        framework = driver.framework_info
        killing_state = framework is not None and framework.has_capability("TASK_KILLING_STATE")
        for task_id in group:
            entry = self.tasks.get(task_id)
            if entry is None or entry.killed or entry.terminal:
                continue
            entry.killed = True
            if killing_state:
                await driver.update(task_id, TaskState.TASK_KILLING)
            task_policy = policy or entry.info.kill_policy
            grace = task_policy.grace_seconds(3.0) if task_policy else 3.0
            await entry.started.wait()
            if entry.process is not None:
                kills.append(entry.process.kill(grace))
        await asyncio.gather(*kills)

    async def _terminal(self, driver: ExecutorDriver, entry: _Running, state: TaskState,
                        message: str, reason: Reason | None) -> None:
        if entry.terminal:
            return
        entry.terminal = True
        log.info("task %s: %s (%s)", entry.info.task_id, state.value, message)
        await driver.update(entry.info.task_id, state, message=message, reason=reason,
                            healthy=False if entry.unhealthy else None)
        if all(e.terminal for e in self.tasks.values()):
            self.idle.set()


async def run_executor(handler: DefaultExecutor, driver: ExecutorDriver) -> int:
    """Run until every task is terminal and acknowledged, or the agent is gone."""
    runner = asyncio.ensure_future(driver.run())
    idle = asyncio.ensure_future(handler.idle.wait())
    while True:
        await asyncio.wait({runner, idle}, return_when=asyncio.FIRST_COMPLETED)
        if runner.done():
            break
        await driver.wait_acknowledged_or_agent_gone(timeout=ACK_TIMEOUT)
        if handler.idle.is_set():  # no group arrived meanwhile
            driver.stop()
            break
        idle = asyncio.ensure_future(handler.idle.wait())
    idle.cancel()
    await asyncio.gather(runner, idle, return_exceptions=True)
    for entry in handler.tasks.values():
        if entry.process is not None and entry.process.returncode is None:
            await entry.process.kill(0.0)
    return 0


def main() -> int:
    return executor_main(DefaultExecutor(), run_executor)


if __name__ == "__main__":
    sys.exit(main())
