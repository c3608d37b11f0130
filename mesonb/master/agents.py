"""Agent messages: what the master does with each ``AgentCall`` from an agent.

An agent as the master sees it::

                 REGISTER                     link closes
    (unknown) ─────────────► REGISTERED ─────────────────► DISCONNECTED
                               ▲   │  ▲                        │
                   REGISTER(id)│   │  └──── REGISTER(id) ──────┘
                               │   │ max_agent_ping_timeouts missed PONGs (either state)
                               │   ▼
                             UNREACHABLE  (tasks -> TASK_UNREACHABLE / TASK_LOST, FAILURE)

    UNREGISTER (the agent shuts down): the agent is removed and its tasks are gone.

Only REGISTERED agents are offered. With a registry, an agent's admission is written
before REGISTERED is sent (the agent retries if the write fails). While that write is
under way the agent is *admitting*: it shows as DISCONNECTED, is not offered, and what
the master sends it (a kill, an acknowledgement) is held and follows REGISTERED, because
an agent drops every command that comes before REGISTERED. An unreachable mark is written
before frameworks hear of it (TASK_UNREACHABLE / TASK_LOST, FAILURE), and written again
at the next ping round if the write failed; removed/gone agents are written in the
background. Agents recovered from the registry after a failover wait in
``master.recovered_agents`` until they re-register.

A re-registering agent reports the tasks it runs and the master rebuilds its book from
that report (agent restart, master failover, end of a partition). When an unreachable
agent returns (also one a new leader knows as unreachable only from the registry), tasks
of PARTITION_AWARE frameworks come back with TASK_RUNNING / ``REASON_AGENT_REREGISTERED``;
tasks of other frameworks, which were told TASK_LOST, are killed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mesonb.protocol.agent import (
    AcknowledgeUpdate,
    AgentCall,
    AgentCallType,
    KillTask,
    MasterCommand,
    MasterCommandType,
    Notice,
    Register,
    Registered,
    ShutdownFramework,
)
from mesonb.protocol.mesos import FrameworkInfo, TaskStatus
from mesonb.protocol.resources import EMPTY, Resources
from mesonb.protocol.scheduler import Event, EventMessage, EventType, Failure
from mesonb.protocol.states import Reason, TaskState

from .book import Agent, AgentState, Framework, Task
from .framework_fsm import FrameworkLifecycle
from .updates import master_status
from .views import agent_json

if TYPE_CHECKING:
    from .master import Master

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

    def __init__(self, master: Master) -> None:
        self.master = master
        self.book = master.book
        self._last_ping = master.clock.monotonic()
        self.admitting: dict[str, Admission] = {}  # agent id -> its admission under way
        # agent id -> statuses still to tell, for unreachable marks whose write failed
        self._unwritten: dict[str, list[tuple[Task, TaskStatus]]] = {}

    # -- links -----------------------------------------------------------------------
    def register(self, msg: Register, send: Send, close: Callable[[], None]) -> Agent | None:
        master, book = self.master, self.book
        now = master.clock.time()
        agent_id = msg.agent_id
        if agent_id and agent_id in book.gone_agents:
            send(_command(MasterCommandType.SHUTDOWN, shutdown=Notice(
                message=f"Agent {agent_id} has been marked gone; start it with a new work dir"),
            ).to_json())
            close()
            return None
        total = Resources.from_json(msg.agent_info.resources, "agent_info.resources")
        agent = book.agents.get(agent_id) if agent_id else None
        new = agent is None
        was_unreachable = agent is not None and agent.state is AgentState.UNREACHABLE
        if agent is None:
            agent_id = agent_id or master.new_id("S")
            msg.agent_info.id = agent_id
            agent = Agent(agent_id, msg.agent_info, total, msg.version, registered_time=now)
            book.agents[agent_id] = agent
            if msg.agent_id:
                agent.reregistered_time = now
            book.total = book.total + total
            master.counters["slave_registrations"] += 1
            log.info("agent %s (%s) registered with %s", agent_id, agent.hostname, total)
        else:
            self.admitting.pop(agent_id, None)  # one on an older link: this one replaces it
            self._unwritten.pop(agent_id, None)
            if agent.close is not None:
                old_close = agent.close
                agent.send = agent.close = None
                old_close()
            if agent.state is AgentState.UNREACHABLE:
                book.total = book.total + total
            else:
                book.total = book.total - agent.total + total
            msg.agent_info.id = agent_id
            agent.info, agent.total, agent.version = msg.agent_info, total, msg.version
            agent.reregistered_time = now
            master.counters["slave_reregistrations"] += 1
            log.info("agent %s (%s) re-registered", agent_id, agent.hostname)
        agent.attributes = {a.name: a.value() for a in msg.agent_info.attributes or ()}
        agent.upid = msg.pid or agent.upid
        agent.send, agent.close = None, close
        agent.unreachable_time = None
        agent.pings_missed = 0
        agent.last_pong = master.clock.monotonic()
        master.recovered_agents.pop(agent_id, None)
        after = self._adopt_report(agent, msg, was_unreachable) if msg.agent_id else []
        registered = [_command(MasterCommandType.REGISTERED, registered=Registered(
            agent_id=agent_id, ping_interval_seconds=master.config.agent_ping_timeout,
            master_info=master.info())).to_json(), *after]
        written = (master.registry.admit_agent(agent_id, msg.agent_info.to_json())
                   if master.registry is not None else None)
        if written is None:  # nothing to write (no registry, or it holds this already)
            self._admit(agent, send, registered)
            return agent
        # Not offered, and nothing sent to it, until the admission is written.
        admission = Admission(agent, send, close, registered, new)
        self.admitting[agent_id] = admission
        agent.state = AgentState.DISCONNECTED
        agent.send = admission.hold
        master.rescind_agent_offers(agent)
        written.add_done_callback(lambda f: master.schedule(self._admitted, admission, f))
        return agent

    def _admit(self, agent: Agent, send: Send, messages: list[dict[str, Any]]) -> None:
        """REGISTERED (and what follows it) goes out; the agent is offered from now on."""
        agent.send = send
        agent.state = AgentState.REGISTERED
        for message in messages:
            send(message)
        if self.master.observers:
            self.master.emit({"type": "AGENT_ADDED",
                              "agent_added": {"agent": agent_json(agent)}})
        self.master.resources_changed(agent.id)

    def _admitted(self, admission: Admission, written: Any) -> None:
        """The registry write of an admission finished (on the IOLoop again)."""
        agent = admission.agent
        if self.admitting.get(agent.id) is not admission:
            return  # the link went away, or a newer registration replaced this one
        del self.admitting[agent.id]
        exc = written.exception()
        if exc is None:
            self._admit(agent, admission.send, admission.registered + admission.held)
            return
        log.error("could not write agent %s to the registry: %r; closing its link", agent.id, exc)
        self.master.counters["registrar_failures"] += 1
        agent.send = agent.close = None
        if admission.new and self.book.agents.get(agent.id) is agent:
            # Nobody knows this id: the agent registers afresh and gets a new one.
            del self.book.agents[agent.id]
            self.book.total = self.book.total - agent.total
        admission.close()

    def _adopt_report(self, agent: Agent, msg: Register,
                      was_unreachable: bool) -> list[dict[str, Any]]:
        """Rebuild the agent's tasks and executors from what it reports; returns the
        commands to send once it is registered (shutdowns of removed frameworks, kills of
        tasks that must not return)."""
        after: list[dict[str, Any]] = []
        master, book = self.master, self.book
        now = master.clock.time()
        infos = {f.id: f for f in msg.frameworks or () if f.id}
        reported: set[tuple[str, str]] = set()
        agent.executors = {}
        agent.used = EMPTY
        for fw_id in {e.framework_id for e in msg.executors or ()} | {
            t.framework_id for t in msg.tasks or ()
        }:
            if fw_id in book.completed_frameworks:
                after.append(_command(
                    MasterCommandType.SHUTDOWN_FRAMEWORK,
                    shutdown_framework=ShutdownFramework(framework_id=fw_id)).to_json())
            elif fw_id not in book.frameworks and fw_id in infos:
                self._recover_framework(infos[fw_id])
        for item in msg.executors or ():
            framework = book.frameworks.get(item.framework_id)
            if framework is not None:
                book.add_executor(agent, framework, item.executor)
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
                after.append(_command(MasterCommandType.KILL_TASK, kill_task=KillTask(
                    framework_id=framework.id, task_id=task.id)).to_json())
                continue
            status = item.latest_status or master_status(task.id, item.state, now)
            status = TaskStatus(task_id=task.id, state=item.state, source=status.source,
                                reason=Reason.REASON_AGENT_REREGISTERED,
                                message="Agent re-registered", agent_id=agent.id,
                                executor_id=task.executor_id, timestamp=now)
            task.record(status)
            self.master.send_status(framework, status)
        for key, task in list(agent.tasks.items()):
            if key not in reported:
                agent.tasks.pop(key)
                self._drop_missing(task, agent)
        return after

    def _recover_framework(self, info: FrameworkInfo) -> None:
        """A framework known only from an agent's report (after a master failover)."""
        assert info.id is not None
        framework = Framework(info.id, info, registered_time=self.master.clock.time())
        framework.lifecycle = FrameworkLifecycle.recovered(
            info.id, self.master.clock.monotonic() + (info.failover_timeout or 0))
        self.book.add_framework(framework)

    def _drop_missing(self, task: Task, agent: Agent) -> None:
        framework = self.book.frameworks.get(task.framework_id)
        status = master_status(task.id, TaskState.TASK_DROPPED, self.master.clock.time(),
                               reason=Reason.REASON_AGENT_REREGISTERED, agent_id=agent.id,
                               message="Task was not found on the agent when it re-registered")
        task.record(status)
        if framework is not None:
            framework.used = framework.used - task.resources
            framework.tasks.pop(task.id, None)
            framework.completed_tasks.append(task)
            self.master.send_status(framework, status)
        self.book.set_task_state(task, TaskState.TASK_DROPPED)

    def disconnected(self, agent: Agent, send: Send) -> None:
        """The agent's link closed: stop offering it and wait for it to come back."""
        admission = self.admitting.get(agent.id)
        if admission is not None and admission.send == send:
            del self.admitting[agent.id]  # it registers again on its next link
            agent.send = agent.close = None
            log.info("agent %s (%s) disconnected before its admission was written", agent.id,
                     agent.hostname)
            return
        if agent.send != send:
            return
        agent.send = agent.close = None
        if agent.state is AgentState.REGISTERED:
            agent.state = AgentState.DISCONNECTED
            log.info("agent %s (%s) disconnected", agent.id, agent.hostname)
            self.master.rescind_agent_offers(agent)

    # -- messages ----------------------------------------------------------------------
    def handle(self, agent: Agent, call: AgentCall) -> None:
        kind = call.type
        if kind is AgentCallType.STATUS_UPDATE:
            self.status_update(agent, call)
        elif kind is AgentCallType.PONG:
            agent.pings_missed = 0
            agent.last_pong = self.master.clock.monotonic()
        elif kind is AgentCallType.EXECUTOR_EXITED:
            self.executor_exited(agent, call)
        elif kind is AgentCallType.FRAMEWORK_MESSAGE:
            msg = call.framework_message
            assert msg is not None
            framework = self.book.frameworks.get(msg.framework_id)
            if framework is not None:
                self.master.send_to_framework(framework, Event(
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
        framework = book.frameworks.get(update.framework_id)
        if framework is None:
            if update.framework_id in book.completed_frameworks and status.uuid:
                # Nobody will ever acknowledge this: end the agent's retries.
                master.send_to_agent(agent, _command(
                    MasterCommandType.ACKNOWLEDGE, acknowledge=AcknowledgeUpdate(
                        framework_id=update.framework_id, task_id=status.task_id,
                        uuid=status.uuid)))
            master.counters["invalid_status_updates"] += 1
            return
        task = book.find_task(framework.id, status.task_id)
        if task is None:
            task = book.find_completed_task(framework.id, status.task_id)
            if task is None:
                master.counters["invalid_status_updates"] += 1
                log.warning("status update for unknown task %s from agent %s", status.task_id,
                            agent.id)
                return
        else:
            latest = update.latest_state or status.state
            task.record(status)
            task.status_update_state = status.state
            task.status_update_uuid = status.uuid
            if latest.terminal:
                master.terminate_task(task, latest)
            else:
                book.set_task_state(task, latest)
            master.emit_task_updated(task, status)
        master.counters["valid_status_updates"] += 1
        master.send_status(framework, status)

    def executor_exited(self, agent: Agent, call: AgentCall) -> None:
        msg = call.executor_exited
        assert msg is not None
        self.book.remove_executor(agent, msg.framework_id, msg.executor_id)
        framework = self.book.frameworks.get(msg.framework_id)
        if framework is not None:
            self.master.send_to_framework(framework, Event(type=EventType.FAILURE, failure=Failure(
                agent_id=agent.id, executor_id=msg.executor_id, status=msg.status)).to_json())
        self.master.resources_changed(agent.id)

    # -- health ------------------------------------------------------------------------
    def ping_all(self, now: float) -> None:
        """Count a missed PONG for every agent silent since the last round, then PING."""
        limit = self.master.config.max_agent_ping_timeouts
        ping = _command(MasterCommandType.PING).to_json()
        for agent in list(self.book.agents.values()):
            if agent.state is AgentState.UNREACHABLE:
                if agent.id in self._unwritten:  # the last write of its mark failed
                    self._persist_unreachable(agent, self._unwritten.pop(agent.id))
                continue
            if agent.last_pong < self._last_ping:
                agent.pings_missed += 1
                if agent.pings_missed >= limit:
                    self.mark_unreachable(agent)
                    continue
            if agent.send is not None and agent.id not in self.admitting:
                agent.send(ping)
        self._last_ping = now

    def mark_unreachable(self, agent: Agent) -> None:
        """Too many missed pings: its tasks become TASK_UNREACHABLE (LOST for old frameworks).

        Frameworks hear of it once the mark is in the registry, so that a new leader
        knows what they were told (and kills returning tasks they were told are lost)."""
        log.warning("agent %s (%s) is unreachable: %d pings missed", agent.id, agent.hostname,
                    agent.pings_missed)
        master, book = self.master, self.book
        master.rescind_agent_offers(agent)
        self.admitting.pop(agent.id, None)
        agent.state = AgentState.UNREACHABLE
        agent.unreachable_time = when = master.clock.time()
        book.total = book.total - agent.total
        master.counters["slave_unreachable_completed"] += 1
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
        if agent.close is not None:
            close = agent.close
            agent.send = agent.close = None
            close()
        if master.registry is None:
            self._tell_unreachable(agent, statuses)
        else:
            self._persist_unreachable(agent, statuses)

    def _persist_unreachable(self, agent: Agent, statuses: list[tuple[Task, TaskStatus]]) -> None:
        assert self.master.registry is not None and agent.unreachable_time is not None
        when = agent.unreachable_time
        written = self.master.registry.mark_unreachable(agent.id, agent.info.to_json(), when)
        if written is None:
            self._tell_unreachable(agent, statuses)
        else:
            written.add_done_callback(lambda f: self.master.schedule(
                self._unreachable_written, agent, when, statuses, f))

    def _unreachable_written(self, agent: Agent, when: float,
                             statuses: list[tuple[Task, TaskStatus]], written: Any) -> None:
        if self.book.agents.get(agent.id) is not agent or agent.unreachable_time != when:
            return  # it came back, or was removed, meanwhile
        exc = written.exception()
        if exc is not None:
            log.error("could not write agent %s as unreachable to the registry: %r; "
                      "retrying at the next ping round", agent.id, exc)
            self.master.counters["registrar_failures"] += 1
            self._unwritten[agent.id] = statuses
            return
        self._tell_unreachable(agent, statuses)

    def _tell_unreachable(self, agent: Agent, statuses: list[tuple[Task, TaskStatus]]) -> None:
        """Frameworks get their tasks' TASK_UNREACHABLE (or LOST) and FAILURE."""
        for task, status in statuses:
            framework = self.book.frameworks.get(task.framework_id)
            if framework is None or framework.unreachable_tasks.get(task.id) is not task:
                continue
            self.master.send_status(framework, status)
            self.master.emit_task_updated(task, status)
        self._gone(agent)

    def remove(
        self,
        agent: Agent,
        why: str,
        state: TaskState,
        reason: Reason = Reason.REASON_AGENT_REMOVED,
    ) -> None:
        """Remove an agent for good (it shut down, or an operator marked it gone)."""
        master, book = self.master, self.book
        log.info("removing agent %s (%s): %s", agent.id, agent.hostname, why)
        master.rescind_agent_offers(agent)
        now = master.clock.time()
        tasks = list(agent.tasks.values())
        if agent.state is AgentState.UNREACHABLE:  # its tasks wait in unreachable_tasks
            for framework in book.frameworks.values():
                tasks += [t for t in framework.unreachable_tasks.values() if t.agent_id == agent.id]
        for task in tasks:
            framework = book.frameworks.get(task.framework_id)
            status = master_status(task.id, state, now, reason=reason, agent_id=agent.id,
                                   message=f"Agent removed: {why}")
            task.record(status)
            master.terminate_task(task, state)
            master.emit_task_updated(task, status)
            if framework is not None:
                master.send_status(framework, status)
        for fw_id in list(agent.executors):
            for executor_id in list(agent.executors[fw_id]):
                book.remove_executor(agent, fw_id, executor_id)
        if agent.state is not AgentState.UNREACHABLE:
            book.total = book.total - agent.total
        book.agents.pop(agent.id, None)
        master.counters["slave_removals"] += 1
        if master.registry is not None:
            gone = book.gone_agents.get(agent.id)
            master.persist(master.registry.mark_gone(agent.id, gone) if gone is not None
                           else master.registry.remove_agent(agent.id), f"agent {agent.id}")
        self._gone(agent)

    def _gone(self, agent: Agent) -> None:
        """Frameworks get FAILURE, the link closes, operator subscribers get AGENT_REMOVED."""
        self.admitting.pop(agent.id, None)
        self._unwritten.pop(agent.id, None)
        failure = Event(type=EventType.FAILURE, failure=Failure(agent_id=agent.id)).to_json()
        for framework in self.book.frameworks.values():
            if framework.connected:
                self.master.send_to_framework(framework, failure)
        if agent.close is not None:
            close = agent.close
            agent.send = agent.close = None
            close()
        self.master.emit({"type": "AGENT_REMOVED",
                          "agent_removed": {"agent_id": {"value": agent.id}}})


def _command(kind: MasterCommandType, **body: Any) -> MasterCommand:
    return MasterCommand(type=kind, **body)
