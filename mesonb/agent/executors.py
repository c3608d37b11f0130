"""Executors on the agent: launching them, talking to them, and cleaning up after them.

:class:`Executors` carries out the master's RUN_TASK / RUN_TASK_GROUP / KILL_TASK /
SHUTDOWN_* commands and the executors' SUBSCRIBE / UPDATE / MESSAGE calls, following
Mesos's ``Slave`` (src/slave/slave.cpp). The executor life cycle is drawn in
:mod:`mesonb.agent.book`; status updates go to the agent's status update manager.

Which executor runs a task:

* a task without an executor: the agent's *command executor*
  (``python -m mesonb.executor.command``), one per task, executor id = task id;
* a task group: the *default executor* (``python -m mesonb.executor.default``), or the
  framework's own if the ExecutorInfo has a command;
* a task with an ExecutorInfo: that executor's ``command``, started once and reused for
  later tasks of the same framework and executor id.

How a launch is prepared (ExecutorInfo, environment, checkpoints) is in
:mod:`mesonb.agent.launcher`; the process itself in :mod:`mesonb.agent.containerizer`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import secrets
import signal
import uuid
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mesonb.executor.process import describe_returncode
from mesonb.protocol.agent import (
    AgentCall,
    AgentCallType,
    AgentExecutor,
    AgentFrameworkMessage,
    AgentTask,
    ExecutorExited,
    KillTask,
    RunTask,
    RunTaskGroup,
)
from mesonb.protocol.errors import BadRequest, Unauthorized
from mesonb.protocol.executor import (
    ExecutorAcknowledged,
    ExecutorCall,
    ExecutorEvent,
    ExecutorEventType,
    ExecutorKill,
    ExecutorLaunch,
    ExecutorLaunchGroup,
    ExecutorMessageBody,
    ExecutorSubscribed,
)
from mesonb.protocol.mesos import (
    ExecutorInfo,
    ExecutorType,
    FrameworkInfo,
    TaskGroupInfo,
    TaskStatus,
)
from mesonb.protocol.states import Reason, Source, TaskState, for_framework

from . import containerizer, launcher, paths, reattach, recovery
from .book import (
    MAX_COMPLETED_FRAMEWORKS,
    MAX_COMPLETED_TASKS,
    Executor,
    ExecutorState,
    Framework,
    Task,
    Termination,
)

if TYPE_CHECKING:
    from .agent import Agent
    from .executor_api import EventStream

log = logging.getLogger(__name__)


class Executors:
    """The frameworks, executors and tasks of one agent, and what happens to them."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.frameworks: dict[str, Framework] = {}
        self.completed_frameworks: deque[Framework] = deque(maxlen=MAX_COMPLETED_FRAMEWORKS)
        self._tokens: dict[str, tuple[str, str]] = {}  # token -> (framework_id, executor_id)
        self._timers: dict[str, asyncio.TimerHandle] = {}  # container_id -> timer
        self._background: set[asyncio.Future[Any]] = set()
        self.stopping = False
        self._exited: list[ExecutorExited] = []  # EXECUTOR_EXITED not yet sent

    # -- authentication (used by the executor API handler) ---------------------------
    def authenticate(self, authorization: str | None) -> tuple[str, str] | None:
        """Who is calling: ``(framework_id, executor_id)`` for a container token, None for
        the cluster secret or (on an agent without a secret) no credentials."""
        secret = self.agent.security.secret
        token = None
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer":
                token = value.strip()
        if token is None:
            if secret is None and not authorization:
                return None
            raise Unauthorized("Missing 'Authorization: Bearer <executor token>' header")
        if secret is not None and hmac.compare_digest(token.encode(), secret.encode()):
            return None
        principal = self._tokens.get(token)
        if principal is None:
            raise Unauthorized("Invalid executor token")
        return principal

    # -- queries --------------------------------------------------------------------
    def all_executors(self) -> Iterator[Executor]:
        for framework in self.frameworks.values():
            yield from framework.executors.values()

    def all_tasks(self) -> Iterator[Task]:
        for executor in self.all_executors():
            yield from executor.tasks()

    def register_payload(self) -> tuple[list[AgentTask], list[AgentExecutor], list[FrameworkInfo]]:
        """What a (re-)registration reports: tasks, custom executors, frameworks."""
        tasks = [
            AgentTask(
                framework_id=t.framework_id,
                task=t.info,
                state=t.state,
                executor_id=t.executor_id,
                latest_status=t.statuses[-1] if t.statuses else None,
            )
            for t in self.all_tasks()
        ]
        executors = [
            AgentExecutor(framework_id=e.framework_id, executor=e.info)
            for e in self.all_executors()
            if not e.command_executor and e.state is not ExecutorState.TERMINATED
        ]
        frameworks = [f.info for f in self.frameworks.values()]
        return tasks, executors, frameworks

    def flush_exited(self) -> None:
        """Send EXECUTOR_EXITED for executors that ended while the master was away."""
        while self._exited and self.agent.registered and self.agent.send(AgentCall(
            type=AgentCallType.EXECUTOR_EXITED, executor_exited=self._exited[0]
        )):
            self._exited.pop(0)

    # -- master commands ------------------------------------------------------------
    def run_task(self, run: RunTask) -> None:
        framework = self._framework(run.framework_info)
        if framework is None:
            return
        task = run.task
        invalid = self.agent.containerizer.invalid(task)  # containerizer (issue 16)
        if invalid:
            self._refuse(framework, [task.task_id], None, invalid, TaskState.TASK_ERROR,
                         Reason.REASON_TASK_INVALID)
            return
        info = run.executor or task.executor
        command_executor = info is None
        if info is None:
            if task.command is None:
                self._refuse(framework, [task.task_id], None,
                             "Task has neither a command nor an executor",
                             TaskState.TASK_ERROR, Reason.REASON_TASK_INVALID)
                return
            info = launcher.command_executor_info(framework.framework_id, task)
        executor = self._executor_for(framework, info, command_executor, [task.task_id])
        if executor is None:
            return
        record = Task(info=task, framework_id=framework.framework_id,
                      executor_id=executor.executor_id)
        self._checkpoint_task(framework, executor, record)
        if executor.state is ExecutorState.RUNNING:
            executor.launched[task.task_id] = record
            self.agent.containerizer.update(executor)  # containerizer (issue 16): limits
            self._send(executor, ExecutorEvent(type=ExecutorEventType.LAUNCH,
                                               launch=ExecutorLaunch(task=task)))
        else:
            executor.queued[task.task_id] = record
            self.agent.containerizer.update(executor)  # containerizer (issue 16): limits

    def run_task_group(self, run: RunTaskGroup) -> None:
        framework = self._framework(run.framework_info)
        if framework is None:
            return
        tasks = run.task_group.tasks
        ids = [t.task_id for t in tasks]
        invalid = next(filter(None, map(self.agent.containerizer.invalid, tasks)), None)
        if invalid:  # containerizer (issue 16)
            self._refuse(framework, ids, None, invalid, TaskState.TASK_ERROR,
                         Reason.REASON_TASK_GROUP_INVALID)
            return
        info = run.executor  # the master's too (in-process): changed on a copy
        if info.type is None:
            info = dataclasses.replace(info, type=ExecutorType.DEFAULT)
        if info.command is None:
            info = dataclasses.replace(
                info, command=launcher.builtin_command(launcher.DEFAULT_EXECUTOR_MODULE),
                name=info.name or "Default Executor")
        executor = self._executor_for(framework, info, False, ids)
        if executor is None:
            return
        records = [Task(info=t, framework_id=framework.framework_id,
                        executor_id=executor.executor_id, group=ids) for t in tasks]
        for record in records:
            self._checkpoint_task(framework, executor, record)
        if executor.state is ExecutorState.RUNNING:
            for record in records:
                executor.launched[record.task_id] = record
            self.agent.containerizer.update(executor)  # containerizer (issue 16): limits
            self._send(executor, ExecutorEvent(
                type=ExecutorEventType.LAUNCH_GROUP,
                launch_group=ExecutorLaunchGroup(task_group=TaskGroupInfo(tasks=tasks))))
        else:
            for record in records:
                executor.queued[record.task_id] = record
            executor.queued_groups.append(ids)
            self.agent.containerizer.update(executor)  # containerizer (issue 16): limits

    def kill_task(self, kill: KillTask) -> None:
        framework = self.frameworks.get(kill.framework_id)
        executor = framework.executor_of(kill.task_id) if framework else None
        if framework is None or executor is None:
            aware = framework.partition_aware if framework else False
            log.warning("cannot kill unknown task %s of framework %s",
                        kill.task_id, kill.framework_id)
            self._agent_update(kill.framework_id, framework, kill.task_id, None,
                               for_framework(TaskState.TASK_DROPPED, aware),
                               Reason.REASON_EXECUTOR_TERMINATED, "Cannot find executor")
            return
        task = executor.task(kill.task_id)
        assert task is not None
        if task.state.terminal:
            log.info("ignoring kill of task %s: already %s", task.task_id, task.state)
            return
        if task.task_id in executor.queued:
            group = next((g for g in executor.queued_groups if task.task_id in g), None)
            victims = group or [task.task_id]
            if group:
                executor.queued_groups.remove(group)
            for task_id in victims:
                queued = executor.queued.pop(task_id, None)
                if queued is None:
                    continue
                executor.launched[task_id] = queued
                self._agent_update(framework.framework_id, framework, task_id, executor,
                                   TaskState.TASK_KILLED, Reason.REASON_TASK_KILLED_DURING_LAUNCH,
                                   "Killed before delivery to the executor")
            if not executor.queued and not any(
                not t.state.terminal for t in executor.launched.values()
            ):
                executor.termination = Termination(
                    TaskState.TASK_KILLED, Reason.REASON_TASK_KILLED_DURING_LAUNCH,
                    "Killed before delivery to the executor")
                self._terminate(executor, "its tasks were killed before it registered")
            return
        if executor.state is not ExecutorState.RUNNING:
            log.info("ignoring kill of task %s: executor %s is %s",
                     task.task_id, executor.executor_id, executor.state.value)
            return
        policy = kill.kill_policy or task.info.kill_policy
        self._send(executor, ExecutorEvent(type=ExecutorEventType.KILL, kill=ExecutorKill(
            task_id=task.task_id, kill_policy=policy)))

    def shutdown_framework(self, framework_id: str) -> None:
        framework = self.frameworks.get(framework_id)
        if framework is None:
            return
        log.info("shutting down framework %s", framework_id)
        framework.terminating = True
        self.agent.forget_framework_updates(framework_id)
        for executor in list(framework.executors.values()):
            self.shutdown_executor(executor)
        self._maybe_remove_framework(framework)

    def shutdown_executor(self, executor: Executor, why: str = "asked to shut down") -> None:
        """Graceful: SHUTDOWN event, then destroy after the shutdown grace period."""
        if executor.state in (ExecutorState.TERMINATING, ExecutorState.TERMINATED):
            return
        log.info("shutting down executor %s of framework %s: %s",
                 executor.executor_id, executor.framework_id, why)
        subscribed = executor.state is ExecutorState.RUNNING and executor.stream is not None
        executor.state = ExecutorState.TERMINATING
        if subscribed and self._send(executor, ExecutorEvent(type=ExecutorEventType.SHUTDOWN)):
            self._set_timer(executor, self.agent.config.executor_shutdown_grace_period,
                            lambda: self._destroy(executor))
        else:
            self._destroy(executor)

    def framework_message(self, msg: AgentFrameworkMessage) -> None:
        framework = self.frameworks.get(msg.framework_id)
        executor = framework.executors.get(msg.executor_id) if framework else None
        if executor is None or executor.state is not ExecutorState.RUNNING:
            log.warning("dropping a framework message for executor %s of framework %s:"
                        " not running here", msg.executor_id, msg.framework_id)
            return
        self._send(executor, ExecutorEvent(type=ExecutorEventType.MESSAGE,
                                           message=ExecutorMessageBody(data=msg.data)))

    def update_framework(self, info: FrameworkInfo) -> None:
        framework = self.frameworks.get(info.id or "")
        if framework is not None:
            framework.info = info
            if framework.checkpoint:
                self._checkpoint_framework(framework)

    async def shutdown_all(self, grace: float) -> None:
        """Shut every executor down (SHUTDOWN, then SIGKILL after ``grace``) and wait."""
        self.stopping = True
        for framework in self.frameworks.values():
            framework.terminating = True
        for executor in list(self.all_executors()):
            self.shutdown_executor(executor, "the agent is stopping")
        containers = [e.container for e in self.all_executors() if e.container is not None]
        waits = [asyncio.ensure_future(c.wait()) for c in containers if c.running]
        if waits:
            await asyncio.wait(waits, timeout=grace)
        for c in containers:
            await containerizer.destroy(c)
        pending = [f for f in self._background if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=5.0)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for executor in self.all_executors():
            if executor.stream is not None:
                executor.stream.close()

    # -- agent recovery (mesonb.agent.reattach) ---------------------------------------
    def recover(self, state: recovery.AgentCheckpoint, cleanup: bool = False) -> None:
        """Put an earlier run's checkpointed frameworks, executors and tasks back in the
        book; see :func:`mesonb.agent.reattach.recover`."""
        reattach.recover(self, state, cleanup)

    def reregistering(self) -> bool:
        """True while a recovered executor may still re-subscribe."""
        return any(e.recovered and e.state is ExecutorState.REGISTERING
                   for e in self.all_executors())

    def recovered_alive(self) -> bool:
        """True while a recovered executor's process has not exited."""
        return any(e.recovered and e.state is not ExecutorState.TERMINATED
                   for e in self.all_executors())

    # -- executor calls -------------------------------------------------------------
    def subscribe(self, call: ExecutorCall, stream: EventStream) -> None:
        executor = self._lookup(call)
        framework = self.frameworks[call.framework_id]
        if executor.state is ExecutorState.TERMINATED:
            raise BadRequest(f"Executor '{call.executor_id}' has terminated")
        if executor.stream is not None and executor.stream is not stream:
            executor.stream.close()
        executor.stream = stream
        if executor.state is ExecutorState.TERMINATING:
            stream.send(ExecutorEvent(type=ExecutorEventType.SHUTDOWN))
            return
        log.info("executor %s of framework %s subscribed", executor.executor_id,
                 framework.framework_id)
        executor.state = ExecutorState.RUNNING
        self._cancel_timer(executor)
        stream.send(ExecutorEvent(type=ExecutorEventType.SUBSCRIBED, subscribed=ExecutorSubscribed(
            executor_info=executor.info, framework_info=framework.info,
            agent_info=self.agent.agent_info(), container_id=executor.container_id)))
        for item in (call.subscribe.unacknowledged_updates or []) if call.subscribe else []:
            try:
                status = TaskStatus.from_json(item.get("status") if isinstance(item, dict)
                                              else None, "unacknowledged_updates[].status")
            except BadRequest as exc:
                log.warning("executor %s resent a bad update: %s", executor.executor_id, exc)
                continue
            self._executor_update(framework, executor, status)
        if executor.recovered and call.subscribe is not None:
            self._drop_unknown_to_executor(framework, executor, call)
        for ids in executor.queued_groups:
            tasks = [executor.queued.pop(i) for i in ids if i in executor.queued]
            for t in tasks:
                executor.launched[t.task_id] = t
            if tasks:
                stream.send(ExecutorEvent(
                    type=ExecutorEventType.LAUNCH_GROUP, launch_group=ExecutorLaunchGroup(
                        task_group=TaskGroupInfo(tasks=[t.info for t in tasks]))))
        executor.queued_groups.clear()
        while executor.queued:
            _, task = executor.queued.popitem(last=False)
            executor.launched[task.task_id] = task
            stream.send(ExecutorEvent(type=ExecutorEventType.LAUNCH,
                                      launch=ExecutorLaunch(task=task.info)))

    def _drop_unknown_to_executor(self, framework: Framework, executor: Executor,
                                  call: ExecutorCall) -> None:
        """Mesos: a recovered task still STAGING that the re-subscribing executor does not
        list was launched while the agent went down and never reached the executor."""
        assert call.subscribe is not None
        known = {t.task_id for t in call.subscribe.unacknowledged_tasks or ()}
        for task in list(executor.launched.values()):
            if task.state is TaskState.TASK_STAGING and task.task_id not in known:
                self._agent_update(framework.framework_id, framework, task.task_id, executor,
                                   for_framework(TaskState.TASK_DROPPED,
                                                 framework.partition_aware),
                                   Reason.REASON_AGENT_RESTARTED,
                                   "Task launched during agent restart")

    def update(self, call: ExecutorCall) -> None:
        """An executor's UPDATE (``call.validate()`` passed)."""
        assert call.update is not None
        status = call.update.status
        executor = self._lookup(call)
        self._executor_update(self.frameworks[call.framework_id], executor, status)

    def message(self, call: ExecutorCall) -> None:
        assert call.message is not None
        self._lookup(call)
        self.agent.send(AgentCall(type=AgentCallType.FRAMEWORK_MESSAGE, framework_message=(
            AgentFrameworkMessage(framework_id=call.framework_id,
                                  executor_id=call.executor_id, data=call.message.data))))

    # -- status update manager hooks ------------------------------------------------
    def checkpoint_update(self, framework_id: str, task_id: str, record: dict[str, Any]) -> None:
        framework = self.frameworks.get(framework_id)
        executor = framework.executor_of(task_id) if framework else None
        ckpt = self._checkpointer()
        if executor is not None and ckpt is not None:
            ckpt.update(executor, task_id, record)

    def stream_closed(self, framework_id: str, task_id: str) -> None:
        """The terminal update of a task was acknowledged: the task is completed."""
        framework = self.frameworks.get(framework_id)
        executor = framework.executor_of(task_id) if framework else None
        if framework is None or executor is None:
            return
        task = executor.launched.pop(task_id, None) or executor.queued.pop(task_id, None)
        if task is not None:
            executor.completed.append(task)
            del executor.completed[:-MAX_COMPLETED_TASKS]
        self._maybe_complete(executor)

    # -- internals: launching -------------------------------------------------------
    def _framework(self, info: FrameworkInfo) -> Framework | None:
        framework_id = info.id
        if not framework_id or not paths.is_safe_id(framework_id):
            log.error("dropping a launch for a framework without a usable id: %r", framework_id)
            return None
        framework = self.frameworks.get(framework_id)
        if framework is None:
            framework = Framework(info=info)
            self.frameworks[framework_id] = framework
        else:
            framework.info = info
        if framework.checkpoint:
            self._checkpoint_framework(framework)
        return framework

    def _executor_for(
        self, framework: Framework, info: ExecutorInfo, command_executor: bool,
        task_ids: list[str],
    ) -> Executor | None:
        """The executor to run ``task_ids``, launching a new one when needed; None (with
        the tasks refused) when it cannot be."""
        bad = [i for i in [info.executor_id, *task_ids] if not paths.is_safe_id(i)]
        if bad:
            self._refuse(framework, task_ids, None, f"Invalid id {bad[0]!r}",
                         TaskState.TASK_ERROR, Reason.REASON_TASK_INVALID)
            return None
        known = [i for i in task_ids if framework.executor_of(i) is not None]
        if known:
            log.warning("ignoring a launch of task %s: already known", known[0])
            return None
        if framework.terminating or self.stopping:
            self._refuse(framework, task_ids, None, "Framework is terminating",
                         TaskState.TASK_DROPPED, Reason.REASON_FRAMEWORK_REMOVED)
            return None
        executor = framework.executors.get(info.executor_id)
        if executor is not None and executor.state in (
            ExecutorState.TERMINATING, ExecutorState.TERMINATED
        ):
            self._refuse(framework, task_ids, executor, "Executor terminating",
                         TaskState.TASK_DROPPED, Reason.REASON_EXECUTOR_TERMINATED)
            return None
        if executor is None:
            executor = self._new_executor(framework, info, command_executor)
        return executor

    def _refuse(self, framework: Framework, task_ids: list[str], executor: Executor | None,
                message: str, state: TaskState, reason: Reason) -> None:
        state = for_framework(state, framework.partition_aware)
        for task_id in task_ids:
            self._agent_update(framework.framework_id, framework, task_id, executor,
                               state, reason, message)

    def _new_executor(self, framework: Framework, info: ExecutorInfo,
                      command_executor: bool) -> Executor:
        agent_id = self.agent.agent_id
        assert agent_id is not None, "tasks arrive only once registered"
        if info.framework_id is None:  # a copy: the master may hold the same object
            info = dataclasses.replace(info, framework_id=framework.framework_id)
        container_id = str(uuid.uuid4())
        directory = paths.sandbox_dir(self.agent.config.work_dir, agent_id,
                                      framework.framework_id, info.executor_id, container_id)
        token = secrets.token_urlsafe(32)
        executor = Executor(info=info, framework_id=framework.framework_id,
                            container_id=container_id, directory=directory, token=token,
                            command_executor=command_executor)
        framework.executors[info.executor_id] = executor
        self._tokens[token] = (framework.framework_id, info.executor_id)
        self._spawn(self._run_container(framework, executor))
        return executor

    async def _run_container(self, framework: Framework, executor: Executor) -> None:
        """Launch the executor, time its registration, and wait for it to exit."""
        agent = self.agent
        ckpt = self._checkpointer() if framework.checkpoint else None
        try:
            env = launcher.executor_env(
                framework, executor, agent_id=agent.agent_id, endpoint=agent.endpoint,
                socket=agent.executor_socket_address, pid=agent.pid,
                shutdown_grace=agent.config.executor_shutdown_grace_period,
                recovery_timeout=agent.recovery.recovery_timeout,
                reregistration_timeout=agent.recovery.executor_reregistration_timeout)
            spec = launcher.launch_spec(executor, env)
            executor.directory.mkdir(parents=True, exist_ok=True)
            paths.ensure_latest_symlink(executor.directory)
            if ckpt is not None:
                ckpt.executor(executor)
            container = await agent.containerizer.launch(  # containerizer (issue 16)
                executor, spec, lambda limitation: self._limited(executor, limitation))
        except (OSError, ValueError) as exc:
            log.error("failed to launch executor %s: %s", executor.executor_id, exc)
            executor.termination = Termination(
                TaskState.TASK_FAILED, Reason.REASON_CONTAINER_LAUNCH_FAILED,
                f"Failed to launch container: {exc}")
            self._terminated(executor, None)
            return
        executor.container = container
        if ckpt is not None:
            ckpt.forked_pid(executor, container.pid)
        if executor.state is ExecutorState.TERMINATING:  # killed while we were launching
            self._destroy(executor)
        elif executor.state is ExecutorState.REGISTERING:
            timeout = self.agent.config.executor_registration_timeout
            self._set_timer(executor, timeout, lambda: self._registration_timeout(executor))
        returncode = await container.wait()
        self._terminated(executor, returncode)

    # -- internals: executor updates ------------------------------------------------
    def _executor_update(self, framework: Framework, executor: Executor,
                         status: TaskStatus) -> None:
        """Record an update an executor sent, then acknowledge it to the executor."""
        task = executor.task(status.task_id)
        if status.uuid is not None and self.agent.status_updates.seen(
            framework.framework_id, status.task_id, status.uuid
        ):
            log.debug("duplicate update %s for task %s", status.state.value, status.task_id)
        elif task is None:
            log.warning("executor %s sent %s for task %s, which is not active here;"
                        " acknowledging and dropping it", executor.executor_id,
                        status.state.value, status.task_id)
            self.agent.metrics["invalid_status_updates"] += 1
        elif task.state.terminal and status.state is not task.state:
            log.warning("dropping %s for task %s: it is already %s", status.state.value,
                        task.task_id, task.state.value)
            self.agent.metrics["invalid_status_updates"] += 1
        else:
            status.source = Source.SOURCE_EXECUTOR
            status.agent_id = self.agent.agent_id
            status.executor_id = executor.executor_id
            if status.timestamp is None:
                status.timestamp = self.agent.clock.time()
            self._record(framework, task, status)
        if executor.stream is not None and status.uuid is not None:
            self._send(executor, ExecutorEvent(
                type=ExecutorEventType.ACKNOWLEDGED,
                acknowledged=ExecutorAcknowledged(task_id=status.task_id, uuid=status.uuid)))

    def _agent_update(self, framework_id: str, framework: Framework | None, task_id: str,
                      executor: Executor | None, state: TaskState, reason: Reason,
                      message: str) -> None:
        """An update the agent itself sends (source SOURCE_AGENT)."""
        status = TaskStatus(
            task_id=task_id, state=state, reason=reason, message=message,
            source=Source.SOURCE_AGENT, agent_id=self.agent.agent_id,
            executor_id=executor.executor_id if executor else None,
            timestamp=self.agent.clock.time(), uuid=uuid.uuid4().bytes)
        task = executor.task(task_id) if executor else None
        if task is not None:
            self._record(framework, task, status)
        else:
            self.agent.record_update(framework_id, status, checkpoint=False)

    def _record(self, framework: Framework | None, task: Task, status: TaskStatus) -> None:
        task.state = status.state
        task.statuses.append(TaskStatus(
            task_id=status.task_id, state=status.state, timestamp=status.timestamp,
            message=status.message, reason=status.reason, source=status.source,
            healthy=status.healthy))
        if status.state.terminal and framework is not None:  # containerizer (issue 16)
            self.agent.containerizer.task_ended(framework.executors.get(task.executor_id))
        if framework is not None and framework.terminating:
            # Mesos: updates of a framework being shut down are not forwarded.
            log.info("not forwarding %s of task %s: framework %s is terminating",
                     status.state.value, task.task_id, task.framework_id)
            self.agent.metrics["invalid_status_updates"] += 1
            return
        self.agent.metrics["valid_status_updates"] += 1
        checkpointed = bool(framework and framework.checkpoint)
        self.agent.record_update(task.framework_id, status, checkpoint=checkpointed)

    # -- containerizer hook (issue 16): a container went over a limit ----------------
    def _limited(self, executor: Executor, limitation: Any) -> None:
        """Fail the container's tasks with the limitation's reason (before its executor can
        report them), then destroy it."""
        executor.termination = Termination(TaskState.TASK_FAILED, limitation.reason,
                                           limitation.message)
        framework = self.frameworks.get(executor.framework_id)
        for task in list(executor.tasks()):
            if not task.state.terminal:
                self._agent_update(executor.framework_id, framework, task.task_id, executor,
                                   TaskState.TASK_FAILED, limitation.reason, limitation.message)
        self._terminate(executor, limitation.message.splitlines()[0])

    # -- internals: termination -----------------------------------------------------
    def _registration_timeout(self, executor: Executor) -> None:
        if executor.state is not ExecutorState.REGISTERING:
            return
        timeout = self.agent.config.executor_registration_timeout
        log.warning("executor %s did not subscribe within %gs", executor.executor_id, timeout)
        executor.termination = Termination(
            TaskState.TASK_FAILED, Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT,
            f"Executor did not register within {timeout:g}secs")
        self._terminate(executor, "registration timeout")

    def _terminate(self, executor: Executor, why: str) -> None:
        """Destroy now (no grace): the executor cannot be told to shut down."""
        log.info("destroying executor %s: %s", executor.executor_id, why)
        executor.state = ExecutorState.TERMINATING
        self._destroy(executor)

    def _destroy(self, executor: Executor) -> None:
        self._cancel_timer(executor)
        if executor.container is not None and executor.container.running:
            self._spawn(containerizer.destroy(executor.container))

    def _terminated(self, executor: Executor, returncode: int | None,
                    how: str | None = None) -> None:
        """The executor process exited (or never started: ``how`` None and no return code;
        a recovered executor's exit status is unknown: ``how`` says what happened)."""
        if executor.state is ExecutorState.TERMINATED:
            return
        executor.state = ExecutorState.TERMINATED
        executor.exit_status = returncode
        self._cancel_timer(executor)
        self._tokens.pop(executor.token, None)
        if executor.stream is not None:
            executor.stream.close()
            executor.stream = None
        if executor.container is not None:  # processes it left behind die with it
            executor.container.kill_session(signal.SIGKILL)
        if how is None:
            how = describe_returncode(returncode) if returncode is not None else "never started"
        log.info("executor %s of framework %s %s", executor.executor_id,
                 executor.framework_id, how)
        framework = self.frameworks.get(executor.framework_id)
        if framework is not None and not framework.terminating and not self.stopping:
            term = executor.termination or Termination(
                TaskState.TASK_FAILED, Reason.REASON_EXECUTOR_TERMINATED,
                f"Executor terminated: {how}")
            executor.queued_groups.clear()
            for task in list(executor.tasks()):
                if not task.state.terminal:
                    self._agent_update(framework.framework_id, framework, task.task_id,
                                       executor, term.state, term.reason, term.message)
        if returncode is not None or executor.recovered:
            self._exited.append(ExecutorExited(
                framework_id=executor.framework_id, executor_id=executor.executor_id,
                status=launcher.wait_status(returncode) if returncode is not None else None))
            self.flush_exited()
        self._maybe_complete(executor)

    def _maybe_complete(self, executor: Executor) -> None:
        framework = self.frameworks.get(executor.framework_id)
        if framework is None or executor.state is not ExecutorState.TERMINATED:
            return
        if framework.terminating or self.stopping:
            executor.completed.extend(executor.tasks())
            executor.queued.clear()
            executor.launched.clear()
        if executor.tasks():
            return  # terminal updates still unacknowledged
        framework.complete_executor(executor)
        self._maybe_remove_framework(framework)

    def _maybe_remove_framework(self, framework: Framework) -> None:
        if framework.executors:
            return
        self.frameworks.pop(framework.framework_id, None)
        self.completed_frameworks.append(framework)

    # -- internals: plumbing --------------------------------------------------------
    def _lookup(self, call: ExecutorCall) -> Executor:
        framework = self.frameworks.get(call.framework_id)
        if framework is None:
            raise BadRequest(f"Framework '{call.framework_id}' is not known to this agent")
        executor = framework.executors.get(call.executor_id)
        if executor is None:
            raise BadRequest(f"Executor '{call.executor_id}' of framework"
                             f" '{call.framework_id}' is not known to this agent")
        return executor

    def _send(self, executor: Executor, event: ExecutorEvent) -> bool:
        if executor.stream is None or not executor.stream.send(event):
            # An executor that already went away needs no SHUTDOWN; anything else is news.
            level = logging.INFO if event.type.value == "SHUTDOWN" else logging.WARNING
            log.log(level, "cannot send %s to executor %s: not connected", event.type.value,
                    executor.executor_id)
            return False
        return True

    def heartbeat(self) -> None:
        for executor in self.all_executors():
            if executor.state is ExecutorState.RUNNING and executor.stream is not None:
                executor.stream.send(ExecutorEvent(type=ExecutorEventType.HEARTBEAT))

    def _set_timer(self, executor: Executor, delay: float, fn: Any) -> None:
        self._cancel_timer(executor)
        self._timers[executor.container_id] = asyncio.get_running_loop().call_later(delay, fn)

    def _cancel_timer(self, executor: Executor) -> None:
        timer = self._timers.pop(executor.container_id, None)
        if timer is not None:
            timer.cancel()

    def _spawn(self, coro: Any) -> None:
        fut = asyncio.ensure_future(coro)
        self._background.add(fut)
        fut.add_done_callback(self._reap)

    def _reap(self, fut: asyncio.Future[Any]) -> None:
        self._background.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            log.error("background work failed", exc_info=fut.exception())

    # -- internals: checkpoints -----------------------------------------------------
    def _checkpointer(self) -> launcher.Checkpointer | None:
        agent_id = self.agent.agent_id
        return launcher.Checkpointer(self.agent.config.work_dir, agent_id) if agent_id else None

    def _checkpoint_framework(self, framework: Framework) -> None:
        ckpt = self._checkpointer()
        if ckpt is not None:
            ckpt.framework(framework)

    def _checkpoint_task(self, framework: Framework, executor: Executor, task: Task) -> None:
        ckpt = self._checkpointer()
        if framework.checkpoint and ckpt is not None:
            ckpt.task(executor, task)
