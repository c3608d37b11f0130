"""The master's book: frameworks, agents, tasks and offers, and their indexes.

Plain records, no I/O. The :class:`~mesonb.master.master.Master` owns one ``Book`` and is
the only writer; HTTP handlers (operator, state, metrics) read it. Resource accounting is
incremental so that building an allocator snapshot or a metrics snapshot never walks the
100,000 tasks:

* ``Agent.used``      resources held by the agent's live tasks and executors;
* ``Agent.offered``   resources in outstanding offers on the agent;
* ``Framework.used`` / ``Framework.offered`` the same per framework.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from mesonb import tls
from mesonb.allocator.snapshot import Filter
from mesonb.protocol.codec import copy_of
from mesonb.protocol.mesos import AgentInfo, ExecutorInfo, FrameworkInfo, TaskInfo, TaskStatus
from mesonb.protocol.reservations import Portion, render
from mesonb.protocol.resources import EMPTY, Resources
from mesonb.protocol.states import TaskState

from . import ledger as ledgers
from .agent_fsm import AgentLifecycle, AgentState
from .drain_info import DrainInfo
from .framework_fsm import FrameworkLifecycle, FrameworkState
from .metrics_framework import TERMINAL_KEYS
from .offer_fsm import OfferRecord, OfferState

Send = Callable[[Any], None]  # a MasterCommand, or its JSON


@dataclasses.dataclass(slots=True, eq=False)
class Task:
    """A task as the master knows it (Mesos's ``Task`` message, mesos.proto)."""

    info: TaskInfo
    framework_id: str
    agent_id: str
    role: str
    resources: Resources
    executor_id: str | None = None
    state: TaskState = TaskState.TASK_STAGING
    statuses: list[TaskStatus] = dataclasses.field(default_factory=list)
    status_update_state: TaskState | None = None
    status_update_uuid: bytes | None = None
    unreachable_time: float | None = None
    user: str | None = None

    @property
    def id(self) -> str:
        return self.info.task_id

    @property
    def latest_status(self) -> TaskStatus | None:
        return self.statuses[-1] if self.statuses else None

    def record(self, status: TaskStatus, keep: int = 8) -> None:
        """Remember a status (bounded: the first one and the most recent), without its
        ``data``, as the Mesos master does: executors may put large payloads there. A
        status of the same state as the last one replaces it (Master::updateTask: a
        resend, a health check's update)."""
        if status.data is not None:
            status = copy_of(status)
            status.data = None
        if self.statuses and self.statuses[-1].state is status.state:
            self.statuses.pop()
        self.statuses.append(status)
        if len(self.statuses) > keep:
            del self.statuses[1]


@dataclasses.dataclass(slots=True, eq=False)
class Agent:
    id: str
    info: AgentInfo
    total: Resources
    version: str
    send: Send | None = None  # the live link; None while disconnected
    close: Callable[[], None] | None = None
    used: Resources = EMPTY
    offered: Resources = EMPTY
    tasks: dict[tuple[str, str], Task] = dataclasses.field(default_factory=dict)
    # framework id -> executor id -> ExecutorInfo, with the executor's own resources
    executors: dict[str, dict[str, ExecutorInfo]] = dataclasses.field(default_factory=dict)
    offers: set[str] = dataclasses.field(default_factory=set)
    registered_time: float = 0.0
    reregistered_time: float | None = None
    unreachable_time: float | None = None
    attributes: dict[str, Any] = dataclasses.field(default_factory=dict)
    upid: str | None = None  # ``slave(1)@ip:port`` from the agent's REGISTER, when it said
    deactivated: bool = False  # by DEACTIVATE_AGENT or DRAIN_AGENT: not offered (drain.py)
    drain: DrainInfo | None = None  # set by DRAIN_AGENT until REACTIVATE_AGENT
    ledger: ledgers.Ledger = dataclasses.field(default_factory=ledgers.Ledger)  # reserved part

    _available: tuple[Resources, Resources, Resources, Resources] | None = None
    lifecycle: AgentLifecycle = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.lifecycle = AgentLifecycle(self.id)

    @property
    def state(self) -> AgentState:
        return self.lifecycle.state

    @property
    def available(self) -> Resources:
        """Free and not offered. Cached: Resources are immutable and every change to
        ``total``, ``used`` or ``offered`` assigns a new value, so identity is the key."""
        cached = self._available
        if (
            cached is not None
            and cached[0] is self.total
            and cached[1] is self.used
            and cached[2] is self.offered
        ):
            return cached[3]
        value = self.total - self.used - self.offered
        self._available = (self.total, self.used, self.offered, value)
        return value

    @property
    def active(self) -> bool:
        """Admitted, connected, not draining and not deactivated: offered."""
        return self.lifecycle.state is AgentState.REGISTERED and not self.deactivated

    @property
    def hostname(self) -> str:
        return self.info.hostname

    @property
    def pid(self) -> str:
        """The agent's ``slave(1)@ip:port``; the hostname stands in for the ip of an agent
        that did not say its pid (one recovered from the registry)."""
        return self.upid or f"slave(1)@{self.hostname}:{self.info.port}"

    @property
    def ip(self) -> str:
        """The ip of :attr:`pid` (its host part, without brackets for IPv6)."""
        host = self.pid.rpartition("@")[2].rpartition(":")[0]
        return host[1:-1] if host.startswith("[") else host


@dataclasses.dataclass(slots=True, eq=False)
class Offer:
    id: str
    framework_id: str
    agent_id: str
    role: str
    resources: Resources
    created: float  # monotonic seconds
    state: OfferState = OfferState.OUTSTANDING
    portion: Portion | None = None  # the part of ``resources`` reserved to ``role``

    def to_json(self, agent: Agent) -> dict[str, Any]:
        """The ``Offer`` message as sent in an OFFERS event."""
        out: dict[str, Any] = {
            "id": {"value": self.id},
            "framework_id": {"value": self.framework_id},
            "agent_id": {"value": self.agent_id},
            "hostname": agent.hostname,
            "allocation_info": {"role": self.role},
            "resources": (render(self.resources - self.portion.total(), self.portion, self.role)
                          if self.portion else self.resources.to_json("*", self.role)),
        }
        if agent.info.attributes:
            out["attributes"] = [a.to_json() for a in agent.info.attributes]
        executors = agent.executors.get(self.framework_id)
        if executors:
            out["executor_ids"] = [{"value": e} for e in executors]
        out["url"] = {
            "scheme": tls.scheme(),
            "address": {"hostname": agent.hostname, "ip": agent.ip, "port": agent.info.port},
            "path": "/slave(1)",
        }
        return out


@dataclasses.dataclass(slots=True, eq=False)
class Framework:
    id: str
    info: FrameworkInfo
    send: Send | None = None  # the live SUBSCRIBE stream
    close: Callable[[str | None], None] | None = None
    used: Resources = EMPTY
    offered: Resources = EMPTY
    tasks: dict[str, Task] = dataclasses.field(default_factory=dict)
    unreachable_tasks: dict[str, Task] = dataclasses.field(default_factory=dict)
    completed_tasks: collections.deque[Task] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=1000)
    )
    # Terminal tasks whose terminal update (from the agent, with a uuid) the framework has
    # not acknowledged yet. Mesos's master keeps such tasks in ``Framework::tasks`` until
    # the acknowledgement, so reconciliation still answers their terminal state.
    unacknowledged: dict[str, Task] = dataclasses.field(default_factory=dict)
    offers: dict[str, Offer] = dataclasses.field(default_factory=dict)
    suppressed_roles: set[str] = dataclasses.field(default_factory=set)
    # agent id -> refuse_seconds filter (handed to the allocator as is, never copied)
    filters: dict[str, Filter] = dataclasses.field(default_factory=dict)
    registered_time: float = 0.0
    reregistered_time: float | None = None
    unregistered_time: float | None = None
    # per-framework metrics (calls/<type>, events/<type>, offers/sent, ...): see metrics_framework
    metrics: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    # Subscribed through the in-process endpoint: code in the master's own process, trusted
    # as the process is (it could reach these objects directly); ACLs do not apply to it.
    in_process: bool = False
    lifecycle: FrameworkLifecycle = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.lifecycle = FrameworkLifecycle(self.id)

    @property
    def connected(self) -> bool:
        return self.send is not None

    @property
    def active(self) -> bool:
        """Subscribed now (Mesos's ``Framework::active()``, no DEACTIVATE here)."""
        return self.lifecycle.state is FrameworkState.SUBSCRIBED

    @property
    def stream_id(self) -> str | None:
        """The SUBSCRIBE stream it is (or was last) on; None: never, on this master."""
        return self.lifecycle.stream_id

    @property
    def failover_deadline(self) -> float | None:
        """Monotonic seconds when it is torn down unless it subscribes again."""
        return self.lifecycle.deadline

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.info.role_list)

    @property
    def partition_aware(self) -> bool:
        return self.info.has_capability("PARTITION_AWARE")

    @property
    def name(self) -> str:
        return self.info.name


class Book:
    """All frameworks, agents, tasks and offers the master knows about."""

    def __init__(self, max_completed_tasks: int = 1000, max_completed_frameworks: int = 50):
        """``max_completed_tasks`` bounds each framework's completed-task history."""
        self.frameworks: dict[str, Framework] = {}
        self.completed_frameworks: collections.OrderedDict[str, Framework] = (
            collections.OrderedDict()
        )
        self.agents: dict[str, Agent] = {}
        self.offers: dict[str, Offer] = {}
        self.gone_agents: dict[str, float] = {}
        self.max_completed_tasks = max_completed_tasks
        self.max_completed_frameworks = max_completed_frameworks
        self.total: Resources = EMPTY  # resources of all registered (reachable) agents
        self.task_counts: collections.Counter[TaskState] = collections.Counter()

    # -- tasks ---------------------------------------------------------------------
    def add_task(self, task: Task) -> None:
        framework = self.frameworks[task.framework_id]
        agent = self.agents[task.agent_id]
        framework.tasks[task.id] = task
        agent.tasks[(task.framework_id, task.id)] = task
        framework.used = framework.used + task.resources
        agent.used = agent.used + task.resources
        self.task_counts[task.state] += 1

    def set_task_state(self, task: Task, state: TaskState) -> None:
        if state is task.state:
            return
        self.task_counts[task.state] -= 1
        self.task_counts[state] += 1
        if state.terminal and not task.state.terminal:
            framework = self.frameworks.get(task.framework_id)
            if framework is not None:
                framework.metrics[TERMINAL_KEYS[state]] += 1
        task.state = state

    def finish_task(self, task: Task) -> None:
        """Release a task's resources and move it to the framework's completed tasks."""
        framework = self.frameworks.get(task.framework_id)
        agent = self.agents.get(task.agent_id)
        if agent is not None and agent.tasks.pop((task.framework_id, task.id), None) is not None:
            agent.used = agent.used - task.resources
        if framework is not None:
            if framework.tasks.pop(task.id, None) is not None:
                framework.used = framework.used - task.resources
            framework.unreachable_tasks.pop(task.id, None)
            framework.completed_tasks.append(task)
            latest = task.latest_status
            if task.status_update_uuid is not None and latest is not None and latest.uuid:
                framework.unacknowledged[task.id] = task  # ended by an update still unacked

    def find_task(self, framework_id: str, task_id: str) -> Task | None:
        framework = self.frameworks.get(framework_id)
        if framework is None:
            return None
        return framework.tasks.get(task_id) or framework.unreachable_tasks.get(task_id)

    def find_completed_task(self, framework_id: str, task_id: str) -> Task | None:
        framework = self.frameworks.get(framework_id)
        if framework is None:
            return None
        for task in reversed(framework.completed_tasks):
            if task.id == task_id:
                return task
        return None

    def live_tasks(self) -> Iterator[Task]:
        for framework in self.frameworks.values():
            yield from framework.tasks.values()

    # -- executors -----------------------------------------------------------------
    def add_executor(self, agent: Agent, framework: Framework, executor: ExecutorInfo) -> None:
        agent.executors.setdefault(framework.id, {})[executor.executor_id] = executor
        if executor.resources:
            res = Resources.from_json(executor.resources)
            agent.used = agent.used + res
            framework.used = framework.used + res

    def remove_executor(self, agent: Agent, framework_id: str, executor_id: str) -> None:
        executors = agent.executors.get(framework_id, {})
        executor = executors.pop(executor_id, None)
        if not executors:
            agent.executors.pop(framework_id, None)
        if executor is not None and executor.resources:
            res = Resources.from_json(executor.resources)
            agent.used = agent.used - res
            framework = self.frameworks.get(framework_id)
            if framework is not None:
                framework.used = framework.used - res

    # -- offers --------------------------------------------------------------------
    def add_offer(self, offer: Offer) -> None:
        self.offers[offer.id] = offer
        framework = self.frameworks[offer.framework_id]
        agent = self.agents[offer.agent_id]
        framework.offers[offer.id] = offer
        agent.offers.add(offer.id)
        framework.offered = framework.offered + offer.resources
        agent.offered = agent.offered + offer.resources

    def remove_offer(self, offer: OfferRecord) -> None:
        """Forget an offer and return its resources to the agent's available pool."""
        if self.offers.pop(offer.id, None) is None:
            return
        framework = self.frameworks.get(offer.framework_id)
        agent = self.agents.get(offer.agent_id)
        if framework is not None and framework.offers.pop(offer.id, None) is not None:
            framework.offered = framework.offered - offer.resources
        if agent is not None:
            agent.offers.discard(offer.id)
            agent.offered = agent.offered - offer.resources

    # -- frameworks ----------------------------------------------------------------
    def add_framework(self, framework: Framework) -> Framework:
        framework.completed_tasks = collections.deque(maxlen=self.max_completed_tasks)
        self.frameworks[framework.id] = framework
        return framework

    def complete_framework(self, framework: Framework) -> None:
        self.frameworks.pop(framework.id, None)
        self.completed_frameworks[framework.id] = framework
        while len(self.completed_frameworks) > self.max_completed_frameworks:
            self.completed_frameworks.popitem(last=False)
