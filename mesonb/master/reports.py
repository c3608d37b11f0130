"""A re-registering agent's report: the master rebuilds its book from what the agent runs.

An agent re-registers after it restarted, after a master failover and after a partition;
its REGISTER lists the frameworks, executors and tasks it holds. The master takes that list
as the truth for the agent:

* tasks it knew stay, in the reported state; tasks it marked unreachable come back;
* tasks it did not know (a new leader's case) are added; frameworks it knows only from
  the report are recovered INACTIVE, with their failover timeout to subscribe;
* tasks it knew on the agent that the agent did not report are TASK_DROPPED;
* tasks of frameworks that were removed meanwhile are shut down with their framework.

When an unreachable agent returns, tasks of PARTITION_AWARE frameworks come back with
TASK_RUNNING / ``REASON_AGENT_REREGISTERED``; tasks of other frameworks, which were told
TASK_LOST, are killed (Mesos's behaviour).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from mesonb.protocol.agent import (
    KillTask,
    MasterCommand,
    MasterCommandType,
    Register,
    ShutdownFramework,
)
from mesonb.protocol.mesos import FrameworkInfo, TaskStatus
from mesonb.protocol.resources import EMPTY, Resources
from mesonb.protocol.states import Reason, TaskState

from .book import Agent, Book, Framework, Task
from .framework_fsm import FrameworkLifecycle
from .updates import master_status

SendStatus = Callable[[Framework, TaskStatus], None]


@dataclasses.dataclass
class ReportAdoption:
    """Adopts reports into ``book``; ``now``/``mono`` are the wall and monotonic times."""

    book: Book
    now: float
    mono: float
    send_status: SendStatus

    def adopt(self, agent: Agent, msg: Register, was_unreachable: bool) -> list[dict[str, Any]]:
        """Rebuild the agent's tasks and executors from its report; returns the commands to
        send once it is registered (shutdowns of removed frameworks, kills of tasks that
        must not return)."""
        after: list[dict[str, Any]] = []
        book, now = self.book, self.now
        infos = {f.id: f for f in msg.frameworks or () if f.id}
        reported: set[tuple[str, str]] = set()
        agent.executors = {}
        agent.used = EMPTY
        for fw_id in {e.framework_id for e in msg.executors or ()} | {
            t.framework_id for t in msg.tasks or ()
        }:
            if fw_id in book.completed_frameworks:
                after.append(MasterCommand(
                    type=MasterCommandType.SHUTDOWN_FRAMEWORK,
                    shutdown_framework=ShutdownFramework(framework_id=fw_id)).to_json())
            elif fw_id not in book.frameworks and fw_id in infos:
                self._recover_framework(infos[fw_id])
        for executor in msg.executors or ():
            framework = book.frameworks.get(executor.framework_id)
            if framework is not None:
                book.add_executor(agent, framework, executor.executor)
        for item in msg.tasks or ():
            framework = book.frameworks.get(item.framework_id)
            if framework is None:
                continue
            key = (item.framework_id, item.task.task_id)
            reported.add(key)
            task = framework.tasks.get(item.task.task_id)
            if task is not None:
                agent.used = agent.used + task.resources
                agent.tasks[key] = task
                book.set_task_state(task, item.state)
                continue
            task = framework.unreachable_tasks.pop(item.task.task_id, None)
            if task is not None:  # this master marked it unreachable
                framework.tasks[task.id] = task
                framework.used = framework.used + task.resources
                agent.used = agent.used + task.resources
                agent.tasks[key] = task
                book.set_task_state(task, item.state)
                task.unreachable_time = None
            else:
                task = Task(info=item.task, framework_id=item.framework_id, agent_id=agent.id,
                            role=framework.roles[0],
                            resources=Resources.from_json(item.task.resources),
                            executor_id=item.executor_id, state=item.state)
                if item.latest_status is not None:
                    task.record(item.latest_status)
                book.add_task(task)
                if not was_unreachable:
                    continue
                # The agent was unreachable before this master led (it knows that from
                # the registry only): the old leader reported its tasks unreachable/lost.
            if not framework.partition_aware:
                # It was told TASK_LOST and may have replaced the task: kill the
                # returning copy, as Mesos does for frameworks without PARTITION_AWARE.
                after.append(MasterCommand(type=MasterCommandType.KILL_TASK, kill_task=KillTask(
                    framework_id=framework.id, task_id=task.id)).to_json())
                continue
            status = item.latest_status or master_status(task.id, item.state, now)
            status = TaskStatus(task_id=task.id, state=item.state, source=status.source,
                                reason=Reason.REASON_AGENT_REREGISTERED,
                                message="Agent re-registered", agent_id=agent.id,
                                executor_id=task.executor_id, timestamp=now)
            task.record(status)
            self.send_status(framework, status)
        for key, task in list(agent.tasks.items()):
            if key not in reported:
                agent.tasks.pop(key)
                self._drop_missing(task, agent)
        return after

    def _recover_framework(self, info: FrameworkInfo) -> None:
        """A framework known only from an agent's report (after a master failover)."""
        assert info.id is not None
        framework = Framework(info.id, info, registered_time=self.now)
        framework.lifecycle = FrameworkLifecycle.recovered(
            info.id, self.mono + (info.failover_timeout or 0))
        self.book.add_framework(framework)

    def _drop_missing(self, task: Task, agent: Agent) -> None:
        framework = self.book.frameworks.get(task.framework_id)
        status = master_status(task.id, TaskState.TASK_DROPPED, self.now,
                               reason=Reason.REASON_AGENT_REREGISTERED, agent_id=agent.id,
                               message="Task was not found on the agent when it re-registered")
        task.record(status)
        if framework is not None:
            framework.used = framework.used - task.resources
            framework.tasks.pop(task.id, None)
            framework.completed_tasks.append(task)
            self.send_status(framework, status)
        self.book.set_task_state(task, TaskState.TASK_DROPPED)
