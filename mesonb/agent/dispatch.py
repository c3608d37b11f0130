"""The master's commands about frameworks, executors and tasks, turned into events of the
container and task machines (carried out by :mod:`.lifecycle` and :mod:`.tasks`).

Which executor runs a task, as Mesos's ``Slave::run`` decides (src/slave/slave.cpp):

* a task without an executor: the agent's *command executor*
  (``python -m mesonb.executor.command``), one per task, executor id = task id;
* a task group: the *default executor* (``python -m mesonb.executor.default``), or the
  framework's own if the ExecutorInfo has a command;
* a task with an ExecutorInfo: that executor's ``command``, started once and reused for
  later tasks of the same framework and executor id.
"""

from __future__ import annotations

import dataclasses
import logging

from mesonb.protocol.agent import (
    AgentFrameworkMessage,
    KillTask,
    MasterCommand,
    MasterCommandType,
    RunTask,
    RunTaskGroup,
)
from mesonb.protocol.executor import ExecutorEvent, ExecutorEventType, ExecutorMessageBody
from mesonb.protocol.mesos import ExecutorInfo, ExecutorType, FrameworkInfo, TaskInfo
from mesonb.protocol.states import Reason, TaskState

from . import launcher, paths
from .book import AgentBook, Executor, ExecutorState, Framework, Task, Termination
from .executor_io import ExecutorIO
from .host import Host
from .lifecycle import Lifecycle
from .task_fsm import KILLED_DURING_LAUNCH
from .tasks import Tasks

log = logging.getLogger("mesonb.agent.executors")


class MasterCommands:
    """RUN_TASK, RUN_TASK_GROUP, KILL_TASK, SHUTDOWN_FRAMEWORK, SHUTDOWN_EXECUTOR,
    FRAMEWORK_MESSAGE and UPDATE_FRAMEWORK on one agent."""

    def __init__(self, host: Host, book: AgentBook, io: ExecutorIO, lifecycle: Lifecycle,
                 tasks: Tasks) -> None:
        self.host = host
        self.book = book
        self.io = io
        self.lifecycle = lifecycle
        self.tasks = tasks

    def handle(self, command: MasterCommand) -> bool:
        """Carry out ``command``; False when it is not one of these."""
        kind = command.type
        if kind is MasterCommandType.RUN_TASK and command.run_task is not None:
            self.run_task(command.run_task)
        elif kind is MasterCommandType.RUN_TASK_GROUP and command.run_task_group is not None:
            self.run_task_group(command.run_task_group)
        elif kind is MasterCommandType.KILL_TASK and command.kill_task is not None:
            self.kill_task(command.kill_task)
        elif kind is MasterCommandType.SHUTDOWN_FRAMEWORK and command.shutdown_framework:
            self.shutdown_framework(command.shutdown_framework.framework_id)
        elif kind is MasterCommandType.SHUTDOWN_EXECUTOR and command.shutdown_executor:
            target = command.shutdown_executor
            executor = self.book.executor(target.framework_id, target.executor_id)
            if executor is not None:
                self.lifecycle.shutdown(executor)
        elif kind is MasterCommandType.FRAMEWORK_MESSAGE and command.framework_message:
            self.host.metrics["valid_framework_messages"] += 1
            self.framework_message(command.framework_message)
        elif kind is MasterCommandType.UPDATE_FRAMEWORK and command.update_framework:
            self.update_framework(command.update_framework.framework_info)
        else:
            return False
        return True

    def run_task(self, run: RunTask) -> None:
        framework = self._framework(run.framework_info)
        if framework is None:
            return
        task = run.task
        invalid = self.host.invalid_task(task) if self.host.invalid_task else None
        if invalid:
            self._refuse(framework, [task.task_id], None, invalid, TaskState.TASK_ERROR,
                         Reason.REASON_TASK_INVALID)
            return
        if self._resources_unknown(framework, [task]):
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
        if self.host.mount_volumes is not None:
            self.host.mount_volumes(executor.directory, [*(task.resources or ()),
                                                         *(info.resources or ())])
        record = Task(info=task, framework_id=framework.framework_id,
                      executor_id=executor.executor_id)
        parsed = self.host.parsed_resources(task.resources) if self.host.parsed_resources \
            else None
        if parsed is not None:  # the check above parsed this very list: not again
            record.resources = parsed
        self.io.checkpoint_task(framework, executor, record)
        framework.index_tasks(executor, [record.task_id])
        self._update_failed(executor, self.tasks.run(executor, [record], group=False))

    def run_task_group(self, run: RunTaskGroup) -> None:
        framework = self._framework(run.framework_info)
        if framework is None:
            return
        tasks = run.task_group.tasks
        ids = [t.task_id for t in tasks]
        check = self.host.invalid_task
        invalid = next(filter(None, map(check, tasks)), None) if check else None
        if invalid:
            self._refuse(framework, ids, None, invalid, TaskState.TASK_ERROR,
                         Reason.REASON_TASK_GROUP_INVALID)
            return
        if self._resources_unknown(framework, tasks):
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
        if self.host.mount_volumes is not None:  # each task runs in tasks/<id>/ (default.py)
            self.host.mount_volumes(executor.directory, info.resources)
            for t in tasks:
                self.host.mount_volumes(executor.directory / "tasks" / t.task_id, t.resources)
        records = [Task(info=t, framework_id=framework.framework_id,
                        executor_id=executor.executor_id, group=ids) for t in tasks]
        for record in records:
            self.io.checkpoint_task(framework, executor, record)
        framework.index_tasks(executor, ids)
        self._update_failed(executor, self.tasks.run(executor, records, group=True))

    def kill_task(self, kill: KillTask) -> None:
        framework = self.book.frameworks.get(kill.framework_id)
        executor = framework.executor_of(kill.task_id) if framework else None
        if framework is None or executor is None:
            log.warning("cannot kill unknown task %s of framework %s",
                        kill.task_id, kill.framework_id)
            self.tasks.refuse(kill.framework_id, framework, [kill.task_id], None,
                              TaskState.TASK_DROPPED, Reason.REASON_EXECUTOR_TERMINATED,
                              "Cannot find executor")
            return
        task = executor.task(kill.task_id)
        assert task is not None
        queued = task.task_id in executor.queued and not task.state.terminal
        self.tasks.kill(framework, executor, task, kill.kill_policy)
        if queued and not executor.queued and not any(
            not t.state.terminal for t in executor.launched.values()
        ):
            self.lifecycle.kill(executor, "its tasks were killed before it registered",
                                Termination(TaskState.TASK_KILLED,
                                            Reason.REASON_TASK_KILLED_DURING_LAUNCH,
                                            KILLED_DURING_LAUNCH))

    def shutdown_framework(self, framework_id: str) -> None:
        framework = self.book.frameworks.get(framework_id)
        if framework is None:
            return
        log.info("shutting down framework %s", framework_id)
        framework.terminating = True
        self.host.forget_updates(framework_id)
        for executor in list(framework.executors.values()):
            self.lifecycle.shutdown(executor)
        self.book.maybe_remove_framework(framework)

    def framework_message(self, msg: AgentFrameworkMessage) -> None:
        executor = self.book.executor(msg.framework_id, msg.executor_id)
        if executor is None or executor.state is not ExecutorState.RUNNING:
            log.warning("dropping a framework message for executor %s of framework %s:"
                        " not running here", msg.executor_id, msg.framework_id)
            return
        self.io.send(executor, ExecutorEvent(type=ExecutorEventType.MESSAGE,
                                             message=ExecutorMessageBody(data=msg.data)))

    def update_framework(self, info: FrameworkInfo) -> None:
        framework = self.book.frameworks.get(info.id or "")
        if framework is not None:
            framework.info = info
            self.io.checkpoint_framework(framework)

    # -- internals ------------------------------------------------------------------
    def _framework(self, info: FrameworkInfo) -> Framework | None:
        framework_id = info.id
        if not framework_id or not paths.is_safe_id(framework_id):
            log.error("dropping a launch for a framework without a usable id: %r", framework_id)
            return None
        framework = self.book.frameworks.get(framework_id)
        if framework is None:
            framework = Framework(info=info)
            self.book.frameworks[framework_id] = framework
        else:
            framework.info = info
        self.io.checkpoint_framework(framework)
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
        if framework.terminating or self.lifecycle.stopping:
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
            if info.framework_id is None:  # a copy: the master may hold the same object
                info = dataclasses.replace(info, framework_id=framework.framework_id)
            executor = self.lifecycle.launch(framework, info, command_executor)
        return executor

    def _update_failed(self, executor: Executor, problem: str | None) -> None:
        """The container could not take a new task's resources: as Mesos, its tasks fail
        with REASON_CONTAINER_UPDATE_FAILED and the container is destroyed."""
        if problem is not None:
            self.lifecycle.limited(executor, Reason.REASON_CONTAINER_UPDATE_FAILED, problem)

    def _resources_unknown(self, framework: Framework, tasks: list[TaskInfo]) -> bool:
        """Refuse ``tasks`` (all of them) when one names checkpointed resources this agent
        does not hold (Mesos's checkResourcesUnknown); True when refused."""
        check = self.host.unknown_resources
        unknown = next(filter(None, map(check, tasks)), None) if check else None
        if not unknown:
            return False
        state = TaskState.TASK_DROPPED if framework.partition_aware else TaskState.TASK_LOST
        self._refuse(framework, [t.task_id for t in tasks], None, unknown, state,
                     Reason.REASON_RESOURCES_UNKNOWN)
        return True

    def _refuse(self, framework: Framework, task_ids: list[str], executor: Executor | None,
                message: str, state: TaskState, reason: Reason) -> None:
        self.tasks.refuse(framework.framework_id, framework, task_ids, executor, state,
                          reason, message)
