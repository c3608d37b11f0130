"""The executor side's I/O: events to executors, checkpoints, background work, one timer.

Everything here touches the outside world (an executor's event stream, files under the
work dir, the event loop) and decides nothing: the machines and the parts that carry out
their actions (:mod:`.lifecycle`, :mod:`.tasks`) call it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from mesonb.protocol.executor import ExecutorEvent, ExecutorEventType
from mesonb.tasks import spawn

from . import launcher, paths
from .book import Executor, ExecutorState, Framework, Task
from .host import Host

log = logging.getLogger("mesonb.agent.executors")
# How long an ACKNOWLEDGED may wait when nothing waits on it: the executor has other live
# tasks (it does not exit on it), or it is one that is reused (it completed tasks before
# and lived on, as mesonb's functions executor does). A burst or a loop of short calls on
# one executor then has it ride with the next LAUNCH rather than wake the executor on its
# own. Otherwise it waits the stream's 2 ms: an executor of one task exits on it.
ACK_RIDE_DELAY = 0.025


class ExecutorIO:
    """Sends, writes and schedules for the executor side of one agent."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._background: set[asyncio.Future[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.closed = False  # no timer is armed once closed
        # The FrameworkInfo last checkpointed per (agent id, framework id): a RUN_TASK
        # with the same info does not write (and fsync) it again.
        self._framework_written: dict[tuple[str, str], dict[str, Any]] = {}

    # -- executors ------------------------------------------------------------------
    def send(self, executor: Executor, event: ExecutorEvent) -> bool:
        """Write ``event`` on the executor's stream; False when it is not connected. An
        ACKNOWLEDGED to an executor with live tasks or a reused one waits up to
        :data:`ACK_RIDE_DELAY` to ride with the next event."""
        stream = executor.stream
        sent = False
        if stream is not None:
            if event.type is ExecutorEventType.ACKNOWLEDGED and (executor.completed or any(
                    not t.state.terminal for t in executor.launched.values())):
                sent = stream.send(event, ACK_RIDE_DELAY)
            else:
                sent = stream.send(event)
        if not sent:
            # An executor that already went away needs no SHUTDOWN; anything else is news.
            level = logging.INFO if event.type is ExecutorEventType.SHUTDOWN else logging.WARNING
            log.log(level, "cannot send %s to executor %s: not connected", event.type.value,
                    executor.executor_id)
            return False
        return True

    def heartbeat(self, executors: Iterable[Executor]) -> None:
        """HEARTBEAT to every subscribed executor."""
        for executor in executors:
            if executor.state is ExecutorState.RUNNING and executor.stream is not None:
                executor.stream.send(ExecutorEvent(type=ExecutorEventType.HEARTBEAT))

    # -- checkpoints ----------------------------------------------------------------
    def checkpointer(self) -> launcher.Checkpointer | None:
        agent_id = self.host.agent_id()
        return launcher.Checkpointer(self.host.config.work_dir, agent_id) if agent_id else None

    def checkpoint_framework(self, framework: Framework) -> None:
        ckpt = self.checkpointer() if framework.checkpoint else None
        if ckpt is None:
            return
        key, info = (ckpt.agent_id, framework.framework_id), framework.info.to_json()
        if self._framework_written.get(key) == info and paths.framework_info_path(
                ckpt.work_dir, ckpt.agent_id, framework.framework_id).exists():
            return
        ckpt.framework(framework)
        self._framework_written[key] = info

    def checkpoint_task(self, framework: Framework, executor: Executor, task: Task) -> None:
        ckpt = self.checkpointer() if framework.checkpoint else None
        if ckpt is not None:
            ckpt.task(executor, task)

    def checkpoint_update(self, executor: Executor, task_id: str,
                          record: dict[str, Any]) -> None:
        ckpt = self.checkpointer()
        if ckpt is not None:
            ckpt.update(executor, task_id, record)

    # -- the event loop -------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background; a failure is logged."""
        spawn(coro, self._background, "background work", logger=log, level=logging.ERROR)

    async def drain(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for the background work to finish."""
        pending = [f for f in self._background if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def arm(self, deadline: float | None, fire: Callable[[], None]) -> None:
        """One timer for the earliest deadline of the machines (None: none)."""
        if deadline is not None and deadline == self._timer_at and self._timer is not None:
            return  # already set for it
        self.disarm()
        if deadline is not None and not self.closed:
            self._timer_at = deadline
            delay = max(0.0, deadline - self.host.clock.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire, fire)

    def _fire(self, fire: Callable[[], None]) -> None:
        self._timer = None
        self._timer_at = None
        fire()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None
