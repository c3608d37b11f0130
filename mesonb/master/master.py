"""The master: owns the book, runs the allocator, and carries out what calls decide.

One tornado IOLoop thread does everything; handlers call into the master synchronously,
so there are no locks. Scheduler calls are handled in :mod:`.frameworks`, agent
messages in :mod:`.agents`; they change the ``Book`` and send through the :mod:`.outbox`.
The lifecycles are state machines the master owns and whose actions it carries out:
each framework's (:mod:`.framework_fsm`) and agent's (:mod:`.agent_fsm`) on its record,
and the offers' (:mod:`.offer_fsm`) in :attr:`Master.offer_lifecycle`.

Timers (all driven by :meth:`tick`, which the daemon calls every ``tick_interval``):

* allocation every ``allocation_interval`` (1 s), plus event-triggered runs for the
  agents whose resources changed (batched into one run per loop iteration);
* HEARTBEAT to each subscribed framework every ``heartbeat_interval`` (15 s);
* PING to each agent every ``agent_ping_timeout`` (15 s); ``max_agent_ping_timeouts`` (5)
  missed PONGs make the agent unreachable;
* framework failover timeouts and the optional offer timeout;
* after a failover, agents recovered from the registry that have not re-registered
  within ``agent_reregister_timeout`` (10 min) become unreachable.

With a :class:`~.registry.Registry` attached (``master.registry``), admitted, unreachable
and gone agents and the frameworks' FrameworkInfo are written through it, and a new leader
starts from :meth:`Master.recover`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import socket
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from mesonb.allocator.drf import allocate
from mesonb.allocator.snapshot import AgentView, Filter, FrameworkView, Snapshot
from mesonb.clock import REAL_CLOCK, Clock
from mesonb.config import VERSION, MasterConfig
from mesonb.protocol.agent import MasterCommand, MasterCommandType, ShutdownFramework
from mesonb.protocol.errors import Redirect, ServiceUnavailable
from mesonb.protocol.mesos import Address, MasterInfo
from mesonb.protocol.reservations import Portion
from mesonb.protocol.resources import Resources
from mesonb.protocol.scheduler import Event, EventType
from mesonb.protocol.scheduler import Rescind as RescindBody
from mesonb.protocol.states import Reason, TaskState
from mesonb.security.acls import PERMISSIVE, Acls

from . import framework_fsm, offer_fsm, operation_status, reservations, settings
from .agents import AgentMessages
from .book import Agent, Book, Framework, Offer, Task
from .drain import Drains
from .frameworks import SchedulerCalls
from .inverse_offers import MaintenanceService
from .metrics_framework import OFFERS_RESCINDED, OFFERS_SENT, count_event
from .outbox import Observer, Outbox
from .quota import Quotas
from .recovery import Recovery
from .registry import Registry, RegistryState, log_failure
from .updates import master_status, offers_event

log = logging.getLogger(__name__)


class Master:
    """The leading master's state and behaviour (no HTTP in here)."""

    def __init__(self, config: MasterConfig, clock: Clock = REAL_CLOCK) -> None:
        self.config = config
        self.clock = clock
        self.id = str(uuid.uuid4())
        self.book = Book(config.max_completed_tasks_per_framework, config.max_completed_frameworks)
        self.start_time = clock.time()
        self.elected_time: float | None = self.start_time
        self.hostname = config.hostname or (
            config.ip if config.ip not in ("0.0.0.0", "::") else socket.gethostname()
        )
        self.port = config.port
        self.counters: collections.Counter[str] = collections.Counter()
        self.role_weights: dict[str, float] = {}
        self._why_not: Any = None  # the last allocation run's WhyNot
        self.allocation_runs = 0
        self.allocation_ms: collections.deque[float] = collections.deque(maxlen=1000)
        # from a run's trigger (resources freed, the interval due) to its start
        self.allocation_latency_ms: collections.deque[float] = collections.deque(maxlen=1000)
        self._allocation_requested = 0.0
        self.observers: list[Observer] = []
        self.out = Outbox(self.book, self.counters, self.observers)
        self.leader: str | None = None  # "host:port" of another leader when standing by
        self.leading = True
        self.registry: Registry | None = None
        self.acls: Acls = PERMISSIVE  # the daemon gives its --acls
        self.operation_statuses = operation_status.OperationStatuses()
        # agent id -> AgentInfo JSON: in the registry, not re-registered since recovery
        self.recovery = Recovery(self.book, clock, config.agent_reregister_timeout,
                                 self.counters)
        self.recovered_agents = self.recovery.agents
        self._packed_ip: int | None = None
        self.offer_lifecycle = offer_fsm.OfferLifecycle(self.book.offers, config.offer_timeout)
        self.calls = SchedulerCalls(self)
        self.agents = AgentMessages(self)
        # quota, maintenance and drains (kept in the registry: settings.py)
        self.quotas = Quotas()
        self.maintenance = MaintenanceService(self)
        self.drains = Drains(self)
        self._ids = collections.Counter[str]()
        self._dirty_agents: set[str] = set()
        self._rng = random.Random()  # shuffles the agents of each allocation run
        self._schedule: Callable[[Callable[[], None]], None] | None = None
        self._allocation_pending = False
        now = clock.monotonic()
        self._next_allocation = now
        self._next_heartbeat = now + config.heartbeat_interval
        self._next_ping = now + config.agent_ping_timeout

    # -- identity ------------------------------------------------------------------
    @property
    def pid(self) -> str:
        return f"master@{self.hostname}:{self.port}"

    def info(self) -> MasterInfo:
        if self._packed_ip is None:
            self._packed_ip = _packed_ip(self.config.ip)
        return MasterInfo(
            id=self.id,
            ip=self._packed_ip,
            port=self.port,
            pid=self.pid,
            hostname=self.hostname,
            version=VERSION,
            address=Address(hostname=self.hostname, ip=self.config.ip, port=self.port),
        )

    def new_id(self, kind: str) -> str:
        """Ids in Mesos's shapes: ``<master>-0001`` frameworks, ``-S1`` agents, ``-O1`` offers."""
        self._ids[kind] += 1
        n = self._ids[kind]
        return f"{self.id}-{n:04d}" if kind == "framework" else f"{self.id}-{kind}{n}"

    def check_leader(self) -> None:
        """Raise Redirect (307) on a standby that knows the leader, 503 when none leads."""
        if self.leading:
            return
        if self.leader:
            raise Redirect(f"//{self.leader}", append_path=True)
        raise ServiceUnavailable("No leading master is elected yet; retry shortly")

    def attach(self, schedule: Callable[[Callable[[], None]], None]) -> None:
        """Give the master a way to run a callback on the next loop iteration."""
        self._schedule = schedule

    def schedule(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on the master's loop; callable from any thread once attached
        (``IOLoop.add_callback`` is thread-safe); runs it at once when not attached."""
        if self._schedule is None:
            fn(*args)
        else:
            self._schedule(lambda: fn(*args))

    # -- sending (see :mod:`.outbox`) ----------------------------------------------
    def emit(self, event: dict[str, Any]) -> None:
        """Hand an event to every operator API subscriber."""
        self.out.emit(event)

    def emit_framework_updated(self, framework: Framework) -> None:
        self.out.emit_framework_updated(framework)

    def emit_task_updated(self, task: Task, status: Any) -> None:
        self.out.emit_task_updated(task, status)

    def send_to_framework(self, framework: Framework, event: dict[str, Any]) -> bool:
        return self.out.to_framework(framework, event)

    def send_to_agent(self, agent: Agent, command: MasterCommand) -> bool:
        return self.out.to_agent(agent, command)

    def send_status(self, framework: Framework, status: Any) -> None:
        self.out.status(framework, status)

    @property
    def last_why_not(self) -> dict[str, Any]:
        """The last allocation run's why-not counters (``/mesonb/v1/allocation``)."""
        return self._why_not.to_json() if self._why_not is not None else {}

    # -- allocation ----------------------------------------------------------------
    @property
    def allocation_pending(self) -> bool:
        """An allocation run is due within the next two loop turns (resources changed)."""
        return self._allocation_pending

    def resources_changed(self, agent_id: str) -> None:
        """Resources on this agent became free: allocate them soon (batched)."""
        self._dirty_agents.add(agent_id)
        if not self._allocation_pending and self._schedule is not None:
            self._allocation_pending = True
            self._allocation_requested = self.clock.monotonic()
            self._schedule(self._allocate_next_turn)

    def _allocate_next_turn(self) -> None:
        """One loop turn later still: what this turn sent (a task's update, a launch) is
        delivered first, and the run takes in what else freed resources meanwhile."""
        assert self._schedule is not None
        self._schedule(self._run_dirty_allocation)

    def _run_dirty_allocation(self) -> None:
        self._allocation_pending = False
        self.allocation_latency_ms.append(
            (self.clock.monotonic() - self._allocation_requested) * 1000)
        dirty, self._dirty_agents = self._dirty_agents, set()
        if dirty:
            self.allocate(dirty)

    def allocate(self, agent_ids: Iterable[str] | None = None) -> int:
        """Run the allocator over some agents (all when None); returns offers made."""
        now = self.clock.monotonic()
        book = self.book
        if agent_ids is None:
            candidates: Iterable[Agent] = book.agents.values()
        else:
            candidates = (book.agents[a] for a in agent_ids if a in book.agents)
        agents = []
        free: dict[str, Portion] = {}  # agents with reservations: their free reserved part
        for agent in candidates:
            if not agent.active or agent.send is None:
                continue
            available = agent.available
            reserved: dict[str, Resources] = {}
            if agent.ledger:
                free[agent.id] = part = reservations.free_portion(agent, book.offers)
                available = reservations.unreserved_available(agent, part)
                reserved = reservations.free_by_role(part)
            if available or reserved:
                agents.append(AgentView(agent.id, agent.hostname, available, agent.total,
                                        agent.attributes, reserved))
        if agent_ids is not None:  # event-triggered: skip agents every framework refused
            agents = [a for a in agents if self._wanted(a, now)]
        if not agents:
            return 0
        frameworks = []
        eligible = 0
        for fw in book.frameworks.values():
            if fw.filters and agent_ids is None:  # full runs sweep expired filters
                expired = [a for a, f in fw.filters.items() if f.refuse_until <= now]
                for a in expired:
                    del fw.filters[a]
            if fw.active and fw.connected:
                eligible += 1
                suppressed = frozenset(fw.suppressed_roles)
            elif fw.used:
                # Offered nothing, but what it holds still counts toward its roles' shares.
                suppressed = frozenset(fw.roles)
            else:
                continue
            frameworks.append(
                FrameworkView(fw.id, fw.roles, fw.used + fw.offered, suppressed, fw.filters,
                              gpu_aware=fw.info.has_capability("GPU_RESOURCES"))
            )
        if not eligible:
            return 0
        started = self.clock.monotonic()
        limits = self.quotas.limits()
        unheld = reservations.unheld_by_role(book.agents.values(), book.offers, free) \
            if limits else {}
        result = allocate(Snapshot(agents, frameworks, book.total, self.role_weights,
                                   quota_limits=limits, unheld_reserved=unheld),
                          now, self._rng)
        self.allocation_runs += 1
        self.allocation_ms.append((self.clock.monotonic() - started) * 1000)
        self._why_not = result.why_not
        by_framework: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for decision in result.offers:
            agent = book.agents[decision.agent_id]
            offer = Offer(
                self.new_id("O"),
                decision.framework_id,
                decision.agent_id,
                decision.role,
                decision.resources,
                now,
            )
            if decision.reserved:
                offer.portion = reservations.portion_for(free[decision.agent_id], decision)
            book.add_offer(offer)
            self.offer_lifecycle.handle(offer_fsm.Made(offer))
            offer_json = offer.to_json(agent)
            if self.maintenance.schedule.windows:  # Offer.unavailability on draining machines
                self.maintenance.annotate(offer_json, agent)
            by_framework[offer.framework_id].append(offer_json)
        for framework_id, offers in by_framework.items():
            event = offers_event(offers)
            framework = book.frameworks[framework_id]
            if self.out.to_framework(framework, event):
                framework.metrics[OFFERS_SENT] += len(offers)
        return len(result.offers)

    def _wanted(self, view: AgentView, now: float) -> bool:
        """Could some framework be offered this agent now? False when every connected,
        unsuppressed framework has a refuse filter covering it (the usual case right after
        a framework declined the rest of an offer): the run would offer nothing."""
        for fw in self.book.frameworks.values():
            if not (fw.active and fw.connected) or (
                    fw.suppressed_roles and set(fw.roles) <= fw.suppressed_roles):
                continue  # (a framework always has a role: none suppressed, not all)
            flt = fw.filters.get(view.agent_id)
            if flt is None or view.reserved or not flt.applies(view.available, now):
                return True
        return False

    def rescind_offer(self, offer: Offer, *, notify: bool = True) -> None:
        """Take an offer back, telling its framework (RESCIND) and freeing its resources."""
        self.carry_out_offers(self.offer_lifecycle.handle(offer_fsm.Rescind(offer, notify)))

    def carry_out_offers(self, actions: list[offer_fsm.Action]) -> offer_fsm.Pooled | None:
        """Carry out what the offer machine decided; returns its Pooled, if any."""
        pooled = None
        for action in actions:
            if isinstance(action, offer_fsm.Withdraw):
                self.book.remove_offer(action.offer)
            elif isinstance(action, offer_fsm.Release):
                self.resources_changed(action.agent_id)
            elif isinstance(action, offer_fsm.TellRescinded):
                offer = action.offer
                framework = self.book.frameworks.get(offer.framework_id)
                if framework is not None:
                    event = Event(type=EventType.RESCIND, rescind=RescindBody(offer_id=offer.id))
                    if self.out.to_framework(framework, event.to_json()):
                        framework.metrics[OFFERS_RESCINDED] += 1
            elif isinstance(action, offer_fsm.Refuse):
                offer = action.offer
                framework = self.book.frameworks.get(offer.framework_id)
                if framework is not None:
                    refuse_until = self.clock.monotonic() + action.seconds
                    framework.filters[offer.agent_id] = Filter(refuse_until, offer.resources)
            else:
                pooled = action
        return pooled

    def rescind_agent_offers(self, agent: Agent) -> None:
        for offer_id in list(agent.offers):
            offer = self.book.offers.get(offer_id)
            if offer is not None:
                self.rescind_offer(offer)

    def rescind_framework_offers(self, framework: Framework, *, notify: bool = False) -> None:
        for offer in list(framework.offers.values()):
            self.rescind_offer(offer, notify=notify)

    # -- tasks ---------------------------------------------------------------------
    def terminate_task(self, task: Task, state: TaskState) -> None:
        """The task reached a terminal state: free its resources and re-offer them."""
        self.book.set_task_state(task, state)
        self.book.finish_task(task)
        self.resources_changed(task.agent_id)

    # -- frameworks ----------------------------------------------------------------
    def framework_event(self, framework: Framework, event: framework_fsm.Event) -> None:
        """Hand ``event`` to the framework's machine and carry out what it decides (the
        stream actions of a SUBSCRIBE are the scheduler API's, see :mod:`.frameworks`)."""
        self.carry_out_framework(framework, framework.lifecycle.handle(event))

    def carry_out_framework(self, framework: Framework,
                            actions: list[framework_fsm.Action]) -> None:
        for action in actions:
            if isinstance(action, framework_fsm.RescindOffers):
                self.rescind_framework_offers(framework, notify=False)
            elif isinstance(action, framework_fsm.Announce):
                self.out.emit_framework_updated(framework)
            elif isinstance(action, framework_fsm.Remove):
                self._tear_down(framework, action.reason)
            else:
                raise AssertionError(f"framework action {action!r} is the stream owner's")

    def remove_framework(self, framework: Framework, reason: str) -> None:
        """Tear a framework down (TEARDOWN): kill its tasks and forget its offers."""
        self.framework_event(framework, framework_fsm.Teardown(reason))

    def _tear_down(self, framework: Framework, reason: str) -> None:
        log.info("removing framework %s (%s): %s", framework.id, framework.name, reason)
        self.rescind_framework_offers(framework, notify=False)
        self.operation_statuses.forget_framework(framework.id)
        now = self.clock.time()
        agent_ids = {t.agent_id for t in framework.tasks.values()}
        agent_ids.update(t.agent_id for t in framework.unreachable_tasks.values())
        agent_ids.update(a.id for a in self.book.agents.values() if framework.id in a.executors)
        for agent_id in agent_ids:
            agent = self.book.agents.get(agent_id)
            if agent is None:
                continue
            self.out.to_agent(
                agent,
                MasterCommand(
                    type=MasterCommandType.SHUTDOWN_FRAMEWORK,
                    shutdown_framework=ShutdownFramework(framework_id=framework.id),
                ),
            )
            for executor_id in list(agent.executors.get(framework.id, {})):
                self.book.remove_executor(agent, framework.id, executor_id)
        for task in list(framework.tasks.values()) + list(framework.unreachable_tasks.values()):
            status = master_status(
                task.id,
                TaskState.TASK_KILLED,
                now,
                reason=Reason.REASON_FRAMEWORK_REMOVED,
                message="Framework removed",
                agent_id=task.agent_id,
            )
            task.record(status)
            self.terminate_task(task, TaskState.TASK_KILLED)
            self.out.emit_task_updated(task, status)
        framework.unregistered_time = now
        if framework.close is not None:
            framework.close(None)
        framework.send = framework.close = None
        self.book.complete_framework(framework)
        self.persist(self.registry and self.registry.remove_framework(framework.id),
                     f"remove framework {framework.id}")
        self.out.emit({"type": "FRAMEWORK_REMOVED", "framework_removed": {
            "framework_info": framework.info.to_json()}})

    # -- timers --------------------------------------------------------------------
    def tick(self) -> None:
        """Run the periodic work that is due (called every tick by the daemon)."""
        now = self.clock.monotonic()
        if now >= self._next_allocation:
            self.allocation_latency_ms.append((now - self._next_allocation) * 1000)
            self._next_allocation = now + self.config.allocation_interval
            self.allocate()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.config.heartbeat_interval
            heartbeat = Event(type=EventType.HEARTBEAT).to_json()
            for framework in self.book.frameworks.values():
                if framework.send is not None:
                    framework.send(heartbeat)
                    count_event(framework.metrics, heartbeat)
        if now >= self._next_ping:
            self._next_ping = now + self.config.agent_ping_timeout
            self.agents.ping_all(now)
        self._expire_frameworks(now)
        self.maintenance.tick()
        self.drains.tick()
        if self.recovery.deadline is not None and now >= self.recovery.deadline:
            for agent_id, info, when in self.recovery.expire():
                if self.registry is not None:
                    self.persist(self.registry.mark_unreachable(agent_id, info, when),
                                 f"agent {agent_id} unreachable")
        self.carry_out_offers(self.offer_lifecycle.handle(offer_fsm.Tick(now)))

    def _expire_frameworks(self, now: float) -> None:
        tick = framework_fsm.Tick(now)
        for framework in list(self.book.frameworks.values()):
            if framework.lifecycle.deadline is not None:
                self.framework_event(framework, tick)

    # -- registry ------------------------------------------------------------------
    async def durable(self) -> None:
        """Return once every registry write made so far is done: a change is answered
        then, as Mesos answers once its registrar committed, so a master killed right
        after loses nothing it acknowledged (the writes go in order)."""
        if self.registry is not None:
            await asyncio.wrap_future(self.registry.barrier())

    def persist(self, future: Any, what: str) -> None:
        """Log (only) a failed background registry write."""
        if future is not None:
            future.add_done_callback(log_failure(what))

    def persist_framework(self, framework: Framework) -> None:
        """Write the framework's FrameworkInfo to the registry (a no-op when unchanged)."""
        if self.registry is not None:
            self.persist(self.registry.add_framework(framework.id, framework.info.to_json()),
                         f"framework {framework.id}")

    def recover(self, state: RegistryState) -> None:
        """A new leader's starting point: the registry's agents and frameworks (see
        :class:`~.recovery.Recovery`)."""
        self.recovery.recover(state)
        settings.restore(self, state.settings)

    # -- figures for state and metrics ---------------------------------------------
    def task_count(self, state: TaskState) -> int:
        return self.book.task_counts.get(state, 0)


def _packed_ip(ip: str) -> int:
    """MasterInfo.ip: the IPv4 address packed little-endian, as Mesos writes it."""
    try:
        parts = [int(p) for p in socket.gethostbyname(ip).split(".")]
    except (OSError, ValueError):
        return 0
    return parts[0] | parts[1] << 8 | parts[2] << 16 | parts[3] << 24
