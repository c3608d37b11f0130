"""DRAIN_AGENT, DEACTIVATE_AGENT, REACTIVATE_AGENT and MARK_AGENT_GONE on the master.

As Mesos 1.9+ (docs/maintenance.md, "Draining"):

* DEACTIVATE_AGENT: the agent is no longer offered (its outstanding offers are rescinded);
  its tasks keep running. It shows ``deactivated: true``.
* DRAIN_AGENT{agent_id, max_grace_period, mark_gone}: the agent is deactivated and each of
  its tasks is killed, with its kill policy's grace period capped by ``max_grace_period``;
  the tasks' terminal updates carry REASON_AGENT_DRAINING. Its ``drain_info`` says
  DRAINING, then DRAINED once no task is left; with ``mark_gone`` the drained agent is
  then marked gone (as MARK_AGENT_GONE: told to shut down, never admitted again).
* REACTIVATE_AGENT: a deactivated, draining or drained agent is offered again and its
  drain forgotten.

The agent's own life (REGISTERED / DRAINING) is its :mod:`.agent_fsm` machine; this module
keeps the drain's configuration and moves it to DRAINED.
"""

from __future__ import annotations

import logging
from typing import Protocol

from mesonb.clock import Clock
from mesonb.protocol.agent import MasterCommand, MasterCommandType, Notice
from mesonb.protocol.errors import BadRequest, NotFound
from mesonb.protocol.states import Reason, TaskState

from .agent_fsm import AgentState
from .agents import AgentMessages
from .book import Agent, Book
from .drain_info import DrainInfo

log = logging.getLogger(__name__)


class DrainHost(Protocol):
    book: Book
    clock: Clock
    agents: AgentMessages

    def send_to_agent(self, agent: Agent, command: MasterCommand) -> bool: ...

    def rescind_agent_offers(self, agent: Agent) -> None: ...

    def resources_changed(self, agent_id: str) -> None: ...


class Drains:
    """Carries out the drain and (de)activation calls for the operator API."""

    def __init__(self, master: DrainHost) -> None:
        self.master = master
        self.draining: set[str] = set()  # ids of agents whose drain is not DRAINED yet

    def _agent(self, agent_id: str) -> Agent:
        agent = self.master.book.agents.get(agent_id)
        if agent is None or agent.state is AgentState.GONE:
            raise NotFound(f"Agent '{agent_id}' not found")
        return agent

    def deactivate(self, agent_id: str) -> None:
        agent = self._agent(agent_id)
        if not agent.deactivated:
            log.info("agent %s (%s) deactivated by an operator", agent.id, agent.hostname)
        agent.deactivated = True
        self.master.rescind_agent_offers(agent)

    def drain(self, agent_id: str, max_grace_ns: int | None, mark_gone: bool) -> None:
        agent = self._agent(agent_id)
        if agent.state is AgentState.UNREACHABLE:
            raise BadRequest(f"Agent '{agent_id}' is unreachable and cannot be drained")
        if max_grace_ns is not None and max_grace_ns < 0:
            raise BadRequest("Expecting 'drain_agent.max_grace_period' to be non-negative")
        log.info("draining agent %s (%s): max grace %s ns, mark_gone=%s", agent.id,
                 agent.hostname, max_grace_ns, mark_gone)
        agent.deactivated = True
        agent.drain = DrainInfo(max_grace_ns, mark_gone)
        self.draining.add(agent.id)
        self.master.agents.drain(agent)
        self.master.rescind_agent_offers(agent)
        self.tick()

    def reactivate(self, agent_id: str) -> None:
        agent = self._agent(agent_id)
        if not agent.deactivated and agent.drain is None:
            raise BadRequest(f"Agent '{agent_id}' is not deactivated")
        agent.deactivated = False
        agent.drain = None
        self.draining.discard(agent.id)
        self.master.agents.reactivate(agent)
        self.master.resources_changed(agent.id)
        log.info("agent %s (%s) reactivated by an operator", agent.id, agent.hostname)

    def tick(self) -> None:
        """Draining agents with no task left are DRAINED (and gone, with ``mark_gone``)."""
        if not self.draining:
            return
        for agent_id in list(self.draining):
            agent = self.master.book.agents.get(agent_id)
            drain = agent.drain if agent is not None else None
            if agent is None or drain is None:
                self.draining.discard(agent_id)
                continue
            if agent.tasks:
                continue
            self.draining.discard(agent_id)
            drain.state = "DRAINED"
            log.info("agent %s (%s) is drained", agent.id, agent.hostname)
            if drain.mark_gone:
                mark_gone(self.master, agent, "marked gone once drained (mark_gone)")


def mark_gone(master: DrainHost, agent: Agent, why: str = "marked gone by an operator") -> None:
    """The agent is gone for good: told to shut down, its tasks TASK_GONE_BY_OPERATOR."""
    book = master.book
    book.gone_agents[agent.id] = master.clock.time()
    message = f"Agent {agent.id} was {why}"
    master.send_to_agent(agent, MasterCommand(type=MasterCommandType.SHUTDOWN,
                                              shutdown=Notice(message=message)))
    master.agents.remove(agent, why, TaskState.TASK_GONE_BY_OPERATOR,
                         Reason.REASON_AGENT_REMOVED_BY_OPERATOR)
