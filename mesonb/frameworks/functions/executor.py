"""The functions executor: one long-lived Python process per agent and framework.

Started by the agent as ``python -m mesonb.frameworks.functions.executor`` (the
ExecutorInfo the scheduler sends with its first task on an agent) and reused for every
later task with the same executor id, so a call costs no interpreter start. Each task's
``data`` is a :class:`~.protocol.Call`; a forked worker (:mod:`.worker`) runs it.

Status updates are kept few, since each costs an acknowledgement round trip: no
TASK_STARTING, TASK_RUNNING only for calls still running after
:data:`RUNNING_AFTER` seconds (carrying a :class:`~.protocol.Running`: where the call's
output starts in its worker's log files, so ``fut.logs()`` shows it while it runs), then
TASK_FINISHED (or TASK_FAILED with the pickled exception) carrying an
:class:`~.protocol.Outcome`. A worker killed for exceeding its
task's ``mem`` gives TASK_FAILED with REASON_CONTAINER_LIMITATION_MEMORY; the executor
and the other tasks carry on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Coroutine
from typing import Any

from mesonb.executor.driver import ExecutorDriver, ExecutorHandler
from mesonb.executor.health import TaskChecks
from mesonb.protocol.mesos import KillPolicy, TaskInfo
from mesonb.protocol.states import Reason, TaskState
from mesonb.tasks import spawn

from . import shm
from .protocol import Outcome, Running
from .worker import Finished, Pool, WorkerDied

log = logging.getLogger(__name__)
RUNNING_AFTER = 0.2
POOL_ENV = "MESONB_FUNCTIONS_WORKERS"


class FunctionsExecutor(ExecutorHandler):
    """Runs each launched task's call in the worker pool."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.killed: set[str] = set()
        self._running_updates: dict[str, asyncio.Task[Any]] = {}
        # calls with no TASK_RUNNING sent yet: when it is due, in launch order (so in order
        # of due time); one timer, armed for the first, serves them all
        self._running_due: dict[str, tuple[float, ExecutorDriver]] = {}
        self._running_timer: asyncio.TimerHandle | None = None
        self._concluding: set[asyncio.Future[Any]] = set()
        self._event_loop: asyncio.AbstractEventLoop | None = None
        # the health checks and checks calls ask for (a failing one kills its call)
        self.checks = TaskChecks(lambda task_id, why: self.kill_call(task_id, why),
                                 cwd=pool.sandbox)

    def launch(self, driver: ExecutorDriver, task: TaskInfo) -> Coroutine[Any, Any, None] | None:
        """Hand the call to a worker in this turn. Its outcome sends the terminal update
        (:meth:`_done`); for a call with checks, the driver runs the returned coroutine,
        which waits for the outcome, stops the checks and sends the terminal update."""
        task_id = task.task_id
        mem = 0.0
        for resource in task.resources or ():
            if resource.get("name") == "mem":
                mem += resource.get("scalar", {}).get("value", 0.0)
        self._running_due[task_id] = (self._loop.time() + RUNNING_AFTER, driver)
        if self._running_timer is None:
            self._arm_running_timer()
        extra = task.extra
        checked = "health_check" in extra or "check" in extra
        if checked:
            self.checks.start(driver, task)
        running = self.pool.submit(task_id, task.data or b"", mem)
        if checked:
            return self._conclude(driver, task_id, running)
        running.add_done_callback(lambda _: self._done(driver, task_id, running))
        return None

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (asked for once: asyncio asks the OS for the pid each time)."""
        if self._event_loop is None:
            self._event_loop = asyncio.get_running_loop()
        return self._event_loop

    def _arm_running_timer(self) -> None:
        """Wake when the first call waiting for its TASK_RUNNING update is due (none: no
        timer)."""
        self._running_timer = None
        for due, _ in self._running_due.values():
            self._running_timer = asyncio.get_running_loop().call_at(due, self._running_now)
            return

    def _running_now(self) -> None:
        """Send TASK_RUNNING for each call still running :data:`RUNNING_AFTER` seconds after
        its launch."""
        now = asyncio.get_running_loop().time()
        while self._running_due:
            task_id, (due, driver) = next(iter(self._running_due.items()))
            if due > now:
                break
            del self._running_due[task_id]
            self._send_running(driver, task_id)
        self._arm_running_timer()

    def _done(self, driver: ExecutorDriver, task_id: str,
              running: asyncio.Future[Finished]) -> None:
        """The call's outcome is in (a call with no checks). The usual case, a call that
        returned or raised with no TASK_RUNNING sent, posts its terminal update here;
        anything else goes the whole way (:meth:`_conclude`)."""
        if running.cancelled() or running.exception() is not None or \
                task_id in self._running_updates:
            spawn(self._conclude(driver, task_id, running), self._concluding,
                  "executor handler", logger=log, level=logging.ERROR)
            return
        self._running_due.pop(task_id, None)
        finished = running.result()
        state, message = _terminal(finished)
        driver.post_update(task_id, state, message=message, data=finished.data)

    async def _conclude(self, driver: ExecutorDriver, task_id: str,
                        running: asyncio.Future[Finished]) -> None:
        try:
            finished = await running
        except WorkerDied as exc:
            self._running_due.pop(task_id, None)
            await self._after_running(task_id)
            logs = Outcome(ok=False, died=True, stdout=exc.stdout, stderr=exc.stderr).encode()
            if task_id in self.killed:
                self.killed.discard(task_id)
                await driver.update(task_id, TaskState.TASK_KILLED, message=str(exc), data=logs,
                                    healthy=self.checks.unhealthy(task_id))
                return
            reason = Reason[exc.reason] if exc.reason else Reason.REASON_EXECUTOR_TERMINATED
            await driver.update(task_id, TaskState.TASK_FAILED, message=str(exc), reason=reason,
                                data=logs)
            return
        self._running_due.pop(task_id, None)
        await self._after_running(task_id)
        state, message = _terminal(finished)
        await driver.update(task_id, state, message=message, data=finished.data)

    def _send_running(self, driver: ExecutorDriver, task_id: str) -> None:
        worker = self.pool.busy.get(task_id)  # None while the call waits for a worker
        data = Running(*worker.log_slices()).encode() if worker is not None else None
        self._running_updates[task_id] = asyncio.ensure_future(
            driver.update(task_id, TaskState.TASK_RUNNING, data=data))

    async def _after_running(self, task_id: str) -> None:
        """Terminal updates follow the RUNNING one (and health updates), never overtake it."""
        await self.checks.stop(task_id)
        pending = self._running_updates.pop(task_id, None)
        if pending is not None:
            try:
                await pending
            except Exception:
                log.exception("TASK_RUNNING update for %s failed", task_id)

    def kill_call(self, task_id: str, why: str) -> bool:
        """Kill a call's worker (its update: TASK_KILLED with ``why``); False if not here."""
        if self.pool.kill(task_id, why):
            self.killed.add(task_id)
            return True
        return False

    def kill(self, driver: ExecutorDriver, task_id: str, kill_policy: KillPolicy | None) -> Any:
        if self.kill_call(task_id, "Killed by the framework"):
            return None
        return driver.update(task_id, TaskState.TASK_KILLED, message="not running here")

    async def shutdown(self, driver: ExecutorDriver) -> None:
        self.killed.update(self.pool.busy)
        self.pool.close()
        await driver.wait_acknowledged(timeout=min(driver.shutdown_grace_period, 5.0))


def _terminal(finished: Finished) -> tuple[TaskState, str | None]:
    """The terminal state and message of a call that returned or raised (the outcome is
    decoded only for the message of one that raised)."""
    if finished.ok:
        return TaskState.TASK_FINISHED, None
    return TaskState.TASK_FAILED, (finished.outcome().exc_type or "the function raised")[:500]


def main() -> None:
    logging.basicConfig(level=os.environ.get("MESONB_LOG_LEVEL", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sandbox = os.environ.get("MESOS_SANDBOX") or os.getcwd()
    shm.sweep()  # blocks of clients killed with values in /dev/shm
    count = int(os.environ.get(POOL_ENV) or max(2, os.cpu_count() or 2))
    pool = Pool.prefork(count, sandbox)  # before any thread or event loop exists
    handler = FunctionsExecutor(pool)
    try:
        asyncio.run(ExecutorDriver(handler).run())
    finally:
        pool.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
