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
before REGISTERED is sent (the agent retries if the write fails); unreachable and
removed/gone agents are written in the background. Agents recovered from the registry
after a failover wait in ``master.recovered_agents`` until they re-register.
A re-registering agent reports the tasks it runs and
the master rebuilds its book from that report (agent restart, master failover, end of a
partition): tasks it had marked unreachable come back with ``REASON_AGENT_REREGISTERED``.
"""

from __future__ import annotations

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
from .updates import master_status
from .views import agent_json

if TYPE_CHECKING:
    from .master import Master

log = logging.getLogger(__name__)
Send = Callable[[dict[str, Any]], None]


class AgentMessages:
    """Carries out agent messages on the master's book."""

    def __init__(self, master: Master) -> None:
        self.master = master
        self.book = master.book
        self._last_ping = master.clock.monotonic()

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
            if agent.close is not None and agent.send != send:
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
        agent.send, agent.close = send, close
        agent.state = AgentState.REGISTERED
        agent.unreachable_time = None
        agent.pings_missed = 0
        agent.last_pong = master.clock.monotonic()
        master.recovered_agents.pop(agent_id, None)
        after = self._adopt_report(agent, msg) if msg.agent_id else []
        registered = [_command(MasterCommandType.REGISTERED, registered=Registered(
            agent_id=agent_id, ping_interval_seconds=master.config.agent_ping_timeout,
            master_info=master.info())).to_json(), *after]
        written = (master.registry.admit_agent(agent_id, msg.agent_info.to_json())
                   if master.registry is not None else None)
        if written is None:
            for message in registered:
                send(message)
        else:
            written.add_done_callback(
                lambda f: master.schedule(self._admitted, agent, send, registered, f))
        master.emit({"type": "AGENT_ADDED", "agent_added": {"agent": agent_json(agent)}})
        master.resources_changed(agent_id)
        return agent

    def _admitted(self, agent: Agent, send: Send, registered: list[dict[str, Any]],
                  written: Any) -> None:
        """The registry write of an admission finished (on the IOLoop again)."""
        if agent.send != send:
            return  # the link went away meanwhile; the agent will register again
        exc = written.exception()
        if exc is None:
            for message in registered:
                send(message)
            return
        log.error("could not write agent %s to the registry: %r; closing its link", agent.id, exc)
        self.master.counters["registrar_failures"] += 1
        if agent.close is not None:
            agent.close()

    def _adopt_report(self, agent: Agent, msg: Register) -> list[dict[str, Any]]:
        """Rebuild the agent's tasks and executors from what it reports; returns the
        commands to send once it is registered (kills of tasks that must not return)."""
        kills: list[dict[str, Any]] = []
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
                self.master.send_to_agent(agent, _command(
                    MasterCommandType.SHUTDOWN_FRAMEWORK,
                    shutdown_framework=ShutdownFramework(framework_id=fw_id)))
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
            came_back = framework.unreachable_tasks.pop(item.task.task_id, None)
            if task is not None:
                agent.used = agent.used + task.resources
                agent.tasks[key] = task
                book.set_task_state(task, item.state)
                continue
            if came_back is not None:
                task = came_back
                framework.tasks[task.id] = task
                framework.used = framework.used + task.resources
                agent.used = agent.used + task.resources
                agent.tasks[key] = task
                book.set_task_state(task, item.state)
                task.unreachable_time = None
                if not framework.partition_aware:
                    # It was told TASK_LOST and may have replaced the task: kill the
                    # returning copy, as Mesos does for frameworks without PARTITION_AWARE.
                    kills.append(_command(MasterCommandType.KILL_TASK, kill_task=KillTask(
                        framework_id=framework.id, task_id=task.id)).to_json())
                    continue
                status = item.latest_status or master_status(task.id, item.state, now)
                status = TaskStatus(task_id=task.id, state=item.state, source=status.source,
                                    reason=Reason.REASON_AGENT_REREGISTERED,
                                    message="Agent re-registered", agent_id=agent.id,
                                    executor_id=task.executor_id, timestamp=now)
                task.record(status)
                self.master.send_status(framework, status)
                continue
            task = Task(info=item.task, framework_id=item.framework_id, agent_id=agent.id,
                        role=framework.roles[0], resources=Resources.from_json(item.task.resources),
                        executor_id=item.executor_id, state=item.state)
            if item.latest_status is not None:
                task.record(item.latest_status)
            book.add_task(task)
        for key, task in list(agent.tasks.items()):
            if key not in reported:
                agent.tasks.pop(key)
                self._drop_missing(task, agent)
        return kills

    def _recover_framework(self, info: FrameworkInfo) -> None:
        """A framework known only from an agent's report (after a master failover)."""
        assert info.id is not None
        framework = Framework(info.id, info, registered_time=self.master.clock.time(), active=False)
        framework.failover_deadline = self.master.clock.monotonic() + (info.failover_timeout or 0)
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
                continue
            if agent.last_pong < self._last_ping:
                agent.pings_missed += 1
                if agent.pings_missed >= limit:
                    self.mark_unreachable(agent)
                    continue
            if agent.send is not None:
                agent.send(ping)
        self._last_ping = now

    def mark_unreachable(self, agent: Agent) -> None:
        """Too many missed pings: its tasks become TASK_UNREACHABLE (LOST for old frameworks)."""
        log.warning("agent %s (%s) is unreachable: %d pings missed", agent.id, agent.hostname,
                    agent.pings_missed)
        master, book = self.master, self.book
        master.rescind_agent_offers(agent)
        agent.state = AgentState.UNREACHABLE
        agent.unreachable_time = master.clock.time()
        book.total = book.total - agent.total
        master.counters["slave_unreachable_completed"] += 1
        for (fw_id, task_id), task in list(agent.tasks.items()):
            framework = book.frameworks.get(fw_id)
            if framework is None or framework.tasks.pop(task_id, None) is None:
                continue
            framework.used = framework.used - task.resources
            framework.unreachable_tasks[task_id] = task
            task.unreachable_time = agent.unreachable_time
            book.set_task_state(task, TaskState.TASK_UNREACHABLE)
            status = master_status(task_id, TaskState.TASK_UNREACHABLE, agent.unreachable_time,
                                   reason=Reason.REASON_AGENT_REMOVED, agent_id=agent.id,
                                   message=f"Agent {agent.hostname} is unreachable",
                                   unreachable_time=agent.unreachable_time)
            task.record(status)
            master.send_status(framework, status)
            master.emit_task_updated(task, status)
        for fw_id in list(agent.executors):
            for executor_id in list(agent.executors[fw_id]):
                book.remove_executor(agent, fw_id, executor_id)
        agent.tasks.clear()
        agent.used = EMPTY
        if master.registry is not None:
            master.persist(master.registry.mark_unreachable(
                agent.id, agent.info.to_json(), agent.unreachable_time), f"agent {agent.id}")
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
