"""Scheduler calls: what the master does with each v1 ``Call`` from a framework.

A SUBSCRIBE is answered SUBSCRIBED and at once a HEARTBEAT, as Mesos does; later
HEARTBEATs come on the master's tick (:meth:`Master.tick`). The framework's life
(subscribed, failing over, inactive, torn down) is its :mod:`.framework_fsm` machine; an
ACCEPT's or DECLINE's offers end through the :mod:`.offer_fsm` machine; an ACCEPT's
operations are carried out in :mod:`.offer_operations` (tasks launch in :mod:`.launch`,
reservations and volumes in :mod:`.operations`, feedback in :mod:`.operation_status`);
reconciliation is answered in :mod:`.reconciliation`.

Validation errors in a call answer 400 before anything changes. Errors in a task inside
an ACCEPT do not fail the call: that task gets ``TASK_ERROR`` (as in Mesos) and the
other tasks launch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mesonb.allocator.snapshot import Filter
from mesonb.protocol.agent import (
    AcknowledgeUpdate,
    AgentFrameworkMessage,
    KillTask,
    MasterCommand,
    MasterCommandType,
    ShutdownExecutor,
    UpdateFrameworkInfo,
)
from mesonb.protocol.errors import BadRequest, Forbidden
from mesonb.protocol.mesos import FrameworkInfo, TaskInfo
from mesonb.protocol.reservations import Portion
from mesonb.protocol.resources import Resources
from mesonb.protocol.roles import check_roles
from mesonb.protocol.scheduler import (
    Call,
    CallType,
    Error,
    Event,
    EventType,
    ReconcileTask,
    Subscribed,
    heartbeat,
)
from mesonb.protocol.states import Reason, TaskState

from .book import Agent, AgentState, Framework
from .framework_fsm import EndStream, Refuse, StreamClosed, Subscribe
from .launch import Launcher
from .metrics_framework import (
    CALL_KEYS,
    OFFERS_ACCEPTED,
    OFFERS_DECLINED,
    OPERATION_KEYS,
    count_event,
)
from .offer_fsm import Accept, Decline
from .offer_operations import OfferOperations
from .reconciliation import Reconciler
from .services import MasterServices
from .views import framework_json

log = logging.getLogger(__name__)
MAX_REFUSE_SECONDS = 365 * 24 * 3600.0
Send = Callable[[dict[str, Any]], None]
Close = Callable[[str | None], None]


def validate_roles(info: FrameworkInfo) -> None:
    check_roles(info.role_list)
    if info.roles and info.role:
        raise BadRequest("'FrameworkInfo.role' and 'FrameworkInfo.roles' are exclusive")


class SchedulerCalls:
    """Carries out scheduler calls on the master's book."""

    def __init__(self, master: MasterServices) -> None:
        self.master = master
        self.book = master.book
        self.out = master.out
        self.clock = master.clock
        self.counters = master.counters
        self.config = master.config
        self.offers = master.offer_lifecycle
        self.launcher = Launcher(master.book, master.out, master.clock, master.counters,
                                 lambda: master.acls)
        self.reconciler = Reconciler(master.book, master.out, master.clock,
                                     master.recovered_agents)
        self.operations = OfferOperations(master, self.launcher, master.operation_statuses)

    # -- subscription ------------------------------------------------------------------
    def subscribe(self, call: Call, stream_id: str, send: Send, close: Close) -> Framework | None:
        """Register or re-register a framework on a new event stream."""
        assert call.subscribe is not None
        info = call.subscribe.framework_info
        validate_roles(info)
        if call.framework_id and info.id and call.framework_id != info.id:
            raise BadRequest("'framework_id' differs from 'subscribe.framework_info.id'")
        framework_id = info.id or call.framework_id
        now = self.clock.time()
        framework = None
        if framework_id:
            framework = (self.book.frameworks.get(framework_id)
                         or self.book.completed_frameworks.get(framework_id))
        added = framework is None
        if framework is None:
            framework_id = framework_id or self.master.new_id("framework")
            info.id = framework_id
            framework = Framework(framework_id, info, registered_time=now)
        for action in framework.lifecycle.handle(Subscribe(stream_id)):
            if isinstance(action, Refuse):
                send(_error(action.message))
                close(None)
                return None
            assert isinstance(action, EndStream)
            old_send, old_close = framework.send, framework.close
            framework.send = framework.close = None
            if old_send is not None:
                old_send(_error(action.message))
            if old_close is not None:
                old_close(action.message)
        if added:
            self.book.add_framework(framework)
            log.info("framework %s (%s) subscribed", framework_id, info.name)
        else:
            info.id = framework_id
            info.user = framework.info.user
            info.checkpoint = framework.info.checkpoint
            framework.info = info
            framework.reregistered_time = now
            log.info("framework %s (%s) re-subscribed", framework_id, info.name)
        framework.send, framework.close = send, close
        framework.suppressed_roles = set(call.subscribe.suppressed_roles or ())
        framework.metrics[CALL_KEYS[CallType.SUBSCRIBE]] += 1
        self.counters["messages_register_framework" if added
                      else "messages_reregister_framework"] += 1
        self.master.persist_framework(framework)
        if added:
            self.out.emit({"type": "FRAMEWORK_ADDED", "framework_added": {
                "framework": framework_json(framework, self.book)}})
        else:
            self.out.emit_framework_updated(framework)
        send(
            Event(
                type=EventType.SUBSCRIBED,
                subscribed=Subscribed(
                    framework_id=framework.id,
                    heartbeat_interval_seconds=self.config.heartbeat_interval,
                    master_info=self.master.info(),
                ),
            ).to_json()
        )
        send(_HEARTBEAT)  # as Mesos's Heartbeater, which beats once as soon as it starts
        count_event(framework.metrics, _SUBSCRIBED_EVENT)
        count_event(framework.metrics, _HEARTBEAT)
        self._allocate_everywhere()
        return framework

    def disconnected(self, framework: Framework, stream_id: str) -> None:
        """The SUBSCRIBE stream closed. Start the failover timeout."""
        timeout = framework.info.failover_timeout or 0.0
        closed = StreamClosed(stream_id, self.clock.monotonic(), timeout)
        actions = framework.lifecycle.handle(closed)
        if not actions:
            return  # an older stream, already replaced
        framework.send = framework.close = None
        framework.unregistered_time = self.clock.time()
        log.info("framework %s disconnected; failover timeout %.1fs", framework.id, timeout)
        self.master.carry_out_framework(framework, actions)

    # -- dispatch ----------------------------------------------------------------------
    def handle(self, call: Call, stream_id: str | None) -> dict[str, Any] | None:
        """Carry out a non-SUBSCRIBE call. Returns a body for synchronous calls."""
        if not call.framework_id:
            raise BadRequest("Expecting 'framework_id' to be present")
        framework = self.book.frameworks.get(call.framework_id)
        if framework is None:
            raise BadRequest("Framework cannot be found")
        if not framework.connected:
            raise Forbidden("Framework is not subscribed")
        if stream_id is None:
            raise BadRequest("All non-subscribe calls should include the 'Mesos-Stream-Id' header")
        if stream_id != framework.stream_id:
            raise BadRequest(
                f"The stream ID '{stream_id}' included in this request didn't match the stream"
                f" ID currently associated with framework ID {framework.id}"
            )
        name = _HANDLERS.get(call.type)
        self.counters[_COUNTERS[call.type]] += 1
        framework.metrics[CALL_KEYS[call.type]] += 1
        if name is None:
            return None  # inverse offers / operation feedback: accepted, nothing to do
        return getattr(self, name)(framework, call)

    # -- offers --------------------------------------------------------------------------
    def _accept(self, framework: Framework, call: Call) -> None:
        accept = call.accept
        assert accept is not None
        operations = accept.operations or []
        self.operations.check(framework, accept.offer_ids, operations)  # 400: nothing done
        portion = Portion()
        for offer_id in accept.offer_ids:  # the reserved part, read before the offers end
            offer = self.book.offers.get(offer_id)
            if offer is not None and offer.portion and offer.framework_id == framework.id:
                portion = portion + offer.portion
        agent, pool, role, invalid = self._take_offers(Accept(framework.id, accept.offer_ids))
        if invalid is not None:
            log.warning("ACCEPT from %s with invalid offers: %s", framework.id, invalid)
            self.operations.drop(framework, operations, agent.id if agent else None, invalid)
            for task in _tasks_of(operations):
                self.launcher.task_error(framework, task, invalid, Reason.REASON_INVALID_OFFERS,
                                         TaskState.TASK_DROPPED)
            return
        assert agent is not None
        counted = framework.metrics
        counted[OFFERS_ACCEPTED] += len(accept.offer_ids)
        for op in operations:
            counted[OPERATION_KEYS.get(op.type, "operations/unknown")] += 1
        pool = self.operations.carry_out(framework, agent, role, pool, portion, operations)
        self._filter(framework, agent, pool, accept.filters)

    def _acknowledge_operation_status(self, framework: Framework, call: Call) -> None:
        self.master.operation_statuses.acknowledge(framework.id,
                                                   call.acknowledge_operation_status)

    def _reconcile_operations(self, framework: Framework, call: Call) -> None:
        for event in self.master.operation_statuses.reconcile(framework.id,
                                                              call.reconcile_operations):
            self.out.to_framework(framework, event)

    def _decline(self, framework: Framework, call: Call) -> None:
        decline = call.decline
        assert decline is not None
        agent, pool, _role, _invalid = self._take_offers(Decline(framework.id, decline.offer_ids))
        if agent is not None:
            framework.metrics[OFFERS_DECLINED] += len(decline.offer_ids)
            self._filter(framework, agent, pool, decline.filters)

    def _accept_inverse_offers(self, framework: Framework, call: Call) -> None:
        ids, refuse_seconds = _inverse_offer_answer(call)
        self.master.maintenance.answer(framework, ids, True, refuse_seconds)

    def _decline_inverse_offers(self, framework: Framework, call: Call) -> None:
        ids, refuse_seconds = _inverse_offer_answer(call)
        self.master.maintenance.answer(framework, ids, False, refuse_seconds)

    def _take_offers(
        self, event: Accept | Decline
    ) -> tuple[Agent | None, Resources, str, str | None]:
        """End the offers; return their agent, pooled resources, role and any problem."""
        pooled = self.master.carry_out_offers(self.offers.handle(event))
        assert pooled is not None
        agent = self.book.agents.get(pooled.agent_id) if pooled.agent_id is not None else None
        problem = pooled.problem
        if agent is not None and agent.state is not AgentState.REGISTERED:
            problem = problem or f"Agent {agent.id} is not reachable"
        return agent, pooled.resources, pooled.role, problem

    def _filter(self, framework: Framework, agent: Agent, unused: Resources, filters: Any) -> None:
        refuse = 5.0 if filters is None else filters.refuse_seconds
        refuse = min(max(refuse, 0.0), MAX_REFUSE_SECONDS)
        if refuse > 0 and unused:
            available = agent.available
            if unused == available:  # the usual case: then the allocator compares identity
                unused = available
            framework.filters[agent.id] = Filter(self.clock.monotonic() + refuse, unused)

    # -- offer flow control --------------------------------------------------------------
    def _revive(self, framework: Framework, call: Call) -> None:
        roles = set(call.revive.roles or ()) if call.revive else set()
        framework.suppressed_roles -= roles or set(framework.suppressed_roles)
        framework.filters.clear()
        self._allocate_everywhere()

    def _suppress(self, framework: Framework, call: Call) -> None:
        roles = set(call.suppress.roles or ()) if call.suppress else set()
        framework.suppressed_roles |= roles or set(framework.roles)

    def _allocate_everywhere(self) -> None:
        for agent_id, agent in self.book.agents.items():
            if agent.active and agent.available:
                self.master.resources_changed(agent_id)

    # -- tasks ---------------------------------------------------------------------------
    def _kill(self, framework: Framework, call: Call) -> None:
        kill = call.kill
        assert kill is not None
        task = self.book.find_task(framework.id, kill.task_id)
        if task is None:
            self.reconciler.reconcile_one(framework, ReconcileTask(task_id=kill.task_id,
                                                         agent_id=kill.agent_id))
            return
        agent = self.book.agents.get(task.agent_id)
        if agent is not None:
            self.out.to_agent(
                agent,
                MasterCommand(
                    type=MasterCommandType.KILL_TASK,
                    kill_task=KillTask(framework_id=framework.id, task_id=task.id,
                                       kill_policy=kill.kill_policy or task.info.kill_policy),
                ),
            )

    def _shutdown(self, framework: Framework, call: Call) -> None:
        assert call.shutdown is not None
        agent = self.book.agents.get(call.shutdown.agent_id)
        if agent is not None:
            self.out.to_agent(agent, MasterCommand(
                type=MasterCommandType.SHUTDOWN_EXECUTOR,
                shutdown_executor=ShutdownExecutor(framework_id=framework.id,
                                                   executor_id=call.shutdown.executor_id)))

    def _acknowledge(self, framework: Framework, call: Call) -> None:
        ack = call.acknowledge
        assert ack is not None
        if len(ack.uuid) != 16:
            raise BadRequest("'acknowledge.uuid' is not a valid UUID (16 bytes, Base64)")
        agent = self.book.agents.get(ack.agent_id)
        if agent is None:
            log.info("ack for task %s on unknown agent %s dropped", ack.task_id, ack.agent_id)
            return
        task = self.book.find_task(framework.id, ack.task_id)
        if task is not None and task.status_update_uuid == ack.uuid:
            task.status_update_uuid = None
        elif task is None:
            self.reconciler.acknowledged_terminal(framework, ack.task_id, ack.uuid)
        self.counters["valid_status_update_acknowledgements"] += 1
        self.out.to_agent(agent, MasterCommand(
            type=MasterCommandType.ACKNOWLEDGE,
            acknowledge=AcknowledgeUpdate(framework_id=framework.id, task_id=ack.task_id,
                                          uuid=ack.uuid)))

    def _reconcile(self, framework: Framework, call: Call) -> None:
        self.reconciler.reconcile(framework, call.reconcile.tasks if call.reconcile else None)

    def _reconcile_one(self, framework: Framework, item: ReconcileTask) -> None:
        self.reconciler.reconcile_one(framework, item)

    # -- misc ----------------------------------------------------------------------------
    def _message(self, framework: Framework, call: Call) -> None:
        msg = call.message
        assert msg is not None
        agent = self.book.agents.get(msg.agent_id)
        if agent is None:
            raise BadRequest(f"Agent {msg.agent_id} is not known")
        self.out.to_agent(agent, MasterCommand(
            type=MasterCommandType.FRAMEWORK_MESSAGE,
            framework_message=AgentFrameworkMessage(framework_id=framework.id,
                                                    executor_id=msg.executor_id, data=msg.data)))

    def _request(self, framework: Framework, call: Call) -> None:
        """REQUEST is a hint the built-in allocator ignores, as Mesos's does."""

    def _teardown(self, framework: Framework, call: Call) -> None:
        self.master.remove_framework(framework, "TEARDOWN from the framework")

    def _update_framework(self, framework: Framework, call: Call) -> dict[str, Any]:
        update = call.update_framework
        assert update is not None
        info = update.framework_info
        validate_roles(info)
        if info.id and info.id != framework.id:
            raise BadRequest("'framework_info.id' does not match 'framework_id'")
        if (info.principal or None) != (framework.info.principal or None):
            raise BadRequest("Updating 'FrameworkInfo.principal' is unsupported")
        info.id = framework.id
        info.user = framework.info.user
        info.checkpoint = framework.info.checkpoint
        framework.info = info
        self.master.persist_framework(framework)
        framework.suppressed_roles = set(update.suppressed_roles or ())
        self.out.emit_framework_updated(framework)
        for agent in self.book.agents.values():
            if framework.id in agent.executors:
                self.out.to_agent(agent, MasterCommand(
                    type=MasterCommandType.UPDATE_FRAMEWORK,
                    update_framework=UpdateFrameworkInfo(framework_info=info)))
        self._allocate_everywhere()
        return {}


_COUNTERS = {t: f"messages_{t.value.lower()}" for t in CallType}
_HANDLERS = {
    t: f"_{t.value.lower()}"
    for t in CallType
    if hasattr(SchedulerCalls, f"_{t.value.lower()}")
}


_HEARTBEAT = heartbeat().to_json()
_SUBSCRIBED_EVENT = {"type": EventType.SUBSCRIBED.value}  # what count_event reads of it


def _error(message: str) -> dict[str, Any]:
    return Event(type=EventType.ERROR, error=Error(message=message)).to_json()


def _tasks_of(operations: list[Any]) -> list[TaskInfo]:
    tasks: list[TaskInfo] = []
    for op in operations:
        if op.launch is not None:
            tasks.extend(op.launch.task_infos)
        elif op.launch_group is not None:
            tasks.extend(op.launch_group.task_group.tasks)
    return tasks


def _inverse_offer_answer(call: Call) -> tuple[list[str], float]:
    """The ``inverse_offer_ids`` and ``filters.refuse_seconds`` (5 s by default) of
    ACCEPT_INVERSE_OFFERS / DECLINE_INVERSE_OFFERS."""
    name = call.type.value.lower()
    body = call.extra.get(name)
    ids = body.get("inverse_offer_ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(
            isinstance(i, dict) and isinstance(i.get("value"), str) for i in ids):
        raise BadRequest(f"Expecting '{name}.inverse_offer_ids' to be a list of OfferIDs")
    assert isinstance(body, dict)
    filters = body.get("filters") or {}
    refuse = filters.get("refuse_seconds", 5.0) if isinstance(filters, dict) else None
    if (isinstance(refuse, bool) or not isinstance(refuse, (int, float))
            or not 0 <= refuse < float("inf")):
        raise BadRequest(f"Expecting '{name}.filters.refuse_seconds' to be a non-negative "
                         "number")
    return [i["value"] for i in ids], float(refuse)
