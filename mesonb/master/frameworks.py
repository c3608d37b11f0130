"""Scheduler calls: what the master does with each v1 ``Call`` from a framework.

A SUBSCRIBE is answered SUBSCRIBED and at once a HEARTBEAT, as Mesos does; later
HEARTBEATs come on the master's tick (:meth:`Master.tick`).

Framework life cycle (as the master sees it)::

    SUBSCRIBE ──► connected ──(stream closes)──► disconnected ──(failover_timeout)──► removed
        ▲             │  ▲                           │                                   ▲
        │             │  └────── SUBSCRIBE(id) ──────┘                                   │
        │             └──────────────────────── TEARDOWN ────────────────────────────────┘
        └── a second SUBSCRIBE for the same id takes over; the old stream gets ERROR.

Validation errors in a call answer 400 before anything changes. Errors in a task inside
an ACCEPT do not fail the call: that task gets ``TASK_ERROR`` (as in Mesos) and the
other tasks launch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mesonb.allocator.snapshot import Filter
from mesonb.protocol.agent import (
    AcknowledgeUpdate,
    AgentFrameworkMessage,
    KillTask,
    MasterCommand,
    MasterCommandType,
    RunTask,
    RunTaskGroup,
    ShutdownExecutor,
    UpdateFrameworkInfo,
)
from mesonb.protocol.errors import BadRequest, Forbidden
from mesonb.protocol.mesos import ExecutorInfo, FrameworkInfo, TaskInfo
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

from .book import Agent, AgentState, Framework, Task
from .framework_fsm import EndStream, Refuse, StreamClosed, Subscribe
from .offer_fsm import Accept, Decline
from .updates import master_status, reconciliation_status
from .views import framework_json, task_json

if TYPE_CHECKING:
    from .master import Master

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

    def __init__(self, master: Master) -> None:
        self.master = master
        self.book = master.book

    # -- subscription ------------------------------------------------------------------
    def subscribe(self, call: Call, stream_id: str, send: Send, close: Close) -> Framework | None:
        """Register or re-register a framework on a new event stream."""
        assert call.subscribe is not None
        info = call.subscribe.framework_info
        validate_roles(info)
        if call.framework_id and info.id and call.framework_id != info.id:
            raise BadRequest("'framework_id' differs from 'subscribe.framework_info.id'")
        framework_id = info.id or call.framework_id
        now = self.master.clock.time()
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
        self.master.persist_framework(framework)
        if added:
            self.master.emit({"type": "FRAMEWORK_ADDED", "framework_added": {
                "framework": framework_json(framework, self.book)}})
        else:
            self.master.emit_framework_updated(framework)
        send(
            Event(
                type=EventType.SUBSCRIBED,
                subscribed=Subscribed(
                    framework_id=framework.id,
                    heartbeat_interval_seconds=self.master.config.heartbeat_interval,
                    master_info=self.master.info(),
                ),
            ).to_json()
        )
        send(_HEARTBEAT)  # as Mesos's Heartbeater, which beats once as soon as it starts
        self._allocate_everywhere()
        return framework

    def disconnected(self, framework: Framework, stream_id: str) -> None:
        """The SUBSCRIBE stream closed. Start the failover timeout."""
        timeout = framework.info.failover_timeout or 0.0
        closed = StreamClosed(stream_id, self.master.clock.monotonic(), timeout)
        actions = framework.lifecycle.handle(closed)
        if not actions:
            return  # an older stream, already replaced
        framework.send = framework.close = None
        framework.unregistered_time = self.master.clock.time()
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
        self.master.counters[_COUNTERS[call.type]] += 1
        if name is None:
            return None  # inverse offers / operation feedback: accepted, nothing to do
        return getattr(self, name)(framework, call)

    # -- offers --------------------------------------------------------------------------
    def _accept(self, framework: Framework, call: Call) -> None:
        accept = call.accept
        assert accept is not None
        operations = accept.operations or []
        agent, pool, role, invalid = self._take_offers(Accept(framework.id, accept.offer_ids))
        if invalid is not None:
            log.warning("ACCEPT from %s with invalid offers: %s", framework.id, invalid)
            for task in _tasks_of(operations):
                state = TaskState.TASK_DROPPED
                self._task_error(framework, task, invalid, Reason.REASON_INVALID_OFFERS, state)
            return
        assert agent is not None
        for op in operations:
            if op.launch is not None:
                for task in op.launch.task_infos:
                    pool = self._launch(framework, agent, role, task, None, pool)
            elif op.launch_group is not None:
                pool = self._launch_group(framework, agent, role, op.launch_group, pool)
            else:
                log.warning("framework %s: operation %s is not supported", framework.id, op.type)
                self.master.counters["unsupported_operations"] += 1
        self._filter(framework, agent, pool, accept.filters)

    def _decline(self, framework: Framework, call: Call) -> None:
        decline = call.decline
        assert decline is not None
        agent, pool, _role, _invalid = self._take_offers(Decline(framework.id, decline.offer_ids))
        if agent is not None:
            self._filter(framework, agent, pool, decline.filters)

    def _take_offers(
        self, event: Accept | Decline
    ) -> tuple[Agent | None, Resources, str, str | None]:
        """End the offers; return their agent, pooled resources, role and any problem."""
        pooled = self.master.carry_out_offers(self.master.offer_lifecycle.handle(event))
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
            framework.filters[agent.id] = Filter(self.master.clock.monotonic() + refuse, unused)

    # -- launching -----------------------------------------------------------------------
    def _check_task(
        self, framework: Framework, agent: Agent, task: TaskInfo, pool: Resources
    ) -> tuple[Resources, ExecutorInfo | None, bool]:
        """Validate one task against the offer pool; raise BadRequest with the reason."""
        if task.task_id in framework.tasks or task.task_id in framework.unreachable_tasks:
            raise BadRequest(f"Task has duplicate ID: {task.task_id}")
        if task.agent_id != agent.id:
            raise BadRequest(f"Task uses invalid agent: {task.agent_id} (offer is for {agent.id})")
        if (task.command is None) == (task.executor is None):
            raise BadRequest(
                "Task should have at least one (but not both) of CommandInfo or ExecutorInfo"
            )
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

    def _launch(
        self,
        framework: Framework,
        agent: Agent,
        role: str,
        task: TaskInfo,
        group_executor: ExecutorInfo | None,
        pool: Resources,
    ) -> Resources:
        try:
            resources, new_executor, _ = self._check_task(framework, agent, task, pool)
        except BadRequest as exc:
            self._task_error(framework, task, exc.message, Reason.REASON_TASK_INVALID)
            return pool
        pool = pool - resources
        if new_executor is not None:
            pool = pool - Resources.from_json(new_executor.resources)
            new_executor.framework_id = framework.id
            self.book.add_executor(agent, framework, new_executor)
        self._add_task(framework, agent, role, task, resources)
        self.master.send_to_agent(
            agent,
            MasterCommand(
                type=MasterCommandType.RUN_TASK,
                run_task=RunTask(framework_info=framework.info, task=task, executor=task.executor),
            ),
        )
        return pool

    def _launch_group(
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
                needed = needed + self._check_task(framework, agent, task, pool)[0]
            known = agent.executors.get(framework.id, {}).get(executor.executor_id)
            if known is None:
                needed = needed + Resources.from_json(executor.resources, "executor.resources")
            if not pool.contains(needed):
                raise BadRequest(f"Task group uses more resources {needed} than available {pool}")
        except BadRequest as exc:
            for task in tasks:
                self._task_error(framework, task, exc.message, Reason.REASON_TASK_GROUP_INVALID)
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
        self.master.send_to_agent(
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
        self.master.counters["tasks_launched"] += 1
        if self.master.observers:
            self.master.emit({"type": "TASK_ADDED", "task_added": {"task": task_json(task)}})

    def _task_error(
        self,
        framework: Framework,
        task: TaskInfo,
        message: str,
        reason: Reason,
        state: TaskState = TaskState.TASK_ERROR,
    ) -> None:
        log.info("task %s of framework %s: %s %s", task.task_id, framework.id, state, message)
        status = master_status(task.task_id, state, self.master.clock.time(), reason=reason,
                               message=message, agent_id=task.agent_id)
        self.master.send_status(framework, status)
        self.master.counters["invalid_tasks"] += 1

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
            self._reconcile_one(framework, ReconcileTask(task_id=kill.task_id,
                                                         agent_id=kill.agent_id))
            return
        agent = self.book.agents.get(task.agent_id)
        if agent is not None:
            self.master.send_to_agent(
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
            self.master.send_to_agent(agent, MasterCommand(
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
            self._acknowledged_terminal(framework, ack.task_id, ack.uuid)
        self.master.counters["valid_status_update_acknowledgements"] += 1
        self.master.send_to_agent(agent, MasterCommand(
            type=MasterCommandType.ACKNOWLEDGE,
            acknowledge=AcknowledgeUpdate(framework_id=framework.id, task_id=ack.task_id,
                                          uuid=ack.uuid)))

    @staticmethod
    def _acknowledged_terminal(framework: Framework, task_id: str, uuid: bytes) -> None:
        """An ACKNOWLEDGE for a task that ended: once its terminal update is acknowledged
        the master forgets it, as Mesos's does (``removeTask`` on that acknowledgement).

        A task that ended while the agent was still retrying an older update (the update
        carried ``latest_state``) waits for the next acknowledgement: the master does not
        follow the updates of an ended task, so that one is taken as the terminal one."""
        task = framework.unacknowledged.get(task_id)
        if task is None:
            return
        state = task.status_update_state
        if uuid != task.status_update_uuid or (state is not None and state.terminal):
            del framework.unacknowledged[task_id]
        else:
            task.status_update_uuid = None  # the older update; the terminal one comes next

    def _known_tasks(self, framework: Framework) -> list[Task]:
        """What Mesos's master has in ``Framework::tasks``: the live tasks on reachable
        agents and the ended ones whose terminal update is not acknowledged yet. Tasks on
        unreachable agents are not among them; neither are acknowledged terminal ones."""
        ended = [t for t in list(framework.unacknowledged.values()) if self._still_known(t)]
        return [*framework.tasks.values(), *ended]

    def _known_task(self, framework: Framework, task_id: str) -> Task | None:
        task = framework.tasks.get(task_id)
        if task is None:
            task = framework.unacknowledged.get(task_id)
            if task is not None and not self._still_known(task):
                task = None
        return task

    def _still_known(self, task: Task) -> bool:
        """An ended, unacknowledged task stays known while its agent is registered (Mesos
        drops it with the agent when that is removed or becomes unreachable)."""
        agent = self.book.agents.get(task.agent_id)
        if agent is not None and agent.state is not AgentState.UNREACHABLE:
            return True
        framework = self.book.frameworks.get(task.framework_id)
        if framework is not None:
            framework.unacknowledged.pop(task.id, None)
        return False

    def _reconcile(self, framework: Framework, call: Call) -> None:
        """Mesos's ``Master::reconcile`` (src/master/master.cpp): implicit reconciliation
        answers every known task (see :meth:`_known_tasks`), explicit the six cases."""
        tasks = call.reconcile.tasks if call.reconcile else None
        now = self.master.clock.time()
        if not tasks:
            for task in self._known_tasks(framework):
                self.master.send_status(framework, reconciliation_status(task, now))
            return
        for item in tasks:
            self._reconcile_one(framework, item)

    def _reconcile_one(self, framework: Framework, item: ReconcileTask) -> None:
        """Mesos's explicit reconciliation cases (reference §4): (1) a known task (live, or
        ended and not acknowledged): its latest state; otherwise by what the master knows
        of the agent. A task that ended and was acknowledged is unknown, as in Mesos."""
        now = self.master.clock.time()
        task = self._known_task(framework, item.task_id)
        if task is not None:
            self.master.send_status(framework, reconciliation_status(task, now))
            return
        recovered = self.master.recovered_agents
        if item.agent_id in recovered or (item.agent_id is None and recovered):
            return  # case 2: the agent may still re-register after a failover; no answer
        agent = self.book.agents.get(item.agent_id) if item.agent_id else None
        unreachable_time = None
        if item.agent_id is None:
            state = TaskState.TASK_UNKNOWN
        elif item.agent_id in self.book.gone_agents:
            state = TaskState.TASK_GONE_BY_OPERATOR
        elif agent is None:
            state = TaskState.TASK_UNKNOWN
        elif agent.state is AgentState.UNREACHABLE:
            state, unreachable_time = TaskState.TASK_UNREACHABLE, agent.unreachable_time
        else:
            state = TaskState.TASK_GONE
        status = master_status(item.task_id, state, now, reason=Reason.REASON_RECONCILIATION,
                               agent_id=item.agent_id, unreachable_time=unreachable_time)
        self.master.send_status(framework, status)

    # -- misc ----------------------------------------------------------------------------
    def _message(self, framework: Framework, call: Call) -> None:
        msg = call.message
        assert msg is not None
        agent = self.book.agents.get(msg.agent_id)
        if agent is None:
            raise BadRequest(f"Agent {msg.agent_id} is not known")
        self.master.send_to_agent(agent, MasterCommand(
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
        self.master.emit_framework_updated(framework)
        for agent in self.book.agents.values():
            if framework.id in agent.executors:
                self.master.send_to_agent(agent, MasterCommand(
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
