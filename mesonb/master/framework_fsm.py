"""A framework's life, as the master sees it: a pure state machine, one per framework.

A SUBSCRIBE makes a framework SUBSCRIBED on an event stream. When the stream closes the
framework is DISCONNECTED and failing over: its scheduler has ``failover_timeout`` seconds
(FrameworkInfo) to subscribe again before the master tears it down. A framework a new
leader knows only from the registry or from an agent's report is INACTIVE, with the same
kind of deadline, until its scheduler subscribes. A TEARDOWN (from the framework or an
operator) or an elapsed failover timeout ends it: TORN_DOWN, and a SUBSCRIBE with its id
is refused from then on::

                      SUBSCRIBE on a new stream (the old one gets ERROR and closes)
                             ┌────┐
                             ▼    │    stream closes, failover_timeout > 0
      first SUBSCRIBE ──► SUBSCRIBED ─────────────────────────────► DISCONNECTED
                           ▲   ▲  │                                    │   │
                 SUBSCRIBE │   └──┼─────────── SUBSCRIBE ──────────────┘   │
                           │      │ TEARDOWN, or stream closes             │ TEARDOWN, or
      recovered ──────► INACTIVE  │ with failover_timeout 0                │ Tick(now ≥
                           │      ▼                                        │ deadline)
                           └──► TORN_DOWN ◄────────────────────────────────┘
         TEARDOWN, or Tick(now ≥ deadline)

Transitions:

============  ==================================  ============  ===========================
from          event                               to            actions
============  ==================================  ============  ===========================
(none)        Subscribe(stream)                   SUBSCRIBED    (none)
(none)        recovered(deadline)                 INACTIVE      (none)
SUBSCRIBED    Subscribe(new stream)               SUBSCRIBED    EndStream("Framework
                                                                failed over")
DISCONNECTED  Subscribe(stream)                   SUBSCRIBED    (none; deadline cleared)
INACTIVE      Subscribe(stream)                   SUBSCRIBED    (none; deadline cleared)
SUBSCRIBED    StreamClosed(its stream, timeout>0) DISCONNECTED  RescindOffers, Announce
SUBSCRIBED    StreamClosed(its stream, timeout≤0) TORN_DOWN     RescindOffers, Remove
SUBSCRIBED    Teardown(reason)                    TORN_DOWN     Remove(reason)
DISCONNECTED  Teardown(reason)                    TORN_DOWN     Remove(reason)
INACTIVE      Teardown(reason)                    TORN_DOWN     Remove(reason)
DISCONNECTED  Tick(now ≥ deadline)                TORN_DOWN     Remove("failover timeout
                                                                elapsed")
INACTIVE      Tick(now ≥ deadline)                TORN_DOWN     Remove("failover timeout
                                                                elapsed")
TORN_DOWN     Subscribe                           TORN_DOWN     Refuse("Framework X has
                                                                been removed")
any           StreamClosed(an older stream)       unchanged     (none)
any           Tick(now < deadline)                unchanged     (none)
TORN_DOWN     StreamClosed / Teardown / Tick      unchanged     (none)
============  ==================================  ============  ===========================

Time (``now``, the master's monotonic clock) comes in with the events, never read here.
"""

from __future__ import annotations

import dataclasses
import enum
import logging

log = logging.getLogger(__name__)


class FrameworkState(enum.StrEnum):
    SUBSCRIBED = "SUBSCRIBED"  # on a live event stream; offered
    DISCONNECTED = "DISCONNECTED"  # stream closed; failing over until the deadline
    INACTIVE = "INACTIVE"  # recovered after a master failover; not subscribed yet
    TORN_DOWN = "TORN_DOWN"  # removed for good


# -- events ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Subscribe:
    """A SUBSCRIBE for this framework was accepted on the stream ``stream_id``."""

    stream_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class StreamClosed:
    """The SUBSCRIBE stream ``stream_id`` closed at ``now``."""

    stream_id: str
    now: float
    failover_timeout: float


@dataclasses.dataclass(frozen=True, slots=True)
class Teardown:
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Tick:
    now: float


Event = Subscribe | StreamClosed | Teardown | Tick


# -- actions -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class EndStream:
    """Send ERROR(``message``) on the framework's current stream, then close it."""

    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class RescindOffers:
    """Take its outstanding offers back, without telling it (it is not listening)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Announce:
    """Tell operator subscribers the framework changed (FRAMEWORK_UPDATED)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Remove:
    """Tear the framework down: kill its tasks, forget its offers, close its stream."""

    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Refuse:
    """Answer the SUBSCRIBE with ERROR(``message``) and close the new stream."""

    message: str


Action = EndStream | RescindOffers | Announce | Remove | Refuse

TRANSITIONS: dict[tuple[FrameworkState | None, FrameworkState], str] = {
    (None, FrameworkState.SUBSCRIBED): "first SUBSCRIBE",
    (None, FrameworkState.INACTIVE): "recovered by a new leader",
    (FrameworkState.SUBSCRIBED, FrameworkState.SUBSCRIBED): "SUBSCRIBE on a new stream",
    (FrameworkState.DISCONNECTED, FrameworkState.SUBSCRIBED): "subscribed again in time",
    (FrameworkState.INACTIVE, FrameworkState.SUBSCRIBED): "subscribed to the new leader",
    (FrameworkState.SUBSCRIBED, FrameworkState.DISCONNECTED): "stream closed; failing over",
    (FrameworkState.SUBSCRIBED, FrameworkState.TORN_DOWN): "TEARDOWN, or closed with no "
                                                            "failover timeout",
    (FrameworkState.DISCONNECTED, FrameworkState.TORN_DOWN): "TEARDOWN or failover timeout",
    (FrameworkState.INACTIVE, FrameworkState.TORN_DOWN): "TEARDOWN or failover timeout",
    (FrameworkState.TORN_DOWN, FrameworkState.TORN_DOWN): "SUBSCRIBE after removal: refused",
}

_ELAPSED = "failover timeout elapsed"
_CLOSED_NO_FAILOVER = "disconnected with failover_timeout 0"


class FrameworkLifecycle:
    """One framework's state: ``handle(event) -> actions``.

    ``deadline`` is the failover deadline (monotonic seconds) while DISCONNECTED or
    INACTIVE; ``stream_id`` the stream it subscribed on last (None: never, on this master).
    """

    __slots__ = ("deadline", "framework_id", "state", "stream_id")

    def __init__(self, framework_id: str, stream_id: str | None = None) -> None:
        self.framework_id = framework_id
        self.state = FrameworkState.SUBSCRIBED
        self.stream_id = stream_id
        self.deadline: float | None = None

    @classmethod
    def recovered(cls, framework_id: str, deadline: float) -> FrameworkLifecycle:
        """A framework a new leader knows of but that has not subscribed to it yet."""
        machine = cls(framework_id)
        machine.state, machine.deadline = FrameworkState.INACTIVE, deadline
        return machine

    def _go(self, state: FrameworkState) -> None:
        assert (self.state, state) in TRANSITIONS, (self.state, state)
        if state is not self.state:
            log.debug("framework %s: %s -> %s (%s)", self.framework_id, self.state, state,
                      TRANSITIONS[self.state, state])
        self.state = state

    def handle(self, event: Event) -> list[Action]:
        state = self.state
        if isinstance(event, Tick):
            if self.deadline is not None and event.now >= self.deadline:
                return self._remove(_ELAPSED)
            return []
        if isinstance(event, Subscribe):
            if state is FrameworkState.TORN_DOWN:
                self._go(state)
                return [Refuse(f"Framework {self.framework_id} has been removed")]
            actions: list[Action] = []
            if state is FrameworkState.SUBSCRIBED and self.stream_id is not None:
                actions.append(EndStream("Framework failed over"))
            self._go(FrameworkState.SUBSCRIBED)
            self.stream_id, self.deadline = event.stream_id, None
            return actions
        if isinstance(event, StreamClosed):
            if state is not FrameworkState.SUBSCRIBED or event.stream_id != self.stream_id:
                return []  # an older stream, already replaced
            if event.failover_timeout <= 0:
                return [RescindOffers(), *self._remove(_CLOSED_NO_FAILOVER)]
            self._go(FrameworkState.DISCONNECTED)
            self.deadline = event.now + event.failover_timeout
            return [RescindOffers(), Announce()]
        if isinstance(event, Teardown):
            return self._remove(event.reason)
        raise TypeError(f"unknown framework event {event!r}")

    def _remove(self, reason: str) -> list[Action]:
        if self.state is FrameworkState.TORN_DOWN:
            return []
        self._go(FrameworkState.TORN_DOWN)
        self.deadline = None
        return [Remove(reason)]
