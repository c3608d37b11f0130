"""Carrying out the task machine's actions (:mod:`.task_fsm`): LAUNCH and KILL events to
executors, and status updates, the executors' and the agent's own, recorded in the book
and handed to the status update manager (through the :class:`~.host.Host`)."""

from __future__ import annotations

import logging
import uuid

from mesonb.protocol.executor import (
    ExecutorAcknowledged,
    ExecutorEvent,
    ExecutorEventType,
    ExecutorKill,
    ExecutorLaunch,
    ExecutorLaunchGroup,
)
from mesonb.protocol.mesos import KillPolicy, TaskGroupInfo, TaskStatus
from mesonb.protocol.states import Reason, Source, TaskState

from . import task_fsm
from .book import Executor, ExecutorState, Framework, Task, Termination
from .executor_io import ExecutorIO
from .host import Host
from .isolation.base import UpdateFailed
from .task_fsm import TaskPhase

log = logging.getLogger("mesonb.agent.executors")


class Tasks:
    """What happens to the tasks of one agent's executors."""

    def __init__(self, host: Host, io: ExecutorIO) -> None:
        self.host = host
        self.io = io

    # -- launching ------------------------------------------------------------------
    def run(self, executor: Executor, records: list[Task], group: bool) -> str | None:
        """Accepted tasks (checkpointed already): to the executor, or queued for it. Returns
        why the executor's container could not take their resources (nothing is launched;
        the caller fails its tasks with REASON_CONTAINER_UPDATE_FAILED), else None."""
        running = executor.state is ExecutorState.RUNNING
        for record in records:
            task_fsm.run(record, running)
            where = executor.launched if record.phase is TaskPhase.LAUNCHED else executor.queued
            where[record.task_id] = record
        if self.host.executor_changed is not None:  # limits follow, before any LAUNCH
            try:
                self.host.executor_changed(executor)
            except UpdateFailed as exc:
                return str(exc)
        if running:
            self._launch(executor, records, group)
        elif group:
            executor.queued_groups.append([t.task_id for t in records])
        return None

    def deliver_queued(self, executor: Executor) -> None:
        """The executor subscribed: LAUNCH_GROUP for each queued group, then LAUNCH for each
        queued task, in the order they came."""
        for ids in executor.queued_groups:
            tasks = [executor.queued.pop(i) for i in ids if i in executor.queued]
            for t in tasks:
                task_fsm.deliver(t)
                executor.launched[t.task_id] = t
            if tasks:
                self._launch(executor, tasks, group=True)
        executor.queued_groups.clear()
        while executor.queued:
            _, task = executor.queued.popitem(last=False)
            task_fsm.deliver(task)
            executor.launched[task.task_id] = task
            self._launch(executor, [task], group=False)

    def _launch(self, executor: Executor, tasks: list[Task], group: bool) -> None:
        if group:
            self.io.send(executor, ExecutorEvent(
                type=ExecutorEventType.LAUNCH_GROUP, launch_group=ExecutorLaunchGroup(
                    task_group=TaskGroupInfo(tasks=[t.info for t in tasks]))))
        else:
            for task in tasks:
                self.io.send(executor, ExecutorEvent(type=ExecutorEventType.LAUNCH,
                                                     launch=ExecutorLaunch(task=task.info)))

    # -- killing --------------------------------------------------------------------
    def kill(self, framework: Framework, executor: Executor, task: Task,
             kill_policy: KillPolicy | None) -> None:
        """KILL_TASK: to the executor, or (a queued task) KILLED now with its group."""
        if task.phase is TaskPhase.QUEUED and not task.state.terminal:
            self._kill_queued(framework, executor, task)
            return
        running = executor.state is ExecutorState.RUNNING
        for action in task_fsm.kill(task, running, kill_policy or task.info.kill_policy):
            if isinstance(action, task_fsm.SendKill):
                self.io.send(executor, ExecutorEvent(type=ExecutorEventType.KILL, kill=ExecutorKill(
                    task_id=task.task_id, kill_policy=action.kill_policy)))
            elif isinstance(action, task_fsm.Ignored):
                log.info("ignoring kill of task %s (executor %s is %s): %s", task.task_id,
                         executor.executor_id, executor.state.value, action.why)

    def _kill_queued(self, framework: Framework, executor: Executor, task: Task) -> None:
        group = next((g for g in executor.queued_groups if task.task_id in g), None)
        if group:
            executor.queued_groups.remove(group)
        for task_id in group or [task.task_id]:
            queued = executor.queued.pop(task_id, None)
            if queued is None:
                continue
            executor.launched[task_id] = queued
            self._carry_out(framework, executor, queued,
                            task_fsm.kill(queued, executor_running=False))

    # -- updates --------------------------------------------------------------------
    def executor_update(self, framework: Framework, executor: Executor,
                        status: TaskStatus) -> None:
        """Record an update an executor sent, then acknowledge it to the executor."""
        task = executor.task(status.task_id)
        if status.uuid is not None and self.host.update_seen(
            framework.framework_id, status.task_id, status.uuid
        ):
            log.debug("duplicate update %s for task %s", status.state.value, status.task_id)
        elif task is None:
            log.warning("executor %s sent %s for task %s, which is not active here;"
                        " acknowledging and dropping it", executor.executor_id,
                        status.state.value, status.task_id)
            self.host.metrics["invalid_status_updates"] += 1
        else:
            previous = task.state
            (action,) = task_fsm.update(task, status)  # Record or Invalid
            if type(action) is task_fsm.Record:
                status.source = Source.SOURCE_EXECUTOR
                status.agent_id = self.host.agent_id()
                status.executor_id = executor.executor_id
                if status.timestamp is None:
                    status.timestamp = self.host.clock.time()
                self._record(framework, task, status)
            else:
                log.warning("dropping %s for task %s: it is already %s",
                            status.state.value, task.task_id, previous.value)
                self.host.metrics["invalid_status_updates"] += 1
        if executor.stream is not None and status.uuid is not None:
            self.io.send(executor, ExecutorEvent(
                type=ExecutorEventType.ACKNOWLEDGED,
                acknowledged=ExecutorAcknowledged(task_id=status.task_id, uuid=status.uuid)))

    def fail(self, framework: Framework, executor: Executor, term: Termination) -> None:
        """The executor is gone: every task not terminal ends as ``term`` says."""
        executor.queued_groups.clear()
        for task in list(executor.tasks()):
            self._carry_out(framework, executor, task, task_fsm.executor_terminated(
                task, term.state, term.reason, term.message))

    def drop_unknown_to_executor(self, framework: Framework, executor: Executor,
                                 known: set[str]) -> None:
        """Mesos: a recovered task still STAGING that the re-subscribing executor does not
        list was launched while the agent went down and never reached the executor."""
        for task in list(executor.launched.values()):
            if task.task_id not in known:
                self._carry_out(framework, executor, task,
                                task_fsm.unknown_to_executor(task, framework.partition_aware))

    def refuse(self, framework_id: str, framework: Framework | None, task_ids: list[str],
               executor: Executor | None, state: TaskState, reason: Reason,
               message: str) -> None:
        """Tasks the agent will not run: an update from the agent for each."""
        aware = framework.partition_aware if framework else False
        for task_id in task_ids:
            for action in task_fsm.refuse(state, reason, message, aware):
                if isinstance(action, task_fsm.AgentUpdate):
                    self.agent_update(framework_id, framework, task_id, executor,
                                      action.state, action.reason, action.message)

    def _carry_out(self, framework: Framework, executor: Executor, task: Task,
                   actions: list[task_fsm.Action]) -> None:
        for action in actions:
            if isinstance(action, task_fsm.AgentUpdate):
                self.agent_update(framework.framework_id, framework, task.task_id, executor,
                                  action.state, action.reason, action.message)

    def agent_update(self, framework_id: str, framework: Framework | None, task_id: str,
                     executor: Executor | None, state: TaskState, reason: Reason,
                     message: str) -> None:
        """An update the agent itself sends (source SOURCE_AGENT)."""
        status = TaskStatus(
            task_id=task_id, state=state, reason=reason, message=message,
            source=Source.SOURCE_AGENT, agent_id=self.host.agent_id(),
            executor_id=executor.executor_id if executor else None,
            timestamp=self.host.clock.time(), uuid=uuid.uuid4().bytes)
        task = executor.task(task_id) if executor else None
        if task is not None:
            self._record(framework, task, status)
        else:
            self.host.record_update(framework_id, status, False)

    def _record(self, framework: Framework | None, task: Task, status: TaskStatus) -> None:
        task.state = status.state
        task.statuses.append(TaskStatus(
            task_id=status.task_id, state=status.state, timestamp=status.timestamp,
            message=status.message, reason=status.reason, source=status.source,
            healthy=status.healthy))
        if status.state.terminal and framework is not None and self.host.task_ended:
            # a task of a multi-task executor ended: its share of the CPU cap goes
            self.host.task_ended(framework.executors.get(task.executor_id))
        if framework is not None and framework.terminating:
            # Mesos: updates of a framework being shut down are not forwarded.
            log.info("not forwarding %s of task %s: framework %s is terminating",
                     status.state.value, task.task_id, task.framework_id)
            self.host.metrics["invalid_status_updates"] += 1
            return
        self.host.metrics["valid_status_updates"] += 1
        self.host.record_update(task.framework_id, status, bool(framework and framework.checkpoint))
