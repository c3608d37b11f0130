"""An agent's life, as the master sees it: a pure state machine, one per agent.

A REGISTER on a link makes the agent REGISTERING while its admission is written to the
registry (nothing to write: admitted at once); then it is REGISTERED (admitted, offered).
Its link closing makes it DISCONNECTED until it registers again. Missing
``max_agent_ping_timeouts`` PONGs in a row (in any of those states) makes it UNREACHABLE:
its tasks are reported unreachable once that mark is in the registry. An agent shutting down
(UNREGISTER) or marked gone by an operator is GONE for good. An admitted agent being drained
is DRAINING: not offered, its tasks killed, until it is reactivated (it stays draining when
it re-registers)::

                 Register, write pending              Admitted (or Register with
      (new) ──► REGISTERING ──────────────────────────────── nothing to write)
                  │    ▲                                         │
      LinkClosed, │    │ Register (from any live state)          ▼
      write failed▼    │                         ┌────────── REGISTERED ◄──────┐
               DISCONNECTED ◄───── LinkClosed ───┤              │ Drain        │ Reactivate
                                                 │              ▼              │
                                                 └─────────── DRAINING ────────┘

      missed pings ≥ limit, from any state above ──► UNREACHABLE
                         (frameworks are told once the mark is in the registry)
      Remove (UNREGISTER, or marked gone), from any state ──► GONE (terminal)

Transitions (``admitted`` is REGISTERED, or DRAINING for an agent being drained):

============  ====================================  ============  ==========================
from          event                                 to            actions
============  ====================================  ============  ==========================
(none)        a REGISTER with a new or unknown id   REGISTERING   (none)
any live      Register(written=False)               REGISTERING   CloseLink, RescindOffers
                                                                  (when it was admitted)
any live      Register(written=True)                admitted      CloseLink, Admit
REGISTERING   Admitted                              admitted      Admit
REGISTERING   AdmissionFailed                       DISCONNECTED  CloseLink, (Forget if new)
REGISTERING   LinkClosed                            DISCONNECTED  (none)
REGISTERED    LinkClosed                            DISCONNECTED  RescindOffers
DRAINING      LinkClosed                            DISCONNECTED  RescindOffers
reachable     PingRound, pings missed < limit       unchanged     Ping (when admitted)
reachable     PingRound, pings missed ≥ limit       UNREACHABLE   RescindOffers, MarkUnreachable,
                                                                  CloseLink, WriteUnreachable
UNREACHABLE   UnreachableWritten(ok)                UNREACHABLE   TellUnreachable
UNREACHABLE   UnreachableWritten(failed)            UNREACHABLE   (none: retried next round)
UNREACHABLE   PingRound, the mark's write failed    UNREACHABLE   WriteUnreachable
REGISTERED    Drain                                 DRAINING      RescindOffers, KillTasks
DRAINING      Reactivate                            REGISTERED    Reoffer
any live      Remove                                GONE          RescindOffers, RemoveAgent
GONE          any                                   GONE          (none)
============  ====================================  ============  ==========================

``live``: any state but GONE; ``reachable``: REGISTERING, REGISTERED, DISCONNECTED or
DRAINING. A PONG (any live state) resets the missed count. Time (``now``, the master's
monotonic clock) comes in with the events, never read here.
"""

from __future__ import annotations

import dataclasses
import enum
import logging

from mesonb.protocol.states import Reason, TaskState

log = logging.getLogger(__name__)


class AgentState(enum.StrEnum):
    REGISTERING = "REGISTERING"  # its admission is being written; not offered, commands held
    REGISTERED = "REGISTERED"  # admitted: connected and answering pings; offered
    DISCONNECTED = "DISCONNECTED"  # link closed; waiting for it to come back
    UNREACHABLE = "UNREACHABLE"  # missed too many pings; tasks reported unreachable
    DRAINING = "DRAINING"  # admitted, but not offered and its tasks are being killed
    GONE = "GONE"  # shut down or marked gone: forgotten


REACHABLE = frozenset({AgentState.REGISTERING, AgentState.REGISTERED, AgentState.DISCONNECTED,
                       AgentState.DRAINING})
ADMITTED = frozenset({AgentState.REGISTERED, AgentState.DRAINING})


# -- events ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Register:
    """A REGISTER on a new link; ``written``: its admission needs no registry write (or
    none is kept), so it is admitted at once."""

    now: float
    written: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Admitted:
    """The registry write of its admission finished."""


@dataclasses.dataclass(frozen=True, slots=True)
class AdmissionFailed:
    """The registry write of its admission failed; ``new``: nothing else knows its id."""

    new: bool


@dataclasses.dataclass(frozen=True, slots=True)
class LinkClosed:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Pong:
    now: float


@dataclasses.dataclass(frozen=True, slots=True)
class PingRound:
    """A ping round at ``now``; the previous one was at ``since``."""

    now: float
    since: float
    limit: int


@dataclasses.dataclass(frozen=True, slots=True)
class UnreachableWritten:
    ok: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Drain:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Reactivate:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Remove:
    """It shut down (UNREGISTER) or an operator marked it gone; its tasks end in
    ``task_state`` for ``reason``."""

    why: str
    task_state: TaskState
    reason: Reason


Event = (Register | Admitted | AdmissionFailed | LinkClosed | Pong | PingRound
         | UnreachableWritten | Drain | Reactivate | Remove)


# -- actions -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class CloseLink:
    """Close the agent's current link, if it has one."""


@dataclasses.dataclass(frozen=True, slots=True)
class RescindOffers:
    """Take back the outstanding offers on the agent."""


@dataclasses.dataclass(frozen=True, slots=True)
class Admit:
    """Send REGISTERED (and what was held for it); offer the agent from now on."""


@dataclasses.dataclass(frozen=True, slots=True)
class Forget:
    """Drop the record: the agent registers afresh and gets a new id."""


@dataclasses.dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class MarkUnreachable:
    """Its tasks become TASK_UNREACHABLE, its resources leave the cluster's total."""


@dataclasses.dataclass(frozen=True, slots=True)
class WriteUnreachable:
    """Write the unreachable mark to the registry (no registry: it is written)."""


@dataclasses.dataclass(frozen=True, slots=True)
class TellUnreachable:
    """Frameworks hear of it: their tasks' TASK_UNREACHABLE (or LOST), then FAILURE."""


@dataclasses.dataclass(frozen=True, slots=True)
class KillTasks:
    """Kill every task on the agent (draining)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Reoffer:
    """Its resources may be offered again."""


@dataclasses.dataclass(frozen=True, slots=True)
class RemoveAgent:
    """Remove it for good: its tasks end, its record goes, frameworks get FAILURE."""

    why: str
    task_state: TaskState
    reason: Reason
    was_unreachable: bool


Action = (CloseLink | RescindOffers | Admit | Forget | Ping | MarkUnreachable
          | WriteUnreachable | TellUnreachable | KillTasks | Reoffer | RemoveAgent)

S = AgentState
TRANSITIONS: dict[tuple[AgentState | None, AgentState], str] = {
    (None, S.REGISTERING): "a REGISTER from an agent the master does not hold",
    **{(s, S.REGISTERING): "REGISTER, admission being written" for s in S if s is not S.GONE},
    **{(s, S.REGISTERED): "REGISTER, nothing to write" for s in S if s is not S.GONE},
    **{(s, S.DRAINING): "REGISTER of a draining agent, nothing to write"
       for s in S if s is not S.GONE},
    (S.REGISTERING, S.REGISTERED): "admission written",
    (S.REGISTERING, S.DISCONNECTED): "link closed, or the admission's write failed",
    (S.REGISTERED, S.DISCONNECTED): "link closed",
    (S.DRAINING, S.DISCONNECTED): "link closed",
    **{(s, S.UNREACHABLE): "missed too many pings" for s in REACHABLE},
    (S.REGISTERED, S.DRAINING): "drained",
    (S.DRAINING, S.REGISTERED): "reactivated",
    **{(s, S.GONE): "shut down, or marked gone" for s in S if s is not S.GONE},
}

class AgentLifecycle:
    """One agent's state: ``handle(event) -> actions``."""

    __slots__ = ("agent_id", "draining", "last_pong", "pings_missed", "state",
                 "unreachable_mark")

    def __init__(self, agent_id: str, now: float = 0.0) -> None:
        self.agent_id = agent_id
        self.state = AgentState.REGISTERING
        self.draining = False  # stays across re-registrations, until Reactivate
        self.pings_missed = 0
        self.last_pong = now
        # While UNREACHABLE: its mark's registry write is "pending", "failed" (retried at
        # the next ping round) or "written" (frameworks have been told).
        self.unreachable_mark = "pending"

    @classmethod
    def unreachable(cls, agent_id: str) -> AgentLifecycle:
        """An agent a new leader knows as unreachable (from the registry, or because it did
        not re-register in time)."""
        machine = cls(agent_id)
        machine.state, machine.unreachable_mark = AgentState.UNREACHABLE, "written"
        return machine

    def _go(self, state: AgentState) -> None:
        assert (self.state, state) in TRANSITIONS, (self.state, state)
        if state is not self.state:
            log.debug("agent %s: %s -> %s (%s)", self.agent_id, self.state, state,
                      TRANSITIONS[self.state, state])
        self.state = state

    def _admitted(self) -> AgentState:
        return AgentState.DRAINING if self.draining else AgentState.REGISTERED

    def handle(self, event: Event) -> list[Action]:
        state = self.state
        if state is AgentState.GONE:
            return []
        if isinstance(event, PingRound):
            return self._ping_round(event)
        if isinstance(event, Pong):
            self.pings_missed, self.last_pong = 0, event.now
            return []
        if isinstance(event, Register):
            self.pings_missed, self.last_pong = 0, event.now
            if event.written:
                self._go(self._admitted())
                return [CloseLink(), Admit()]
            self._go(AgentState.REGISTERING)
            return [CloseLink(), RescindOffers()] if state in ADMITTED else [CloseLink()]
        if isinstance(event, Admitted):
            if state is not AgentState.REGISTERING:
                return []
            self._go(self._admitted())
            return [Admit()]
        if isinstance(event, AdmissionFailed):
            if state is not AgentState.REGISTERING:
                return []
            self._go(AgentState.DISCONNECTED)
            return [CloseLink(), Forget()] if event.new else [CloseLink()]
        if isinstance(event, LinkClosed):
            if state is AgentState.REGISTERING:
                self._go(AgentState.DISCONNECTED)
                return []
            if state in ADMITTED:
                self._go(AgentState.DISCONNECTED)
                return [RescindOffers()]
            return []
        if isinstance(event, UnreachableWritten):
            if state is not AgentState.UNREACHABLE or self.unreachable_mark != "pending":
                return []
            if not event.ok:
                self.unreachable_mark = "failed"  # written again at the next ping round
                return []
            self.unreachable_mark = "written"
            return [TellUnreachable()]
        if isinstance(event, Drain):
            self.draining = True
            if state is AgentState.REGISTERED:
                self._go(AgentState.DRAINING)
                return [RescindOffers(), KillTasks()]
            return []
        if isinstance(event, Reactivate):
            self.draining = False
            if state is AgentState.DRAINING:
                self._go(AgentState.REGISTERED)
                return [Reoffer()]
            return []
        if isinstance(event, Remove):
            self._go(AgentState.GONE)
            return [RescindOffers(), RemoveAgent(event.why, event.task_state, event.reason,
                                                 state is AgentState.UNREACHABLE)]
        raise TypeError(f"unknown agent event {event!r}")

    def _ping_round(self, event: PingRound) -> list[Action]:
        state = self.state
        if state is AgentState.UNREACHABLE:
            if self.unreachable_mark != "failed":
                return []
            self.unreachable_mark = "pending"
            return [WriteUnreachable()]
        if self.last_pong < event.since:
            self.pings_missed += 1
            if self.pings_missed >= event.limit:
                self._go(AgentState.UNREACHABLE)
                self.unreachable_mark = "pending"
                return [RescindOffers(), MarkUnreachable(), CloseLink(), WriteUnreachable()]
        if state is AgentState.REGISTERED or state is AgentState.DRAINING:
            return [Ping()]
        return []
