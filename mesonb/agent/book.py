"""The agent's book: frameworks, their executors, and the executors' tasks.

An executor's life is the container machine's (:mod:`mesonb.agent.container_fsm`), a
task's the task machine's (:mod:`mesonb.agent.task_fsm`); this module holds what they
change and what the endpoints show. :class:`AgentBook` is the agent's whole book.

A task is *queued* until its executor subscribes and gets its LAUNCH, *launched* while
its state is not terminal or its terminal update is unacknowledged, and *completed* once
the framework acknowledged its terminal update.
"""

from __future__ import annotations

import enum
import functools
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mesonb.protocol.agent import AgentExecutor, AgentTask
from mesonb.protocol.executor import ExecutorEvent
from mesonb.protocol.mesos import ExecutorInfo, FrameworkInfo, TaskInfo, TaskStatus
from mesonb.protocol.resources import Resources
from mesonb.protocol.states import TaskState

from .container_fsm import ContainerLife, ContainerState, Termination
from .task_fsm import TaskPhase

if TYPE_CHECKING:
    from .containerizer import Container


class EventStream(Protocol):
    """An executor's open SUBSCRIBE answer (:class:`mesonb.agent.executor_api.EventStream`)."""

    @property
    def closed(self) -> bool: ...

    def send(self, event: ExecutorEvent, delay: float = ...) -> bool:
        """``delay``: how long an ACKNOWLEDGED or HEARTBEAT may wait for company."""
        ...

    def close(self) -> None: ...


MAX_COMPLETED_EXECUTORS = 150  # Mesos: --max_completed_executors_per_framework
MAX_COMPLETED_TASKS = 1000
MAX_COMPLETED_FRAMEWORKS = 50


__all__ = ["AgentBook", "EventStream", "Executor", "ExecutorState", "Framework", "Task",
           "Termination"]


class ExecutorState(enum.Enum):
    """An executor's state as the endpoints and metrics show it (a launching container
    counts as registering)."""

    REGISTERING = "REGISTERING"
    RUNNING = "RUNNING"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"


_SHOWN: dict[ContainerState, ExecutorState] = {
    s: ExecutorState.REGISTERING if s is ContainerState.LAUNCHING else ExecutorState(s.value)
    for s in ContainerState
}


@dataclass
class Task:
    """A task on this agent."""

    info: TaskInfo
    framework_id: str
    executor_id: str
    state: TaskState = TaskState.TASK_STAGING
    phase: TaskPhase = TaskPhase.QUEUED  # see mesonb.agent.task_fsm
    statuses: list[TaskStatus] = field(default_factory=list)
    group: list[str] | None = None  # the task ids launched with it in one LAUNCH_GROUP

    @property
    def task_id(self) -> str:
        return self.info.task_id

    @functools.cached_property
    def resources(self) -> Resources:
        """The task's resources, parsed once (the containerizer sums them at every launch
        and end of a task in the same executor)."""
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
    life: ContainerLife | None = None  # the container machine's record (set on creation)
    container: Container | None = None
    stream: EventStream | None = None
    queued: OrderedDict[str, Task] = field(default_factory=OrderedDict)
    launched: dict[str, Task] = field(default_factory=dict)
    # the last MAX_COMPLETED_TASKS, oldest first (a deque: dropping the oldest is O(1))
    completed: deque[Task] = field(
        default_factory=lambda: deque(maxlen=MAX_COMPLETED_TASKS))
    queued_groups: list[list[str]] = field(default_factory=list)  # task ids per LAUNCH_GROUP
    exit_status: int | None = None
    _resources: tuple[ExecutorInfo, Resources] | None = field(
        default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.life is None:
            self.life = ContainerLife(self.container_id)

    @property
    def executor_id(self) -> str:
        return self.info.executor_id

    @property
    def container_life(self) -> ContainerLife:
        """The container machine's record of this executor's container."""
        assert self.life is not None
        return self.life

    @property
    def state(self) -> ExecutorState:
        life = self.life
        assert life is not None
        return _SHOWN[life.state]

    @property
    def recovered(self) -> bool:
        """Read back from checkpoints by a restarted agent."""
        return self.container_life.recovered

    @property
    def termination(self) -> Termination | None:
        return self.container_life.termination

    def task(self, task_id: str) -> Task | None:
        return self.queued.get(task_id) or self.launched.get(task_id)

    def tasks(self) -> list[Task]:
        return [*self.queued.values(), *self.launched.values()]

    @property
    def resources(self) -> Resources:
        """The executor's own resources, parsed once per ``info`` (the containerizer
        sums them at every launch and end of a task)."""
        cached = self._resources
        if cached is None or cached[0] is not self.info:
            cached = self._resources = (self.info, Resources.from_json(self.info.resources))
        return cached[1]

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
    # task id → id of the executor holding it: a status update finds its executor in O(1)
    task_index: dict[str, str] = field(default_factory=dict, repr=False)

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
        """The live executor whose queued or launched tasks hold ``task_id`` (an index
        look-up: the agent does this for every status update and acknowledgement)."""
        executor_id = self.task_index.get(task_id)
        executor = self.executors.get(executor_id) if executor_id is not None else None
        if executor is not None and executor.task(task_id) is not None:
            return executor
        return None

    def index_tasks(self, executor: Executor, task_ids: Iterable[str]) -> None:
        """``executor`` holds these tasks now (queued or launched)."""
        for task_id in task_ids:
            self.task_index[task_id] = executor.executor_id

    def unindex_task(self, executor: Executor, task_id: str) -> None:
        """``executor`` no longer holds ``task_id`` (its terminal update was acknowledged)."""
        if self.task_index.get(task_id) == executor.executor_id:
            del self.task_index[task_id]

    def complete_executor(self, executor: Executor) -> None:
        for task in [*executor.completed, *executor.tasks()]:
            self.unindex_task(executor, task.task_id)
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


class AgentBook:
    """The frameworks of one agent, with their executors and tasks."""

    def __init__(self) -> None:
        self.frameworks: dict[str, Framework] = {}
        self.completed_frameworks: deque[Framework] = deque(maxlen=MAX_COMPLETED_FRAMEWORKS)

    def all_executors(self) -> Iterator[Executor]:
        for framework in self.frameworks.values():
            yield from framework.executors.values()

    def all_tasks(self) -> Iterator[Task]:
        for executor in self.all_executors():
            yield from executor.tasks()

    def executor(self, framework_id: str, executor_id: str) -> Executor | None:
        framework = self.frameworks.get(framework_id)
        return framework.executors.get(executor_id) if framework else None

    def executor_of(self, framework_id: str, task_id: str) -> Executor | None:
        framework = self.frameworks.get(framework_id)
        return framework.executor_of(task_id) if framework else None

    def maybe_remove_framework(self, framework: Framework) -> None:
        """A framework without executors is moved to the completed ones."""
        if framework.executors:
            return
        self.frameworks.pop(framework.framework_id, None)
        self.completed_frameworks.append(framework)

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
