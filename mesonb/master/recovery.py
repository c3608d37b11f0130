"""A new leader's recovery: what the registry says, taken into a fresh book.

Unreachable agents come back UNREACHABLE; gone ones stay gone; admitted agents wait in
:attr:`Recovery.agents` until they re-register or ``agent_reregister_timeout`` passes
(then they are unreachable: :meth:`Recovery.expire`); frameworks come back INACTIVE, with a
failover deadline no earlier than that timeout, so their schedulers can re-subscribe.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

from mesonb.clock import Clock
from mesonb.protocol.mesos import AgentInfo, FrameworkInfo
from mesonb.protocol.resources import Resources

from .agent_fsm import AgentLifecycle
from .book import Agent, Book, Framework
from .framework_fsm import FrameworkLifecycle
from .registry import RegistryState
from .reservations import ledger_from_agent

log = logging.getLogger(__name__)


class Recovery:
    """Recovers ``book`` from a registry state; ``timeout``: agent_reregister_timeout."""

    def __init__(self, book: Book, clock: Clock, timeout: float,
                 counters: collections.Counter[str]) -> None:
        self.book = book
        self.clock = clock
        self.timeout = timeout
        self.counters = counters
        # agent id -> AgentInfo JSON: in the registry, not re-registered since recovery
        self.agents: dict[str, dict[str, Any]] = {}
        self.deadline: float | None = None  # monotonic: when those become unreachable

    def recover(self, state: RegistryState) -> None:
        """Take in the registry's agents and frameworks.

        Admitted agents wait in :attr:`agents` until they re-register or
        ``agent_reregister_timeout`` passes; frameworks come back inactive, with a failover
        deadline no earlier than that timeout, so their schedulers can re-subscribe.
        """
        book, now, mono = self.book, self.clock.time(), self.clock.monotonic()
        timeout = self.timeout
        book.gone_agents.update(state.gone)
        for agent_id, (info, when) in state.unreachable.items():
            if agent_id not in book.agents:
                agent = self._agent_from_registry(agent_id, info)
                agent.lifecycle = AgentLifecycle.unreachable(agent_id)
                agent.unreachable_time = when
                book.agents[agent_id] = agent
        for agent_id, info in state.admitted.items():
            if agent_id not in book.agents and agent_id not in book.gone_agents:
                self.agents[agent_id] = info
        if self.agents:
            self.deadline = mono + timeout
        for framework_id, record in state.frameworks.items():
            if framework_id in book.frameworks or framework_id in book.completed_frameworks:
                continue
            try:
                framework_info = FrameworkInfo.from_json(record)
            except Exception as exc:  # a record we cannot read must not stop recovery
                log.warning("registry: unreadable framework %s: %r", framework_id, exc)
                continue
            framework_info.id = framework_id
            framework = Framework(framework_id, framework_info, registered_time=now)
            framework.lifecycle = FrameworkLifecycle.recovered(
                framework_id, mono + max(framework_info.failover_timeout or 0.0, timeout))
            book.add_framework(framework)
        log.info("recovered from the registry: %d agents to re-register, %d unreachable, "
                 "%d gone, %d frameworks", len(self.agents), len(state.unreachable),
                 len(state.gone), len(state.frameworks))

    def _agent_from_registry(self, agent_id: str, info_json: dict[str, Any]) -> Agent:
        info = AgentInfo.from_json(info_json)
        info.id = agent_id
        total = Resources.from_json(info.resources or [], "agent_info.resources")
        agent = Agent(agent_id, info, total, "", registered_time=self.clock.time())
        agent.ledger = ledger_from_agent(info.resources)  # its reservations and volumes
        return agent

    def expire(self) -> list[tuple[str, dict[str, Any], float]]:
        """agent_reregister_timeout passed: recovered agents not back are unreachable.
        Returns them (id, AgentInfo JSON, when) for the registry to mark unreachable."""
        marked: list[tuple[str, dict[str, Any], float]] = []
        self.deadline = None
        now = self.clock.time()
        for agent_id, info in list(self.agents.items()):
            del self.agents[agent_id]
            try:
                agent = self._agent_from_registry(agent_id, info)
            except Exception as exc:
                log.warning("registry: unreadable agent %s: %r", agent_id, exc)
                continue
            agent.lifecycle = AgentLifecycle.unreachable(agent_id)
            agent.unreachable_time = now
            self.book.agents[agent_id] = agent
            self.counters["recovery_slave_removals"] += 1
            log.warning("agent %s (%s) did not re-register within %gs of the failover: "
                        "unreachable", agent_id, agent.hostname,
                        self.timeout)
            marked.append((agent_id, info, now))
        return marked
