"""Agent messages: what the master does with each ``AgentCall`` from an agent.

Each agent's life (registering, admitted, disconnected, unreachable, draining, gone) is an
:class:`~.agent_fsm.AgentLifecycle` on its record; this module feeds it the events that
come from the agent's link, the ping timer and the registry, and carries out the actions
it decides. What a re-registering agent reports is adopted in :mod:`.reports`.

With a registry, an agent's admission is written before REGISTERED is sent (the agent
retries if the write fails). While that write is under way the agent is REGISTERING: it is
not offered, and what the master sends it (a kill, an acknowledgement) is held and follows
REGISTERED, because an agent drops every command that comes before REGISTERED. An
unreachable mark is written before frameworks hear of it (TASK_UNREACHABLE / TASK_LOST,
FAILURE), and written again at the next ping round if the write failed; removed/gone agents
are written in the background. Agents recovered from the registry after a failover wait in
``master.recovered_agents`` until they re-register.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from mesonb.protocol.agent import (
    AcknowledgeUpdate,
    AgentCall,
    AgentCallType,
    CheckpointResources,
    KillTask,
    MasterCommand,
    MasterCommandType,
    Notice,
    Register,
    Registered,
)
from mesonb.protocol.mesos import TaskStatus
from mesonb.protocol.resources import EMPTY, Resources
from mesonb.protocol.scheduler import Event, EventMessage, EventType, Failure
from mesonb.protocol.states import Reason, TaskState

from . import agent_fsm, reservations
from .book import Agent, AgentState, Task
from .drain_info import capped_kill_policy
from .reports import ReportAdoption
from .services import MasterServices
from .updates import master_status
from .views import agent_json

log = logging.getLogger(__name__)
Send = Callable[[Any], None]  # a MasterCommand, or its JSON


@dataclasses.dataclass(eq=False)
class Admission:
    """An agent whose admission is being written to the registry, and what the master
    sends it meanwhile (held until REGISTERED has gone first)."""

    agent: Agent
    send: Send  # the agent's link
    close: Callable[[], None]
    registered: list[Any]  # REGISTERED and what the registration decided
    new: bool  # a first registration: nothing else knows this agent id yet
    held: list[Any] = dataclasses.field(default_factory=list)

    def hold(self, message: Any) -> None:
        self.held.append(message)


class AgentMessages:
    """Carries out agent messages on the master's book."""

    def __init__(self, master: MasterServices) -> None:
        self.master = master
        self.book = master.book
        self.clock = master.clock
        self.counters = master.counters
        self.config = master.config
        self.out = master.out
        self._last_ping = self.clock.monotonic()
        self.admitting: dict[str, Admission] = {}  # agent id -> its admission under way
        # agent id -> statuses to tell frameworks once its unreachable mark is written
        self._unreachable: dict[str, list[tuple[Task, TaskStatus]]] = {}

    # -- links -----------------------------------------------------------------------
    def register(self, msg: Register, send: Send, close: Callable[[], None]) -> Agent | None:
        master, book = self.master, self.book
        now, mono = self.clock.time(), self.clock.monotonic()
        if msg.agent_id and msg.agent_id in book.gone_agents:
            send(_command(MasterCommandType.SHUTDOWN, shutdown=Notice(
                message=f"Agent {msg.agent_id} has been marked gone; start it with a new "
                        "work dir")).to_json())
            close()
            return None
        refusal = master.maintenance.refusal(msg.agent_info.hostname, msg.pid)
        if refusal is not None:  # its machine is DOWN for maintenance (inverse_offers.py)
            send(_command(MasterCommandType.SHUTDOWN, shutdown=Notice(message=refusal)).to_json())
            close()
            return None
        total = Resources.from_json(msg.agent_info.resources, "agent_info.resources")
        agent = book.agents.get(msg.agent_id) if msg.agent_id else None
        new = agent is None
        was_unreachable = agent is not None and agent.state is AgentState.UNREACHABLE
        if agent is None:
            agent_id = msg.agent_id or master.new_id("S")
            msg.agent_info.id = agent_id
            agent = Agent(agent_id, msg.agent_info, total, msg.version, registered_time=now)
            book.agents[agent_id] = agent
            if msg.agent_id:
                agent.reregistered_time = now
            book.total = book.total + total
            self.counters["slave_registrations"] += 1
            log.info("agent %s (%s) registered with %s", agent_id, agent.hostname, total)
        else:
            agent_id = agent.id
            self.admitting.pop(agent_id, None)  # one on an older link: this one replaces it
            self._unreachable.pop(agent_id, None)
            if was_unreachable:
                book.total = book.total + total
            else:
                book.total = book.total - agent.total + total
            msg.agent_info.id = agent_id
            agent.info, agent.total, agent.version = msg.agent_info, total, msg.version
            agent.reregistered_time = now
            self.counters["slave_reregistrations"] += 1
            log.info("agent %s (%s) re-registered", agent_id, agent.hostname)
        agent.attributes = {a.name: a.value() for a in msg.agent_info.attributes or ()}
        master.drains.adopt(agent)  # a deactivation or drain a new leader recovered
        agent.upid = msg.pid or agent.upid
        agent.unreachable_time = None
        recovered = master.recovered_agents.pop(agent_id, None)
        known = (agent.ledger.dynamic() if not new
                 else reservations.known_portion(recovered.get("resources"))
                 if recovered is not None else None)
        fix_checkpoint = reservations.adopt(agent, msg.agent_info.resources, known)
        msg.agent_info.resources = reservations.agent_resources_json(total, agent.ledger)
        after = (ReportAdoption(book, now, mono, self.out.status)
                 .adopt(agent, msg, was_unreachable) if msg.agent_id else [])
        registered = [_command(MasterCommandType.REGISTERED, registered=Registered(
            agent_id=agent_id, ping_interval_seconds=self.config.agent_ping_timeout,
            master_info=master.info())).to_json(), *after]
        if fix_checkpoint:
            registered.append(_command(
                MasterCommandType.CHECKPOINT_RESOURCES, checkpoint_resources=CheckpointResources(
                    resources=agent.ledger.to_json())).to_json())
        written = (master.registry.admit_agent(agent_id, msg.agent_info.to_json())
                   if master.registry is not None else None)
        admission = Admission(agent, send, close, registered, new)
        self._carry_out(agent, agent.lifecycle.handle(agent_fsm.Register(mono, written is None)),
                        admission)
        if written is not None:
            # Not offered, and nothing sent to it, until the admission is written.
            self.admitting[agent_id] = admission
            agent.send, agent.close = admission.hold, close
            written.add_done_callback(lambda f: master.schedule(self._admitted, admission, f))
        return agent

    def _admitted(self, admission: Admission, written: Any) -> None:
        """The registry write of an admission finished (on the IOLoop again)."""
        agent = admission.agent
        if self.admitting.get(agent.id) is not admission:
            return  # the link went away, or a newer registration replaced this one
        del self.admitting[agent.id]
        exc = written.exception()
        if exc is None:
            event: agent_fsm.Event = agent_fsm.Admitted()
        else:
            log.error("could not write agent %s to the registry: %r; closing its link",
                      agent.id, exc)
            self.counters["registrar_failures"] += 1
            event = agent_fsm.AdmissionFailed(admission.new)
        self._carry_out(agent, agent.lifecycle.handle(event), admission)

    def disconnected(self, agent: Agent, send: Send) -> None:
        """The agent's link closed: stop offering it and wait for it to come back."""
        admission = self.admitting.get(agent.id)
        if admission is not None and admission.send == send:
            del self.admitting[agent.id]  # it registers again on its next link
            log.info("agent %s (%s) disconnected before its admission was written", agent.id,
                     agent.hostname)
        elif agent.send != send:
            return  # an older link
        agent.send = agent.close = None
        actions = agent.lifecycle.handle(agent_fsm.LinkClosed())
        if actions:
            log.info("agent %s (%s) disconnected", agent.id, agent.hostname)
            self._carry_out(agent, actions)

    # -- draining ----------------------------------------------------------------------
    def drain(self, agent: Agent) -> None:
        """Stop offering the agent and kill its tasks, until :meth:`reactivate`."""
        self._carry_out(agent, agent.lifecycle.handle(agent_fsm.Drain()))

    def reactivate(self, agent: Agent) -> None:
        """Offer a drained agent again."""
        self._carry_out(agent, agent.lifecycle.handle(agent_fsm.Reactivate()))

    # -- carrying out the machine's actions ---------------------------------------------
    def _carry_out(self, agent: Agent, actions: list[agent_fsm.Action],
                   admission: Admission | None = None) -> None:
        for action in actions:
            if isinstance(action, agent_fsm.Ping):
                if agent.send is not None:
                    agent.send(_PING)
            elif isinstance(action, agent_fsm.RescindOffers):
                self.master.rescind_agent_offers(agent)
            elif isinstance(action, agent_fsm.CloseLink):
                close = agent.close
                agent.send = agent.close = None
                if close is not None:
                    close()
            elif isinstance(action, agent_fsm.Admit):
                assert admission is not None
                self._admit(agent, admission)
            elif isinstance(action, agent_fsm.Forget):
                if self.book.agents.get(agent.id) is agent:  # nobody knows this id
                    del self.book.agents[agent.id]
                    self.book.total = self.book.total - agent.total
            elif isinstance(action, agent_fsm.MarkUnreachable):
                self._mark_unreachable(agent)
            elif isinstance(action, agent_fsm.WriteUnreachable):
                self._write_unreachable(agent)
            elif isinstance(action, agent_fsm.TellUnreachable):
                self._tell_unreachable(agent, self._unreachable.pop(agent.id, []))
            elif isinstance(action, agent_fsm.KillTasks):
                for (framework_id, task_id), task in list(agent.tasks.items()):
                    self.out.to_agent(agent, _command(
                        MasterCommandType.KILL_TASK, kill_task=KillTask(
                            framework_id=framework_id, task_id=task_id,
                            kill_policy=capped_kill_policy(task.info.kill_policy,
                                                           agent.drain))))
            elif isinstance(action, agent_fsm.Reoffer):
                self.master.resources_changed(agent.id)
            else:
                assert isinstance(action, agent_fsm.RemoveAgent)
                self._remove(agent, action)

    def _admit(self, agent: Agent, admission: Admission) -> None:
        """REGISTERED (and what was held for it) goes out; the agent is offered from now."""
        agent.send, agent.close = admission.send, admission.close
        for message in [*admission.registered, *admission.held]:
            admission.send(message)
        if self.out.observers:
            self.out.emit({"type": "AGENT_ADDED",
                              "agent_added": {"agent": agent_json(agent)}})
        self.master.resources_changed(agent.id)

    # -- messages ----------------------------------------------------------------------
    def handle(self, agent: Agent, call: AgentCall) -> None:
        kind = call.type
        if kind is AgentCallType.STATUS_UPDATE:
            self.status_update(agent, call)
        elif kind is AgentCallType.PONG:
            agent.lifecycle.handle(agent_fsm.Pong(self.clock.monotonic()))
        elif kind is AgentCallType.EXECUTOR_EXITED:
            self.executor_exited(agent, call)
        elif kind is AgentCallType.FRAMEWORK_MESSAGE:
            msg = call.framework_message
            assert msg is not None
            framework = self.book.frameworks.get(msg.framework_id)
            if framework is not None:
                self.out.to_framework(framework, Event(
                    type=EventType.MESSAGE, message=EventMessage(
                        agent_id=agent.id, executor_id=msg.executor_id, data=msg.data)).to_json())
        elif kind is AgentCallType.UNREGISTER:
            self.remove(agent, "the agent shut down", TaskState.TASK_GONE)
        else:
            log.warning("agent %s sent unexpected %s", agent.id, kind)

    def status_update(self, agent: Agent, call: AgentCall) -> None:
        update = call.status_update
        assert update is not None
        master, book = self.master, self.book
        status = update.status
        status.agent_id = agent.id
        if agent.drain is not None and status.state.terminal and status.reason is None:
            status.reason = Reason.REASON_AGENT_DRAINING  # killed by DRAIN_AGENT (drain.py)
        framework = book.frameworks.get(update.framework_id)
        if framework is None:
            if update.framework_id in book.completed_frameworks and status.uuid:
                # Nobody will ever acknowledge this: end the agent's retries.
                self.out.to_agent(agent, _command(
                    MasterCommandType.ACKNOWLEDGE, acknowledge=AcknowledgeUpdate(
                        framework_id=update.framework_id, task_id=status.task_id,
                        uuid=status.uuid)))
            self.counters["invalid_status_updates"] += 1
            return
        task = book.find_task(framework.id, status.task_id)
        if task is None:
            task = book.find_completed_task(framework.id, status.task_id)
            if task is None:
                self.counters["invalid_status_updates"] += 1
                log.warning("status update for unknown task %s from agent %s", status.task_id,
                            agent.id)
                return
            # Completed when an earlier update's latest_state was terminal: its terminal
            # status comes now and belongs in its statuses (the v0/v1 views show it).
            task.record(status)
            task.status_update_state = status.state
            task.status_update_uuid = status.uuid
        else:
            latest = update.latest_state or status.state
            task.record(status)
            task.status_update_state = status.state
            task.status_update_uuid = status.uuid
            if latest.terminal:
                master.terminate_task(task, latest)
            else:
                book.set_task_state(task, latest)
            self.out.emit_task_updated(task, status)
        self.counters["valid_status_updates"] += 1
        self.out.status(framework, status)

    def executor_exited(self, agent: Agent, call: AgentCall) -> None:
        msg = call.executor_exited
        assert msg is not None
        self.book.remove_executor(agent, msg.framework_id, msg.executor_id)
        framework = self.book.frameworks.get(msg.framework_id)
        if framework is not None:
            self.out.to_framework(framework, Event(type=EventType.FAILURE, failure=Failure(
                agent_id=agent.id, executor_id=msg.executor_id, status=msg.status)).to_json())
        self.master.resources_changed(agent.id)

    # -- health ------------------------------------------------------------------------
    def ping_all(self, now: float) -> None:
        """Count a missed PONG for every agent silent since the last round, then PING."""
        tick = agent_fsm.PingRound(now, self._last_ping, self.config.max_agent_ping_timeouts)
        for agent in list(self.book.agents.values()):
            actions = agent.lifecycle.handle(tick)
            if actions:
                self._carry_out(agent, actions)
        self._last_ping = now

    def _mark_unreachable(self, agent: Agent) -> None:
        """Too many missed pings: its tasks become TASK_UNREACHABLE (LOST for old frameworks).

        Frameworks hear of it once the mark is in the registry, so that a new leader
        knows what they were told (and kills returning tasks they were told are lost)."""
        log.warning("agent %s (%s) is unreachable: %d pings missed", agent.id, agent.hostname,
                    agent.lifecycle.pings_missed)
        book = self.book
        self.admitting.pop(agent.id, None)
        agent.unreachable_time = when = self.clock.time()
        book.total = book.total - agent.total
        self.counters["slave_unreachable_completed"] += 1
        statuses: list[tuple[Task, TaskStatus]] = []
        for (fw_id, task_id), task in list(agent.tasks.items()):
            framework = book.frameworks.get(fw_id)
            if framework is None or framework.tasks.pop(task_id, None) is None:
                continue
            framework.used = framework.used - task.resources
            framework.unreachable_tasks[task_id] = task
            task.unreachable_time = when
            book.set_task_state(task, TaskState.TASK_UNREACHABLE)
            status = master_status(task_id, TaskState.TASK_UNREACHABLE, when,
                                   reason=Reason.REASON_AGENT_REMOVED, agent_id=agent.id,
                                   message=f"Agent {agent.hostname} is unreachable",
                                   unreachable_time=when)
            task.record(status)
            statuses.append((task, status))
        for fw_id in list(agent.executors):
            for executor_id in list(agent.executors[fw_id]):
                book.remove_executor(agent, fw_id, executor_id)
        agent.tasks.clear()
        agent.used = EMPTY
        self._unreachable[agent.id] = statuses

    def _write_unreachable(self, agent: Agent) -> None:
        registry = self.master.registry
        when = agent.unreachable_time
        assert when is not None
        written = (registry.mark_unreachable(agent.id, agent.info.to_json(), when)
                   if registry is not None else None)
        if written is None:  # no registry, or it holds this already
            self._carry_out(agent, agent.lifecycle.handle(agent_fsm.UnreachableWritten(True)))
        else:
            written.add_done_callback(lambda f: self.master.schedule(
                self._unreachable_written, agent, when, f))

    def _unreachable_written(self, agent: Agent, when: float, written: Any) -> None:
        if self.book.agents.get(agent.id) is not agent or agent.unreachable_time != when:
            return  # it came back, or was removed, meanwhile
        exc = written.exception()
        if exc is not None:
            log.error("could not write agent %s as unreachable to the registry: %r; "
                      "retrying at the next ping round", agent.id, exc)
            self.counters["registrar_failures"] += 1
        event = agent_fsm.UnreachableWritten(exc is None)
        self._carry_out(agent, agent.lifecycle.handle(event))

    def _tell_unreachable(self, agent: Agent, statuses: list[tuple[Task, TaskStatus]]) -> None:
        """Frameworks get their tasks' TASK_UNREACHABLE (or LOST) and FAILURE."""
        for task, status in statuses:
            framework = self.book.frameworks.get(task.framework_id)
            if framework is None or framework.unreachable_tasks.get(task.id) is not task:
                continue
            self.out.status(framework, status)
            self.out.emit_task_updated(task, status)
        self._gone(agent)

    def remove(
        self,
        agent: Agent,
        why: str,
        state: TaskState,
        reason: Reason = Reason.REASON_AGENT_REMOVED,
    ) -> None:
        """Remove an agent for good (it shut down, or an operator marked it gone)."""
        self._carry_out(agent, agent.lifecycle.handle(agent_fsm.Remove(why, state, reason)))

    def _remove(self, agent: Agent, removal: agent_fsm.RemoveAgent) -> None:
        master, book = self.master, self.book
        why, state, reason = removal.why, removal.task_state, removal.reason
        log.info("removing agent %s (%s): %s", agent.id, agent.hostname, why)
        now = self.clock.time()
        tasks = list(agent.tasks.values())
        if removal.was_unreachable:  # its tasks wait in unreachable_tasks
            for framework in book.frameworks.values():
                tasks += [t for t in framework.unreachable_tasks.values() if t.agent_id == agent.id]
        for task in tasks:
            owner = book.frameworks.get(task.framework_id)
            status = master_status(task.id, state, now, reason=reason, agent_id=agent.id,
                                   message=f"Agent removed: {why}")
            task.record(status)
            master.terminate_task(task, state)
            self.out.emit_task_updated(task, status)
            if owner is not None:
                self.out.status(owner, status)
        for fw_id in list(agent.executors):
            for executor_id in list(agent.executors[fw_id]):
                book.remove_executor(agent, fw_id, executor_id)
        if not removal.was_unreachable:
            book.total = book.total - agent.total
        book.agents.pop(agent.id, None)
        self.counters["slave_removals"] += 1
        if master.registry is not None:
            gone = book.gone_agents.get(agent.id)
            master.persist(master.registry.mark_gone(agent.id, gone) if gone is not None
                           else master.registry.remove_agent(agent.id), f"agent {agent.id}")
        self._gone(agent)

    def _gone(self, agent: Agent) -> None:
        """Frameworks get FAILURE, the link closes, operator subscribers get AGENT_REMOVED."""
        self.admitting.pop(agent.id, None)
        self._unreachable.pop(agent.id, None)
        failure = Event(type=EventType.FAILURE, failure=Failure(agent_id=agent.id)).to_json()
        for framework in self.book.frameworks.values():
            if framework.connected:
                self.out.to_framework(framework, failure)
        if agent.close is not None:
            close = agent.close
            agent.send = agent.close = None
            close()
        self.out.emit({"type": "AGENT_REMOVED",
                          "agent_removed": {"agent_id": {"value": agent.id}}})


def _command(kind: MasterCommandType, **body: Any) -> MasterCommand:
    return MasterCommand(type=kind, **body)


_PING = _command(MasterCommandType.PING).to_json()
