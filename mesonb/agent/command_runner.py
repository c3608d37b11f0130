"""The command executor, run inside the agent: no Python interpreter per command task.

A command task's container is its command's own process tree: the agent starts
``/bin/sh`` (which joins the container's cgroups and ``exec``s the command) in the
sandbox, in a new session, and plays Mesos's command executor itself, through the same
executor calls an executor process would make: SUBSCRIBE (in the same turn as the launch),
then UPDATEs TASK_STARTING, TASK_RUNNING and the terminal state with the command
executor's messages (:func:`mesonb.executor.process.terminal_status`). KILL (TASK_KILLING
for frameworks with that capability, SIGTERM to the task's process group, SIGKILL after
the grace), SHUTDOWN and ``max_completion_time`` behave as in
:mod:`mesonb.executor.command`. Exits are watched through a pidfd on the event loop: no
thread and no interpreter per task.

Frameworks that checkpoint keep the separate executor process (it outlives an agent
restart and re-subscribes); so does ``--command-executor=process``. A checkpointing
framework may ask for the in-agent runner with the FrameworkInfo label
``mesonb.command_executor=agent`` (the Marathon framework does: hundreds of instances,
not hundreds of interpreters): its tasks outlive the agent (no watchdog kills them) and
a restarted agent adopts those still running (:func:`adopt`) — it re-subscribes for
them, kills them on request, and reports their end, whose exit status it cannot know
(a task that ends while the agent is down fails as its executor would have vanished).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mesonb.executor.command import LOG_FILE
from mesonb.executor.driver import SOCKET_ENV
from mesonb.executor.health import start_checks
from mesonb.executor.process import task_environment, terminal_status
from mesonb.protocol.executor import (
    ExecutorCall,
    ExecutorCallType,
    ExecutorEvent,
    ExecutorEventType,
    ExecutorSubscribe,
    ExecutorUpdate,
)
from mesonb.protocol.mesos import FrameworkInfo, KillPolicy, TaskInfo, TaskStatus
from mesonb.protocol.states import Reason, TaskState
from mesonb.tasks import spawn as spawn_background

from .containerizer import Container, is_alive

if TYPE_CHECKING:
    from .book import Executor
    from .executors import Executors

log = logging.getLogger(__name__)
IN_AGENT_LABEL = ("mesonb.command_executor", "agent")
SPAWNER = ThreadPoolExecutor(max_workers=8, thread_name_prefix="mesonb-spawn")


def shutdown_grace(env: dict[str, str], default: float = 5.0) -> float:
    text = env.get("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "").removesuffix("secs")
    try:
        return float(text)
    except ValueError:
        return default


def asks_in_agent(framework: FrameworkInfo) -> bool:
    """Whether a (checkpointing) framework asks for in-agent command tasks (its label)."""
    labels = (framework.labels or {}).get("labels") or []
    return any(isinstance(item, dict) and (item.get("key"), item.get("value")) == IN_AGENT_LABEL
               for item in labels)


class TaskContainer(Container):
    """A command task's container: its process is the task itself, supervised here."""

    runner: CommandRunner

    def subscribe(self) -> None:
        """Subscribe the in-agent executor: the agent sends it its LAUNCH."""
        self.runner.subscribe(InAgentStream(self.runner))

    async def wait(self) -> int | None:
        await self.runner.finished
        self.exited = True
        await self.cleanup()
        return self.returncode


class InAgentStream:
    """The event stream of an in-agent executor: events go to its runner (next turn)."""

    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner
        self.closed = False

    def send(self, event: ExecutorEvent, delay: float = 0.0) -> bool:
        if self.closed:  # handed over next turn whatever the delay
            return False
        asyncio.get_running_loop().call_soon(self.runner.on_event, event)
        return True

    def close(self) -> None:
        self.closed = True


class CommandRunner:
    """Runs the single task of one command executor inside the agent."""

    def __init__(self, executors: Callable[[], Executors], executor: Executor,
                 env: dict[str, str], popen: subprocess.Popen[bytes] | None, cwd: str,
                 pid: int | None = None) -> None:
        self._executors = executors
        self.pid = popen.pid if popen is not None else int(pid or 0)
        self.framework_id = executor.framework_id
        self.executor_id = executor.executor_id
        self.env = env
        self.popen = popen
        self.task: TaskInfo | None = None
        self.framework: FrameworkInfo | None = None
        self.returncode: int | None = None
        self.kill_requested = False
        self.timed_out = False
        self.destroying = False  # the agent destroys the container: no update from us
        self.limited: Callable[[], bool] = lambda: False
        loop = asyncio.get_running_loop()
        self.finished: asyncio.Future[None] = loop.create_future()
        self._exited: asyncio.Future[int | None] = loop.create_future()
        self._deadline: asyncio.TimerHandle | None = None
        self._sent_terminal = False
        self._pidfd: int | None = None
        self._pending: set[asyncio.Future[None]] = set()
        self.checks: list[Any] = []
        self.unhealthy = False
        self.popen_cwd = cwd
        try:
            self._pidfd = os.pidfd_open(self.pid)
            loop.add_reader(self._pidfd, self._poll)
        except OSError:  # pragma: no cover - kernels without pidfds
            self._later(self._poll_slowly())
        self._poll()

    def _later(self, coro: Coroutine[Any, Any, None]) -> None:
        spawn_background(coro, self._pending, "command task work", logger=log)

    # -- the process ----------------------------------------------------------------
    def _poll(self) -> None:
        if self._exited.done():
            return
        if self.popen is not None:
            code = self.popen.poll()
            if code is None:
                return
        elif is_alive(self.pid):  # adopted: not our child, its status stays unknown
            return
        else:
            code = None
        if self._pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self.returncode = code
        self._exited.set_result(code)
        self._later(self._conclude())

    async def _poll_slowly(self) -> None:
        while not self._exited.done():
            await asyncio.sleep(0.05)
            self._poll()

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def kill(self, grace: float) -> None:
        """SIGTERM the task's process group, SIGKILL it after ``grace`` seconds."""
        self.kill_requested = True
        if not self._exited.done():
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exited), max(grace, 0.0))
        self.signal_group(signal.SIGKILL)

    # -- executor calls -------------------------------------------------------------
    def subscribe(self, stream: InAgentStream) -> None:
        adopted = [self.task] if self.task is not None else None  # re-subscribing for it
        self._executors().subscribe(ExecutorCall(
            type=ExecutorCallType.SUBSCRIBE, executor_id=self.executor_id,
            framework_id=self.framework_id,
            subscribe=ExecutorSubscribe(unacknowledged_tasks=adopted)), stream)

    def update(self, state: TaskState, message: str | None = None,
               reason: Reason | None = None, healthy: bool | None = None,
               check_status: dict[str, Any] | None = None) -> None:
        if self.task is None or self.destroying or self._sent_terminal:
            return
        if state.terminal:
            self._sent_terminal = True
        status = TaskStatus(task_id=self.task.task_id, state=state, message=message,
                            reason=reason, uuid=uuid.uuid4().bytes, healthy=healthy)
        if check_status is not None:
            status.extra["check_status"] = check_status
        with contextlib.suppress(Exception):
            self._executors().update(ExecutorCall(
                type=ExecutorCallType.UPDATE, executor_id=self.executor_id,
                framework_id=self.framework_id, update=ExecutorUpdate(status=status)))

    # -- events from the agent --------------------------------------------------------
    def on_event(self, event: ExecutorEvent) -> None:
        kind = event.type
        if kind is ExecutorEventType.SUBSCRIBED and event.subscribed is not None:
            self.framework = event.subscribed.framework_info
        elif kind is ExecutorEventType.LAUNCH and event.launch is not None:
            self._launch(event.launch.task)
        elif kind is ExecutorEventType.KILL and event.kill is not None:
            self._kill(event.kill.task_id, event.kill.kill_policy)
        elif kind is ExecutorEventType.SHUTDOWN:
            grace = shutdown_grace(self.env)
            self._later(self.kill(max(grace - 1.0, grace / 2)))
        elif kind is ExecutorEventType.LAUNCH_GROUP and event.launch_group is not None:
            for task in event.launch_group.task_group.tasks:
                self.task = task
                self.update(TaskState.TASK_FAILED, "The command executor runs no task groups")

    def note(self, line: str) -> None:
        """A line in the sandbox's ``executor.log``, as the command executor process
        writes there (the task's own stdout/stderr hold only what it wrote)."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with contextlib.suppress(OSError), open(f"{self.popen_cwd}/{LOG_FILE}", "a") as f:
            f.write(f"{stamp} INFO mesonb.agent.command_runner: {line}\n")

    def _launch(self, task: TaskInfo) -> None:
        if self.task is not None:
            log.warning("command executor %s: a second task %s", self.executor_id, task.task_id)
            return
        self.task = task
        self.note(f"started task {task.task_id}: pid {self.pid}")
        self.update(TaskState.TASK_STARTING)
        if self.kill_requested:
            return
        self.update(TaskState.TASK_RUNNING)
        self._supervise(task)

    def _supervise(self, task: TaskInfo) -> None:
        """Deadline and health checks of the running task."""
        if task.max_completion_time is not None:
            seconds = max(0.0, task.max_completion_time.nanoseconds / 1e9)
            self._deadline = asyncio.get_running_loop().call_later(
                seconds, self._max_completion_reached)
        self.checks = start_checks(
            task, self.env, self.popen_cwd,
            lambda healthy: self.update(TaskState.TASK_RUNNING, healthy=healthy,
                                        reason=Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED),
            self._health_kill,
            lambda status: self.update(TaskState.TASK_RUNNING, check_status=status,
                                       reason=Reason.REASON_TASK_CHECK_STATUS_UPDATED))
        if self._exited.done():
            self._later(self._conclude())

    def _health_kill(self) -> None:
        """The health check failed too often: kill the task (TASK_KILLED, unhealthy)."""
        if self.kill_requested or self.task is None:
            return
        self.unhealthy = True
        policy = self.task.kill_policy
        default = shutdown_grace(self.env)
        self._later(self.kill(policy.grace_seconds(default) if policy else default))

    def _kill(self, task_id: str, policy: KillPolicy | None) -> None:
        if self.task is None or task_id != self.task.task_id or self.kill_requested:
            return
        default = shutdown_grace(self.env)
        policy = policy or self.task.kill_policy
        grace = policy.grace_seconds(default) if policy else default
        if self.framework is not None and self.framework.has_capability("TASK_KILLING_STATE"):
            self.update(TaskState.TASK_KILLING)
        self._later(self.kill(grace))

    def _max_completion_reached(self) -> None:
        if self._exited.done():
            return
        self.timed_out = True
        policy = self.task.kill_policy if self.task else None
        self._later(self.kill(policy.grace_seconds(0.0) if policy else 0.0))

    async def _conclude(self) -> None:
        """The process exited: the terminal update (once the task was launched)."""
        if self.finished.done() or (self.task is None and not self.destroying):
            return
        if self._deadline is not None:
            self._deadline.cancel()
        code = self._exited.result()
        for checker in self.checks:
            checker.stop()
        if not self.limited():
            state, reason, message = terminal_status(
                code, killed=self.kill_requested, timed_out=self.timed_out
            ) if code is not None else unknown_status(self.kill_requested)
            if self.task is not None:
                self.note(f"task {self.task.task_id}: {state.value} ({message})")
            self.update(state, message, reason, healthy=False if self.unhealthy else None)
        self.signal_group(signal.SIGKILL)  # whatever the task left in its group
        self.finished.set_result(None)

    @property
    def reported(self) -> bool:
        return self._sent_terminal

    def stop(self) -> None:
        """The agent destroyed the container: end without an update of our own."""
        self.destroying = True
        if not self.finished.done() and self._exited.done():
            self.finished.set_result(None)


def unknown_status(killed: bool) -> tuple[TaskState, Reason | None, str]:
    """The end of an adopted task, whose exit status a restarted agent cannot know."""
    if killed:
        return TaskState.TASK_KILLED, None, "Command killed (exit status unknown: adopted" \
            " after an agent restart)"
    return (TaskState.TASK_FAILED, Reason.REASON_EXECUTOR_TERMINATED,
            "Command exited (exit status unknown: adopted after an agent restart)")


def adopt(executors: Callable[[], Executors], executor: Executor, found: Container
          ) -> TaskContainer:
    """A restarted agent takes back an in-agent command task of a checkpointing framework
    that outlived the agent (``found``: its recovered container): the runner re-subscribes
    for it once the agent is ready (the next loop turn) and supervises it again."""
    container = TaskContainer(found.container_id, found.pid, found.sandbox, None,
                              isolator=found.isolator, handle=found.handle,
                              finalizers=found.finalizers)
    if found._pidfd is not None:  # the runner watches the pid with its own
        os.close(found._pidfd)
        found._pidfd = None
    tasks = executor.tasks()
    task = tasks[0].info if tasks else None
    env = dict(os.environ) if task is None else task_environment(
        dict(os.environ), task, str(found.sandbox))
    runner = CommandRunner(executors, executor, env, None, str(found.sandbox), pid=found.pid)
    runner.task = task
    container.runner = runner
    if runner.task is not None:
        runner._supervise(runner.task)
        runner.note(f"adopted task {runner.task.task_id} after an agent restart: "
                    f"pid {found.pid}")

    def finished(_: object) -> None:
        container.returncode = None

    runner.finished.add_done_callback(finished)
    asyncio.get_running_loop().call_soon(container.subscribe)
    return container


def spawn(argv: list[str], executable: str | None, env: dict[str, str], sandbox: Path
          ) -> subprocess.Popen[bytes]:
    """Start ``argv`` in ``sandbox`` in a new session, output to the sandbox's files."""
    with open(sandbox / "stdout", "ab") as out, open(sandbox / "stderr", "ab") as err:
        return subprocess.Popen(argv, executable=executable, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, cwd=str(sandbox), env=env,
                                start_new_session=True)


def task_env(env: dict[str, str]) -> dict[str, str]:
    """The executor environment minus what only an executor process needs."""
    return {k: v for k, v in env.items() if k != SOCKET_ENV}


async def start(executors: Callable[[], Executors], executor: Executor, argv: list[str],
                executable: str | None, env: dict[str, str], sandbox: Path) -> TaskContainer:
    """Spawn the command (OSError when it cannot be); the container. Call
    :meth:`TaskContainer.subscribe` once it is isolated. The spawn runs on a small thread
    pool: a fork waits for the child's exec, and other launches need not wait with it."""
    loop = asyncio.get_running_loop()
    popen = await loop.run_in_executor(SPAWNER, spawn, argv, executable, task_env(env),
                                       sandbox)
    runner = CommandRunner(executors, executor, env, popen, str(sandbox))
    container = TaskContainer(executor.container_id, popen.pid, sandbox, None)
    container.runner = runner

    def finished(_: object) -> None:
        # Reported its task: the "executor" exited normally; destroyed: as the task did.
        container.returncode = 0 if runner.reported else runner.returncode

    runner.finished.add_done_callback(finished)
    return container

