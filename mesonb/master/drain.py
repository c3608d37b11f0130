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

Deactivations and drains are kept in the registry (the ``agents`` setting, as Mesos keeps
them in its registry): a new leader applies them when the agent re-registers
(:meth:`Drains.adopt`), and kills what a draining agent still reports once it is admitted.

The agent's own life (REGISTERED / DRAINING) is its :mod:`.agent_fsm` machine; this module
keeps the drain's configuration and moves it to DRAINED.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from mesonb.clock import Clock
from mesonb.protocol.agent import KillTask, MasterCommand, MasterCommandType, Notice
from mesonb.protocol.errors import BadRequest, NotFound
from mesonb.protocol.states import Reason, TaskState

from .agent_fsm import AgentState
from .agents import AgentMessages
from .book import Agent, Book
from .drain_info import DrainInfo, capped_kill_policy
from .settings import AGENTS, SettingsHost, save

log = logging.getLogger(__name__)


class DrainHost(SettingsHost, Protocol):
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
        # agent id -> its record from the registry, until it re-registers (a new leader)
        self.recovered: dict[str, dict[str, Any]] = {}
        self._kill_after_admission: set[str] = set()

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
        self.persist()

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
        if agent.state is not AgentState.DRAINING:  # not connected now: once it is back
            self._kill_after_admission.add(agent.id)
        self.master.rescind_agent_offers(agent)
        self.persist()
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
        self.persist()
        log.info("agent %s (%s) reactivated by an operator", agent.id, agent.hostname)

    # -- the registry ------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        """The ``agents`` setting: each deactivated agent and its drain."""
        out = {agent_id: rec for agent_id, rec in self.recovered.items()}
        for agent in self.master.book.agents.values():
            if agent.deactivated or agent.drain is not None:
                out[agent.id] = {"deactivated": agent.deactivated,
                                 "drain": agent.drain.to_json() if agent.drain else None}
        return {"agents": out}

    def restore(self, record: dict[str, Any]) -> None:
        self.recovered = {str(k): v for k, v in (record.get("agents") or {}).items()
                          if isinstance(v, dict)}

    def persist(self) -> None:
        save(self.master, AGENTS)

    def adopt(self, agent: Agent) -> None:
        """An agent (re-)registers: a deactivation or drain kept for it applies again."""
        kept = self.recovered.pop(agent.id, None)
        if kept is None:
            return
        agent.deactivated = bool(kept.get("deactivated", True))
        drain = kept.get("drain")
        if isinstance(drain, dict):
            config = drain.get("config") or {}
            grace = (config.get("max_grace_period") or {}).get("nanoseconds")
            agent.drain = DrainInfo(grace if isinstance(grace, int) else None,
                                    bool(config.get("mark_gone", False)),
                                    "DRAINED" if drain.get("state") == "DRAINED" else "DRAINING")
            agent.lifecycle.draining = True  # its registration admits it as DRAINING
            if agent.drain.state == "DRAINING":
                self.draining.add(agent.id)
                self._kill_after_admission.add(agent.id)
        log.info("agent %s (%s) re-registered deactivated%s", agent.id, agent.hostname,
                 f", its drain {agent.drain.state}" if agent.drain else "")

    def _kill_reported_tasks(self) -> None:
        for agent_id in list(self._kill_after_admission):
            agent = self.master.book.agents.get(agent_id)
            if agent is None or agent.drain is None:
                self._kill_after_admission.discard(agent_id)
            elif agent.state is AgentState.DRAINING and agent.send is not None:
                self._kill_after_admission.discard(agent_id)
                for (framework_id, task_id), task in agent.tasks.items():
                    self.master.send_to_agent(agent, MasterCommand(
                        type=MasterCommandType.KILL_TASK, kill_task=KillTask(
                            framework_id=framework_id, task_id=task_id,
                            kill_policy=capped_kill_policy(task.info.kill_policy, agent.drain))))

    def tick(self) -> None:
        """Draining agents with no task left are DRAINED (and gone, with ``mark_gone``)."""
        if self._kill_after_admission:
            self._kill_reported_tasks()
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
            self.persist()
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
