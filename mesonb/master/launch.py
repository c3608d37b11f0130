"""Launching tasks from an ACCEPT: Mesos's checks of each task, then RUN_TASK to its agent.

An error in a task does not fail the call: that task gets ``TASK_ERROR`` (as in Mesos) with
the reason, and the other tasks launch. A LAUNCH_GROUP is all or nothing. So is
authorization: a task whose user the ACLs' ``run_tasks`` refuse to the framework's
principal gets ``TASK_ERROR`` with ``REASON_TASK_UNAUTHORIZED`` (a group's tasks
``REASON_TASK_GROUP_UNAUTHORIZED``), as Mesos's master does; the ACCEPT itself succeeds.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Any

from mesonb.clock import Clock
from mesonb.protocol.agent import MasterCommand, MasterCommandType, RunTask, RunTaskGroup
from mesonb.protocol.errors import BadRequest
from mesonb.protocol.mesos import ExecutorInfo, TaskInfo
from mesonb.protocol.resources import Resources
from mesonb.protocol.states import Reason, TaskState
from mesonb.security.acls import PERMISSIVE, Acls, Action

from .book import Agent, Book, Framework, Task
from .metrics_framework import TERMINAL_KEYS
from .outbox import Outbox
from .updates import master_status
from .views import task_json

log = logging.getLogger(__name__)


class Launcher:
    """Launches tasks on the master's book and tells agents and frameworks."""

    def __init__(self, book: Book, out: Outbox, clock: Clock,
                 counters: collections.Counter[str],
                 acls: Callable[[], Acls] = lambda: PERMISSIVE) -> None:
        self.book = book
        self.out = out
        self.clock = clock
        self.counters = counters
        self.acls = acls  # the master's --acls (set by its daemon after start)

    def unauthorized(self, framework: Framework, task: TaskInfo,
                     executor: ExecutorInfo | None = None) -> str | None:
        """Why ``run_tasks`` refuses ``task``'s user (its command's, else its executor's,
        else the framework's) to the framework's principal, or None."""
        acls = self.acls()
        if acls is PERMISSIVE or framework.in_process:
            return None
        user = ((task.command.user if task.command is not None else None)
                or (task.executor.command.user if task.executor is not None
                    and task.executor.command is not None else None)
                or (executor.command.user if executor is not None
                    and executor.command is not None else None)
                or framework.info.user)
        principal = framework.info.principal
        if acls.allowed(Action.RUN_TASK, principal, user):
            return None
        return acls.explain(Action.RUN_TASK, principal, user)

    def check_task(
        self, framework: Framework, agent: Agent, task: TaskInfo, pool: Resources,
        resources: Resources | None = None,
    ) -> tuple[Resources, ExecutorInfo | None, bool]:
        """Validate one task against the offer pool; raise BadRequest with the reason.
        ``resources``: ``task.resources`` already read (``Resources.from_json``)."""
        if task.task_id in framework.tasks or task.task_id in framework.unreachable_tasks:
            raise BadRequest(f"Task has duplicate ID: {task.task_id}")
        if task.agent_id != agent.id:
            raise BadRequest(f"Task uses invalid agent: {task.agent_id} (offer is for {agent.id})")
        if (task.command is None) == (task.executor is None):
            raise BadRequest(
                "Task should have at least one (but not both) of CommandInfo or ExecutorInfo"
            )
        if resources is None:
            resources = Resources.from_json(task.resources, "task.resources")
        if not resources.scalars and not resources.ranges:
            raise BadRequest("Task uses no resources")
        needed = resources
        executor = task.executor
        new_executor = False
        if executor is not None:
            known = agent.executors.get(framework.id, {}).get(executor.executor_id)
            if known is None:
                new_executor = True
                needed = needed + Resources.from_json(executor.resources, "executor.resources")
            elif known.command != executor.command:
                raise BadRequest(
                    f"ExecutorInfo for executor {executor.executor_id} differs from the one"
                    " already running on this agent"
                )
        if not pool.contains(needed):
            lacking = ", ".join(f"{k} {v:g}" for k, v in pool.shortfall(needed).items())
            raise BadRequest(
                f"Task uses more resources {needed} than available {pool}"
                + (f" (short of {lacking})" if lacking else "")
            )
        return resources, executor if new_executor else None, new_executor

    def launch(
        self,
        framework: Framework,
        agent: Agent,
        role: str,
        task: TaskInfo,
        group_executor: ExecutorInfo | None,
        pool: Resources,
        resources: Resources | None = None,
    ) -> Resources:
        """Launch one task from ``pool`` (``resources``: its ``task.resources`` already
        read); what is left of the pool (``pool`` itself when the task failed)."""
        try:
            resources, new_executor, _ = self.check_task(framework, agent, task, pool,
                                                         resources)
        except BadRequest as exc:
            self.task_error(framework, task, exc.message, Reason.REASON_TASK_INVALID)
            return pool
        refused = self.unauthorized(framework, task)
        if refused is not None:
            self.task_error(framework, task, refused, Reason.REASON_TASK_UNAUTHORIZED)
            return pool
        pool = pool - resources
        if new_executor is not None:
            pool = pool - Resources.from_json(new_executor.resources)
            new_executor.framework_id = framework.id
            self.book.add_executor(agent, framework, new_executor)
        self._add_task(framework, agent, role, task, resources)
        self.out.to_agent(
            agent,
            MasterCommand(
                type=MasterCommandType.RUN_TASK,
                run_task=RunTask(framework_info=framework.info, task=task, executor=task.executor),
            ),
        )
        return pool

    def launch_group(
        self, framework: Framework, agent: Agent, role: str, group: Any, pool: Resources
    ) -> Resources:
        """LAUNCH_GROUP is all or nothing: one invalid task fails every task of the group."""
        executor: ExecutorInfo = group.executor
        tasks: list[TaskInfo] = group.task_group.tasks
        try:
            if not tasks:
                raise BadRequest("Task group is empty")
            ids = [t.task_id for t in tasks]
            if len(set(ids)) != len(ids):
                raise BadRequest("Task group has duplicate task IDs")
            needed = Resources()
            for task in tasks:
                if task.executor is not None or task.command is None:
                    raise BadRequest(f"Task {task.task_id} in a group needs a command, no executor")
                needed = needed + self.check_task(framework, agent, task, pool)[0]
            known = agent.executors.get(framework.id, {}).get(executor.executor_id)
            if known is None:
                needed = needed + Resources.from_json(executor.resources, "executor.resources")
            if not pool.contains(needed):
                raise BadRequest(f"Task group uses more resources {needed} than available {pool}")
        except BadRequest as exc:
            for task in tasks:
                self.task_error(framework, task, exc.message, Reason.REASON_TASK_GROUP_INVALID)
            return pool
        refused = next(filter(None, (self.unauthorized(framework, t, executor)
                                     for t in tasks)), None)
        if refused is not None:
            for task in tasks:
                self.task_error(framework, task, refused,
                                Reason.REASON_TASK_GROUP_UNAUTHORIZED)
            return pool
        pool = pool - needed
        if known is None:
            executor.framework_id = framework.id
            self.book.add_executor(agent, framework, executor)
        for task in tasks:
            task.executor = None
            self._add_task(
                framework, agent, role, task, Resources.from_json(task.resources),
                executor.executor_id,
            )
        self.out.to_agent(
            agent,
            MasterCommand(
                type=MasterCommandType.RUN_TASK_GROUP,
                run_task_group=RunTaskGroup(
                    framework_info=framework.info, executor=executor, task_group=group.task_group
                ),
            ),
        )
        return pool

    def _add_task(
        self,
        framework: Framework,
        agent: Agent,
        role: str,
        info: TaskInfo,
        resources: Resources,
        executor_id: str | None = None,
    ) -> None:
        task = Task(
            info=info,
            framework_id=framework.id,
            agent_id=agent.id,
            role=role,
            resources=resources,
            executor_id=executor_id or (info.executor.executor_id if info.executor else None),
            user=(info.command.user if info.command else None) or framework.info.user,
        )
        self.book.add_task(task)
        self.counters["tasks_launched"] += 1
        if self.out.observers:
            self.out.emit({"type": "TASK_ADDED", "task_added": {"task": task_json(task)}})

    def task_error(
        self,
        framework: Framework,
        task: TaskInfo,
        message: str,
        reason: Reason,
        state: TaskState = TaskState.TASK_ERROR,
    ) -> None:
        log.info("task %s of framework %s: %s %s", task.task_id, framework.id, state, message)
        status = master_status(task.task_id, state, self.clock.time(), reason=reason,
                               message=message, agent_id=task.agent_id)
        self.out.status(framework, status)
        self.counters["invalid_tasks"] += 1
        framework.metrics[TERMINAL_KEYS[state]] += 1
