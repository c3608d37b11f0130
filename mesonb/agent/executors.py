"""Executors on the agent: the executor side of one agent, put together.

:class:`Executors` is what the agent (and the executor API) holds. It is made of parts,
one concept each, which never reach back into the agent (they get a :class:`~.host.Host`):

* :class:`~.book.AgentBook`: the frameworks, executors and tasks;
* :class:`~.lifecycle.Lifecycle`: each executor's container, as the pure machine of
  :mod:`.container_fsm` says, from launch (or recovery, :mod:`.reattach`) to completion;
* :class:`~.tasks.Tasks`: each task, as the pure machine of :mod:`.task_fsm` says;
* :class:`~.dispatch.MasterCommands`: the master's RUN_TASK, KILL_TASK, SHUTDOWN_* ...;
* :class:`~.executor_calls.ExecutorCalls`: the executors' SUBSCRIBE, UPDATE, MESSAGE;
* :class:`~.executor_io.ExecutorIO`: events to executors, checkpoints, timers.

A RUN_TASK goes: agent → dispatch (executor chosen or launched by the lifecycle) → tasks
(queued, or LAUNCH sent); the executor's SUBSCRIBE: executor calls → lifecycle (machine
event) → tasks (queued LAUNCHes); its UPDATE: executor calls → tasks → the host's status
update manager.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from mesonb.protocol.agent import (
    AgentExecutor,
    AgentFrameworkMessage,
    AgentTask,
    KillTask,
    MasterCommand,
    RunTask,
    RunTaskGroup,
)
from mesonb.protocol.executor import ExecutorCall
from mesonb.protocol.mesos import FrameworkInfo

from . import reattach, recovery
from .book import AgentBook, EventStream, Executor, Framework, Task
from .dispatch import MasterCommands
from .executor_calls import ExecutorCalls
from .executor_io import ExecutorIO
from .host import Host
from .lifecycle import Lifecycle
from .status_updates import StatusUpdateManager
from .tasks import Tasks


class Executors:
    """The frameworks, executors and tasks of one agent, and what happens to them."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.book = AgentBook()
        self.io = ExecutorIO(host)
        self.tasks = Tasks(host, self.io)
        self.lifecycle = Lifecycle(host, self.book, self.io, self.tasks)
        self.commands = MasterCommands(host, self.book, self.io, self.lifecycle, self.tasks)
        self.calls = ExecutorCalls(host, self.book, self.lifecycle, self.tasks)
        # The entries taken once per task go straight to their part (no extra call).
        self.handle: Callable[[MasterCommand], bool] = self.commands.handle
        """Carry out a command about frameworks, executors or tasks; False if it is not."""
        self.run_task: Callable[[RunTask], None] = self.commands.run_task
        self.update: Callable[[ExecutorCall], None] = self.calls.update
        """An executor's UPDATE (``call.validate()`` passed)."""
        self.stream_closed: Callable[[str, str], None] = self.lifecycle.stream_closed
        """The terminal update of a task was acknowledged: the task is completed."""

    # -- the book -------------------------------------------------------------------
    @property
    def frameworks(self) -> dict[str, Framework]:
        return self.book.frameworks

    @property
    def completed_frameworks(self) -> deque[Framework]:
        return self.book.completed_frameworks

    def all_executors(self) -> Iterator[Executor]:
        return self.book.all_executors()

    def all_tasks(self) -> Iterator[Task]:
        return self.book.all_tasks()

    def register_payload(self) -> tuple[list[AgentTask], list[AgentExecutor], list[FrameworkInfo]]:
        """What a (re-)registration reports: tasks, custom executors, frameworks."""
        return self.book.register_payload()

    # -- the master's commands ------------------------------------------------------
    def run_task_group(self, run: RunTaskGroup) -> None:
        self.commands.run_task_group(run)

    def kill_task(self, kill: KillTask) -> None:
        self.commands.kill_task(kill)

    def shutdown_framework(self, framework_id: str) -> None:
        self.commands.shutdown_framework(framework_id)

    def shutdown_executor(self, executor: Executor, why: str = "asked to shut down") -> None:
        """Graceful: SHUTDOWN event, then destroy after the shutdown grace period."""
        self.lifecycle.shutdown(executor, why)

    def framework_message(self, msg: AgentFrameworkMessage) -> None:
        self.commands.framework_message(msg)

    def update_framework(self, info: FrameworkInfo) -> None:
        self.commands.update_framework(info)

    # -- the executors' calls -------------------------------------------------------
    def authenticate(self, authorization: str | None) -> tuple[str, str] | None:
        """Who is calling: ``(framework_id, executor_id)`` for a container token, None for
        the cluster secret or (on an agent without a secret) no credentials."""
        return self.calls.authenticate(authorization)

    def subscribe(self, call: ExecutorCall, stream: EventStream) -> None:
        self.calls.subscribe(call, stream)

    def message(self, call: ExecutorCall) -> None:
        self.calls.message(call)

    # -- the status update manager's actions ----------------------------------------
    def checkpoint_update(self, framework_id: str, task_id: str, record: dict[str, Any]) -> None:
        executor = self.book.executor_of(framework_id, task_id)
        if executor is not None:
            self.io.checkpoint_update(executor, task_id, record)

    # -- the agent's life -----------------------------------------------------------
    def flush_exited(self) -> None:
        """Send EXECUTOR_EXITED for executors that ended while the master was away."""
        self.lifecycle.flush_exited()

    def heartbeat(self) -> None:
        self.io.heartbeat(self.book.all_executors())

    async def shutdown_all(self, grace: float) -> None:
        """Shut every executor down (SHUTDOWN, then SIGKILL after ``grace``) and wait."""
        await self.lifecycle.shutdown_all(grace)

    @property
    def stopping(self) -> bool:
        return self.lifecycle.stopping

    def recover(self, state: recovery.AgentCheckpoint, updates: StatusUpdateManager,
                cleanup: bool = False) -> None:
        """Put an earlier run's checkpointed frameworks, executors and tasks back in the
        book; see :func:`mesonb.agent.reattach.recover`."""
        reattach.recover(self.lifecycle, updates, state, cleanup)

    def reregistering(self) -> bool:
        """True while a recovered executor may still re-subscribe."""
        return self.lifecycle.reregistering()

    def recovered_alive(self) -> bool:
        """True while a recovered executor's process has not exited."""
        return self.lifecycle.recovered_alive()
