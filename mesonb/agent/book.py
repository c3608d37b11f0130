"""The agent's book: frameworks, their executors, and the executors' tasks.

An executor, as the agent sees it::

                 SUBSCRIBE                 shutdown / kill / timeout
   REGISTERING ────────────► RUNNING ─────────────────────────► TERMINATING
        │                       │                                   │
        └───────────────────────┴────── process exited ─────────────┴──► TERMINATED

===========  ==========================  ===========  ========================================
from         event                       to           what the agent does
===========  ==========================  ===========  ========================================
REGISTERING  SUBSCRIBE                   RUNNING      SUBSCRIBED, then LAUNCH for queued tasks
REGISTERING  registration timeout        TERMINATING  destroy; tasks FAILED (REGISTRATION_TIMEOUT)
REGISTERING  kill of its last task       TERMINATING  destroy; task KILLED (KILLED_DURING_LAUNCH)
RUNNING      SUBSCRIBE again             RUNNING      new stream; re-record unacked updates
RUNNING      shutdown                    TERMINATING  SHUTDOWN event; destroy after grace
(recovered)  agent restart, pid alive    REGISTERING  wait for SUBSCRIBE (re-registration timeout:
                                                      destroy; tasks FAILED REREGISTRATION_TIMEOUT)
(recovered)  agent restart, pid gone     TERMINATED   tasks not terminal: FAILED
                                                      (EXECUTOR_TERMINATED)
any          process exited              TERMINATED   tasks not terminal: FAILED (or the pending
                                                      termination's state); EXECUTOR_EXITED
TERMINATED   last task's stream closed   (completed)  moved to the framework's completed list
===========  ==========================  ===========  ========================================

A task is *queued* until its executor subscribes and gets its LAUNCH, *launched* while
its state is not terminal or its terminal update is unacknowledged, and *completed* once
the framework acknowledged its terminal update.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mesonb.protocol.mesos import ExecutorInfo, FrameworkInfo, TaskInfo, TaskStatus
from mesonb.protocol.resources import Resources
from mesonb.protocol.states import Reason, TaskState

if TYPE_CHECKING:
    from .containerizer import Container
    from .executor_api import EventStream

MAX_COMPLETED_EXECUTORS = 150  # Mesos: --max_completed_executors_per_framework
MAX_COMPLETED_TASKS = 1000
MAX_COMPLETED_FRAMEWORKS = 50


class ExecutorState(enum.Enum):
    REGISTERING = "REGISTERING"
    RUNNING = "RUNNING"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"


@dataclass
class Termination:
    """Why the agent ended an executor: what its unfinished tasks become."""

    state: TaskState
    reason: Reason
    message: str


@dataclass
class Task:
    """A task on this agent."""

    info: TaskInfo
    framework_id: str
    executor_id: str
    state: TaskState = TaskState.TASK_STAGING
    statuses: list[TaskStatus] = field(default_factory=list)
    group: list[str] | None = None  # the task ids launched with it in one LAUNCH_GROUP

    @property
    def task_id(self) -> str:
        return self.info.task_id

    @property
    def resources(self) -> Resources:
        return Resources.from_json(self.info.resources)

    def to_v0(self, agent_id: str | None) -> dict[str, Any]:
        """Mesos's v0 JSON for a task (src/common/http.cpp)."""
        out: dict[str, Any] = {
            "id": self.task_id,
            "name": self.info.name,
            "framework_id": self.framework_id,
            "executor_id": self.executor_id,
            "slave_id": agent_id or "",
            "state": self.state.value,
            "resources": self.resources.to_flat(),
            "statuses": [
                {"state": s.state.value, "timestamp": s.timestamp or 0.0,
                 **({"message": s.message} if s.message else {}),
                 **({"reason": s.reason.value} if s.reason else {})}
                for s in self.statuses
            ],
        }
        if self.info.labels:
            out["labels"] = self.info.labels.get("labels", [])
        return out


@dataclass
class Executor:
    """An executor (one container run) of a framework on this agent."""

    info: ExecutorInfo
    framework_id: str
    container_id: str
    directory: Path
    token: str
    command_executor: bool = False  # the agent's built-in executor for a command task
    state: ExecutorState = ExecutorState.REGISTERING
    container: Container | None = None
    stream: EventStream | None = None
    queued: OrderedDict[str, Task] = field(default_factory=OrderedDict)
    launched: dict[str, Task] = field(default_factory=dict)
    completed: list[Task] = field(default_factory=list)
    queued_groups: list[list[str]] = field(default_factory=list)  # task ids per LAUNCH_GROUP
    termination: Termination | None = None
    exit_status: int | None = None
    recovered: bool = False  # read back from checkpoints by a restarted agent

    @property
    def executor_id(self) -> str:
        return self.info.executor_id

    def task(self, task_id: str) -> Task | None:
        return self.queued.get(task_id) or self.launched.get(task_id)

    def tasks(self) -> list[Task]:
        return [*self.queued.values(), *self.launched.values()]

    @property
    def resources(self) -> Resources:
        return Resources.from_json(self.info.resources)

    def to_v0(self, agent_id: str | None) -> dict[str, Any]:
        return {
            "id": self.executor_id,
            "name": self.info.name or "",
            "source": self.info.source or "",
            "container": self.container_id,
            "directory": str(self.directory),
            "type": (self.info.type.value if self.info.type else "CUSTOM"),
            "resources": self.resources.to_flat(),
            "tasks": [t.to_v0(agent_id) for t in self.launched.values()],
            "queued_tasks": [t.to_v0(agent_id) for t in self.queued.values()],
            "completed_tasks": [t.to_v0(agent_id) for t in self.completed],
        }


@dataclass
class Framework:
    """A framework with executors (or pending tasks) on this agent."""

    info: FrameworkInfo
    executors: dict[str, Executor] = field(default_factory=dict)
    completed_executors: list[Executor] = field(default_factory=list)
    terminating: bool = False

    @property
    def framework_id(self) -> str:
        assert self.info.id is not None
        return self.info.id

    @property
    def checkpoint(self) -> bool:
        return bool(self.info.checkpoint)

    @property
    def partition_aware(self) -> bool:
        return self.info.has_capability("PARTITION_AWARE")

    def executor_of(self, task_id: str) -> Executor | None:
        for executor in self.executors.values():
            if executor.task(task_id) is not None:
                return executor
        return None

    def complete_executor(self, executor: Executor) -> None:
        self.executors.pop(executor.executor_id, None)
        self.completed_executors.append(executor)
        del self.completed_executors[:-MAX_COMPLETED_EXECUTORS]

    def to_v0(self, agent_id: str | None) -> dict[str, Any]:
        info = self.info
        return {
            "id": self.framework_id,
            "name": info.name,
            "user": info.user,
            "hostname": info.hostname or "",
            "failover_timeout": info.failover_timeout,
            "checkpoint": info.checkpoint,
            "role": info.role or (info.roles[0] if info.roles else "*"),
            "roles": info.role_list,
            "principal": info.principal or "",
            "capabilities": [c.type for c in info.capabilities or ()],
            "executors": [e.to_v0(agent_id) for e in self.executors.values()],
            "completed_executors": [e.to_v0(agent_id) for e in self.completed_executors],
        }
