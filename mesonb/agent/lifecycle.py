"""Carrying out the container machine's actions (:mod:`.container_fsm`): executors'
processes started, watched and destroyed, tokens issued and revoked, EXECUTOR_EXITED told
to the master, and executors and frameworks moved to the completed lists.

:class:`Lifecycle` owns the machine, feeds it events (with the clock's time) and keeps one
timer for the machine's earliest deadline. The process itself is
:mod:`mesonb.agent.containerizer`'s, how it is prepared :mod:`mesonb.agent.launcher`'s.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import uuid

from mesonb.executor.process import describe_returncode
from mesonb.protocol.agent import AgentCall, AgentCallType, ExecutorExited
from mesonb.protocol.executor import ExecutorEvent, ExecutorEventType
from mesonb.protocol.mesos import ExecutorInfo
from mesonb.protocol.states import Reason, TaskState
from mesonb.security import tokens

from . import container_fsm as fsm
from . import containerizer, launcher, paths, task_fsm
from .book import AgentBook, Executor, ExecutorState, Framework
from .executor_io import ExecutorIO
from .host import Host
from .tasks import Tasks

log = logging.getLogger("mesonb.agent.executors")


class Lifecycle:
    """The executors of one agent, from launch to completion."""

    def __init__(self, host: Host, book: AgentBook, io: ExecutorIO, tasks: Tasks) -> None:
        self.host = host
        self.book = book
        self.io = io
        self.tasks = tasks
        config = host.config
        self.machine = fsm.ContainerMachine(
            registration_timeout=config.executor_registration_timeout,
            reregistration_timeout=host.recovery.executor_reregistration_timeout,
            shutdown_grace=config.executor_shutdown_grace_period)
        self.tokens: dict[str, tuple[str, str]] = {}  # token -> (framework_id, executor_id)
        self._executors: dict[str, Executor] = {}  # container id -> executor (until complete)
        self._exited: list[ExecutorExited] = []  # EXECUTOR_EXITED not yet sent
        self.stopping = False
        self.recovering = False  # while reattach puts an earlier run back in the book

    # -- events in ------------------------------------------------------------------
    def launch(self, framework: Framework, info: ExecutorInfo,
               command_executor: bool) -> Executor:
        """A new executor for ``framework``: its container is launched in the background."""
        agent_id = self.host.agent_id()
        assert agent_id is not None, "tasks arrive only once registered"
        container_id = str(uuid.uuid4())
        directory = paths.sandbox_dir(self.host.config.work_dir, agent_id,
                                      framework.framework_id, info.executor_id, container_id)
        actions = self.machine.launch(container_id, self._now())
        token = (tokens.sign(self.host.token_key, tokens.ExecutorClaims(
            framework.framework_id, info.executor_id, container_id))
            if self.host.token_key is not None else secrets.token_urlsafe(32))
        executor = Executor(info=info, framework_id=framework.framework_id,
                            container_id=container_id, directory=directory,
                            token=token, command_executor=command_executor,
                            life=self.machine.life(container_id))
        self.adopt(framework, executor)
        self._carry_out(actions)
        return executor

    def adopt(self, framework: Framework, executor: Executor) -> None:
        """Put ``executor`` in the book (a new one, or one recovered from checkpoints)."""
        framework.executors[executor.executor_id] = executor
        framework.index_tasks(executor, (t.task_id for t in executor.tasks()))
        self._executors[executor.container_id] = executor
        self.tokens[executor.token] = (framework.framework_id, executor.executor_id)

    def recovered(self, executor: Executor, alive: bool, cleanup: bool, why: str) -> None:
        """A restarted agent found ``executor`` (with its container when ``alive``)."""
        actions = self.machine.recovered(executor.container_id, self._now(), alive=alive,
                                         cleanup=cleanup, has_tasks=bool(executor.tasks()),
                                         why=why)
        executor.life = self.machine.life(executor.container_id) or fsm.ContainerLife(
            executor.container_id, fsm.ContainerState.TERMINATED, recovered=True)
        if cleanup and alive:
            log.info("destroying executor %s: --recover=cleanup", executor.executor_id)
        elif alive:
            log.info("waiting %gs for executor %s of framework %s to re-subscribe",
                     self.machine.reregistration_timeout, executor.executor_id,
                     executor.framework_id)
        elif executor.tasks():
            log.info("executor %s of framework %s exited while the agent was down (%s)",
                     executor.executor_id, executor.framework_id, why)
        self._carry_out(actions)
        self.maybe_complete(executor)

    def subscribed(self, executor: Executor) -> list[fsm.Action]:
        """The executor subscribed; what is left for the caller: Refuse, SendShutdown or
        SendSubscribed."""
        actions = self.machine.subscribed(executor.container_id, self._now())
        self._rearm()
        return actions

    def shutdown(self, executor: Executor, why: str = "asked to shut down") -> None:
        """Graceful: SHUTDOWN event, then destroy after the shutdown grace period."""
        if executor.state in (ExecutorState.TERMINATING, ExecutorState.TERMINATED):
            return
        log.info("shutting down executor %s of framework %s: %s",
                 executor.executor_id, executor.framework_id, why)
        self._carry_out(self.machine.shutdown(executor.container_id, self._now(),
                                              connected=executor.stream is not None))

    def kill(self, executor: Executor, why: str,
             termination: fsm.Termination | None = None) -> None:
        """Destroy now (no grace); ``termination`` says what its tasks become when it is
        gone (a limitation fails them at once instead: :meth:`limited`)."""
        log.info("destroying executor %s: %s", executor.executor_id, why)
        self._carry_out(self.machine.kill(executor.container_id, self._now(), termination))

    def limited(self, executor: Executor, reason: Reason, message: str) -> None:
        """The container went over a limit: its tasks fail with ``reason`` at once, then it
        is destroyed (the containerizer's limitation hook)."""
        log.warning("executor %s of framework %s: %s", executor.executor_id,
                    executor.framework_id, message.splitlines()[0] if message else reason.value)
        self._carry_out(self.machine.limited(executor.container_id, self._now(),
                                             fsm.Termination(TaskState.TASK_FAILED, reason,
                                                             message)))

    def exited(self, executor: Executor, returncode: int | None, how: str | None = None) -> None:
        """The executor's process exited (a recovered one's status is unknown: ``how``)."""
        if executor.state is ExecutorState.TERMINATED:
            return
        if how is None:
            how = describe_returncode(returncode) if returncode is not None else "never started"
        log.info("executor %s of framework %s %s", executor.executor_id,
                 executor.framework_id, how)
        executor.exit_status = returncode
        self._carry_out(self.machine.exited(executor.container_id, returncode, self._now(),
                                            how, fail_tasks=self._fail_tasks(executor)))
        self.maybe_complete(executor)

    def stream_closed(self, framework_id: str, task_id: str) -> None:
        """The terminal update of a task was acknowledged: the task is completed."""
        framework = self.book.frameworks.get(framework_id)
        executor = framework.executor_of(task_id) if framework is not None else None
        if framework is None or executor is None:
            return
        task = executor.launched.pop(task_id, None) or executor.queued.pop(task_id, None)
        framework.unindex_task(executor, task_id)
        if task is not None:
            task_fsm.acknowledged(task)
            executor.completed.append(task)  # the oldest drops past MAX_COMPLETED_TASKS
        self.maybe_complete(executor)

    def maybe_complete(self, executor: Executor) -> None:
        """A terminated executor with no task left is completed (and maybe its framework)."""
        if executor.state is not ExecutorState.TERMINATED:
            return
        framework = self.book.frameworks.get(executor.framework_id)
        if framework is None:
            return
        if framework.terminating or self.stopping:
            executor.completed.extend(executor.tasks())
            executor.queued.clear()
            executor.launched.clear()
        if executor.tasks():
            return  # terminal updates still unacknowledged
        self._carry_out(self.machine.complete(executor.container_id))

    def flush_exited(self) -> None:
        """Send EXECUTOR_EXITED for executors that ended while the master was away."""
        while self._exited and self.host.registered() and self.host.to_master(AgentCall(
            type=AgentCallType.EXECUTOR_EXITED, executor_exited=self._exited[0]
        )):
            self._exited.pop(0)

    async def shutdown_all(self, grace: float) -> None:
        """Shut every executor down (SHUTDOWN, then SIGKILL after ``grace``) and wait."""
        self.stopping = True
        for framework in self.book.frameworks.values():
            framework.terminating = True
        for executor in list(self.book.all_executors()):
            self.shutdown(executor, "the agent is stopping")
        containers = [e.container for e in self.book.all_executors() if e.container is not None]
        waits = [asyncio.ensure_future(c.wait()) for c in containers if c.running]
        if waits:
            await asyncio.wait(waits, timeout=grace)
        for c in containers:
            await self._destroy(c)
        await self.io.drain(5.0)
        self.io.closed = True
        self.io.disarm()
        for executor in self.book.all_executors():
            if executor.stream is not None:
                executor.stream.close()

    # -- actions out ----------------------------------------------------------------
    def _carry_out(self, actions: list[fsm.Action]) -> None:
        for action in actions:
            executor = self._executors.get(action.container_id)
            if executor is None:
                continue
            if isinstance(action, fsm.Launch):
                self.io.spawn(self._run_container(executor))
            elif isinstance(action, fsm.Watch):
                self.io.spawn(self._watch_recovered(executor))
            elif isinstance(action, fsm.Destroy):
                if executor.container is not None and executor.container.running:
                    self.io.spawn(self._destroy(executor.container))
            elif isinstance(action, fsm.SendShutdown):
                if not self.io.send(executor, ExecutorEvent(type=ExecutorEventType.SHUTDOWN)):
                    self._carry_out(self.machine.shutdown_unsent(executor.container_id,
                                                                 self._now()))
            elif isinstance(action, fsm.Release):
                self._release(executor)
            elif isinstance(action, fsm.FailTasks):
                framework = self.book.frameworks.get(executor.framework_id)
                if framework is not None:
                    self.tasks.fail(framework, executor, action.termination)
            elif isinstance(action, fsm.ReportExit):
                rc = action.returncode
                self._exited.append(ExecutorExited(
                    framework_id=executor.framework_id, executor_id=executor.executor_id,
                    status=launcher.wait_status(rc) if rc is not None else None))
                self.flush_exited()
            elif isinstance(action, fsm.Completed):
                self._completed(executor)
        self._rearm()

    @staticmethod
    async def _destroy(container: containerizer.Container) -> None:
        """Freeze the container's processes, then kill them (as Mesos's freezer does):
        nothing in it may see another part die and report that instead of the agent's
        reason (an executor whose task is killed first would say TASK_FAILED by SIGKILL)."""
        if container.running:
            container.kill_session(signal.SIGSTOP)
        await containerizer.destroy(container)

    def _release(self, executor: Executor) -> None:
        self.tokens.pop(executor.token, None)
        if executor.stream is not None:
            executor.stream.close()
            executor.stream = None
        if executor.container is not None:  # processes it left behind die with it
            executor.container.kill_session(signal.SIGKILL)

    def _completed(self, executor: Executor) -> None:
        self._executors.pop(executor.container_id, None)
        self.tokens.pop(executor.token, None)
        framework = self.book.frameworks.get(executor.framework_id)
        if framework is None:
            return
        framework.complete_executor(executor)
        if not self.recovering:  # reattach forgets a recovered framework left empty
            self.book.maybe_remove_framework(framework)

    async def _run_container(self, executor: Executor) -> None:
        """Launch the executor's process and wait for it to exit."""
        framework = self.book.frameworks.get(executor.framework_id)
        if framework is None:
            return
        ckpt = self.io.checkpointer() if framework.checkpoint else None
        host = self.host
        try:
            where = host.addresses()
            env = launcher.executor_env(
                framework, executor, agent_id=host.agent_id(), endpoint=where.endpoint,
                socket=where.socket, pid=where.pid,
                shutdown_grace=host.config.executor_shutdown_grace_period,
                recovery_timeout=host.recovery.recovery_timeout,
                reregistration_timeout=host.recovery.executor_reregistration_timeout)
            spec = launcher.launch_spec(executor, env)
            executor.directory.mkdir(parents=True, exist_ok=True)
            paths.ensure_latest_symlink(executor.directory)
            if ckpt is not None:
                ckpt.executor(executor)
            if host.launch_container is not None:
                container = await host.launch_container(
                    executor, spec, lambda limit: self.limited(executor, limit.reason,
                                                               limit.message))
            else:
                container = await containerizer.launch(executor.container_id, spec)
        except (OSError, ValueError) as exc:
            log.error("failed to launch executor %s: %s", executor.executor_id, exc)
            self._launch_failed(executor, f"Failed to launch container: {exc}")
            return
        executor.container = container
        if ckpt is not None:
            ckpt.forked_pid(executor, container.pid,
                            in_agent=getattr(container, "runner", None) is not None)
        self._carry_out(self.machine.launched(executor.container_id, self._now()))
        returncode = await container.wait()
        self.exited(executor, returncode)

    def _launch_failed(self, executor: Executor, message: str) -> None:
        log.info("executor %s of framework %s never started", executor.executor_id,
                 executor.framework_id)
        self._carry_out(self.machine.launch_failed(executor.container_id, self._now(), message,
                                                   fail_tasks=self._fail_tasks(executor)))
        self.maybe_complete(executor)

    def _fail_tasks(self, executor: Executor) -> bool:
        """Whether an executor's end fails its tasks (not when its framework or the agent
        is shutting down: their updates would not be forwarded)."""
        framework = self.book.frameworks.get(executor.framework_id)
        return framework is not None and not framework.terminating and not self.stopping

    async def _watch_recovered(self, executor: Executor) -> None:
        assert executor.container is not None
        await executor.container.wait()
        self.exited(executor, None, how="exited (status unknown: started by an earlier run"
                    " of the agent)")

    # -- time -----------------------------------------------------------------------
    def _now(self) -> float:
        return self.host.clock.monotonic()

    def tick(self) -> None:
        """Fire the machine's deadlines that are due (its timer calls this)."""
        self._carry_out(self.machine.tick(self._now()))

    def _rearm(self) -> None:
        self.io.arm(self.machine.next_deadline(), self.tick)

    # -- queries --------------------------------------------------------------------
    def reregistering(self) -> bool:
        """True while a recovered executor may still re-subscribe."""
        return any(e.recovered and e.state is ExecutorState.REGISTERING
                   for e in self.book.all_executors())

    def recovered_alive(self) -> bool:
        """True while a recovered executor's process has not exited."""
        return any(e.recovered and e.state is not ExecutorState.TERMINATED
                   for e in self.book.all_executors())
