"""The life of one app instance (one Mesos task) as Marathon sees it: events in, actions out.

::

      launch ──► STAGING ─► STARTING ─► RUNNING ──────────┐
                    │  (ACTIVE: any of the three)          │ kill / unhealthy
                    │ update UNREACHABLE      update ACTIVE ▼
                    ├──────────────► UNREACHABLE ◄──── KILLING
                    │ terminal update    │ terminal      │ terminal update
                    ▼                    ▼               ▼
                 FAILED/FINISHED/KILLED/ERROR/LOST/GONE (expunged; the app
                 controller relaunches what is missing, after the app's backoff)

The table :data:`TRANSITIONS` maps ``(kind of state, event)`` to the next state (``None``:
the state the update reports) and the actions the owner carries out. A failure the
operator did not ask for (a task that failed, finished, was lost, or was killed without a
kill from us, or killed because its health checks failed) is ``RECORD_FAILURE``: it
becomes the app's ``lastTaskFailure`` and grows the app's launch delay.
"""

from __future__ import annotations

import enum


class InstanceState(enum.Enum):
    STAGING = "TASK_STAGING"
    STARTING = "TASK_STARTING"
    RUNNING = "TASK_RUNNING"
    KILLING = "TASK_KILLING"
    UNREACHABLE = "TASK_UNREACHABLE"
    FINISHED = "TASK_FINISHED"
    FAILED = "TASK_FAILED"
    KILLED = "TASK_KILLED"
    ERROR = "TASK_ERROR"
    LOST = "TASK_LOST"
    DROPPED = "TASK_DROPPED"
    GONE = "TASK_GONE"
    GONE_BY_OPERATOR = "TASK_GONE_BY_OPERATOR"
    UNKNOWN = "TASK_UNKNOWN"

    @property
    def kind(self) -> Kind:
        return _KIND_OF[self._value_]

    @property
    def terminal(self) -> bool:
        # by the value string: hashing an enum member runs Python code, and this is asked
        # of every instance of an app on every status update
        return _KIND_OF[self._value_] is Kind.TERMINAL


class Kind(enum.Enum):
    """States grouped the way the table reads them."""

    ACTIVE = "active"  # staging, starting, running
    KILLING = "killing"
    UNREACHABLE = "unreachable"
    TERMINAL = "terminal"


_KIND = {s: Kind.TERMINAL for s in InstanceState}
_KIND.update({InstanceState.STAGING: Kind.ACTIVE, InstanceState.STARTING: Kind.ACTIVE,
              InstanceState.RUNNING: Kind.ACTIVE, InstanceState.KILLING: Kind.KILLING,
              InstanceState.UNREACHABLE: Kind.UNREACHABLE})
_KIND_OF = {s.value: kind for s, kind in _KIND.items()}


class Event(enum.Enum):
    UPDATE_ACTIVE = "update-active"  # Mesos reports STAGING, STARTING or RUNNING
    UPDATE_KILLING = "update-killing"
    UPDATE_UNREACHABLE = "update-unreachable"
    UPDATE_TERMINAL = "update-terminal"
    KILL = "kill"  # the operator (scale down, delete, restart) wants it gone
    UNHEALTHY = "unhealthy"  # health checks failed maxConsecutiveFailures times


class Action(enum.Enum):
    EMIT = "emit"  # a status_update_event (and instance_changed_event) to the event stream
    RECORD_FAILURE = "record-failure"  # lastTaskFailure, and the app's backoff grows
    EXPUNGE = "expunge"  # forget the instance
    SEND_KILL = "send-kill"  # a KILL call to the master (with the app's grace period)
    EMIT_UNHEALTHY_KILL = "emit-unhealthy-kill"  # unhealthy_task_kill_event


A = Action
TRANSITIONS: dict[tuple[Kind, Event], tuple[InstanceState | None, tuple[Action, ...]]] = {
    (Kind.ACTIVE, Event.UPDATE_ACTIVE): (None, (A.EMIT,)),
    (Kind.ACTIVE, Event.UPDATE_KILLING): (InstanceState.KILLING, (A.EMIT,)),
    (Kind.ACTIVE, Event.UPDATE_UNREACHABLE): (InstanceState.UNREACHABLE, (A.EMIT,)),
    (Kind.ACTIVE, Event.UPDATE_TERMINAL): (None, (A.EMIT, A.RECORD_FAILURE, A.EXPUNGE)),
    (Kind.ACTIVE, Event.KILL): (InstanceState.KILLING, (A.SEND_KILL,)),
    (Kind.ACTIVE, Event.UNHEALTHY): (InstanceState.KILLING,
                                     (A.EMIT_UNHEALTHY_KILL, A.RECORD_FAILURE, A.SEND_KILL)),
    (Kind.KILLING, Event.UPDATE_ACTIVE): (InstanceState.KILLING, ()),
    (Kind.KILLING, Event.UPDATE_KILLING): (InstanceState.KILLING, (A.EMIT,)),
    (Kind.KILLING, Event.UPDATE_UNREACHABLE): (InstanceState.UNREACHABLE, (A.EMIT,)),
    (Kind.KILLING, Event.UPDATE_TERMINAL): (None, (A.EMIT, A.EXPUNGE)),
    (Kind.KILLING, Event.KILL): (InstanceState.KILLING, (A.SEND_KILL,)),
    (Kind.KILLING, Event.UNHEALTHY): (InstanceState.KILLING, ()),
    (Kind.UNREACHABLE, Event.UPDATE_ACTIVE): (None, (A.EMIT,)),
    (Kind.UNREACHABLE, Event.UPDATE_KILLING): (InstanceState.KILLING, (A.EMIT,)),
    (Kind.UNREACHABLE, Event.UPDATE_UNREACHABLE): (InstanceState.UNREACHABLE, ()),
    (Kind.UNREACHABLE, Event.UPDATE_TERMINAL): (None, (A.EMIT, A.EXPUNGE)),
    (Kind.UNREACHABLE, Event.KILL): (InstanceState.KILLING, (A.SEND_KILL,)),
    (Kind.UNREACHABLE, Event.UNHEALTHY): (InstanceState.UNREACHABLE, ()),
}
"""``(kind of the current state, event) -> (next state or None for the reported one,
actions)``. A terminal instance ignores every event (it is expunged)."""


def event_of(reported: InstanceState) -> Event:
    """The table's event for a status update reporting ``reported``."""
    kind = reported.kind
    return {Kind.ACTIVE: Event.UPDATE_ACTIVE, Kind.KILLING: Event.UPDATE_KILLING,
            Kind.UNREACHABLE: Event.UPDATE_UNREACHABLE,
            Kind.TERMINAL: Event.UPDATE_TERMINAL}[kind]


def transition(state: InstanceState, event: Event, reported: InstanceState | None = None
               ) -> tuple[InstanceState, tuple[Action, ...]]:
    """The next state and the actions for ``event`` in ``state``.

    >>> transition(InstanceState.RUNNING, Event.KILL)
    (<InstanceState.KILLING: 'TASK_KILLING'>, (<Action.SEND_KILL: 'send-kill'>,))
    """
    if state.terminal:
        return state, ()
    target, actions = TRANSITIONS[(state.kind, event)]
    if target is None:
        if reported is None:
            raise ValueError(f"{event.value} needs the reported state")
        target = reported
    if event is Event.UPDATE_TERMINAL and reported is InstanceState.KILLED \
            and state.kind is Kind.KILLING:
        actions = tuple(a for a in actions if a is not A.RECORD_FAILURE)
    return target, actions
