"""Reliable status updates: the agent's task status update manager, as a pure state machine.

Mesos (src/slave/task_status_update_manager.cpp) keeps one *stream* of updates per task.
Updates are recorded (checkpointed when the framework asked for it) and forwarded to the
master; only the head of each stream is in flight. The head is re-sent with back-off
(10 s doubling to 10 min) until the framework's ACKNOWLEDGE for its uuid comes back through
the master; then the next update goes out. Delivery is at least once.

This module holds no sockets, timers or files: events come in (:meth:`update`,
:meth:`acknowledge`, :meth:`tick`, :meth:`pause`, :meth:`resume`, :meth:`cleanup`) with the
time as a value, and :class:`Action` values come out for the agent to carry out.

One stream::

                 update(u)                    update(u2): queue behind the head
     (none) ──────────────► IN_FLIGHT(head=u) ◄───────────────┐
                              │  │   ▲   │ tick(now ≥ due):    │
          ack(head), queue    │  │   │   │ Forward(head),      │
          empty, head not     │  │   └───┘ interval doubles    │
          terminal            ▼  │ ack(head), queue non-empty:  │
                            IDLE │ Forward(next) ──────────────┘
                   update(u) ──► │
                                 │ ack(head), head terminal
                                 ▼
                              CLOSED (stream forgotten; StreamClosed)

Transitions:

=============  ===============================  ==============  ==========================
from           event                            to              actions
=============  ===============================  ==============  ==========================
(none)/IDLE    update(u), uuid new              IN_FLIGHT(u)    Checkpoint, Forward(u)*
IN_FLIGHT      update(u), uuid new              IN_FLIGHT       Checkpoint (queued)
any            update(u), uuid seen before      unchanged       Dropped("duplicate")
IN_FLIGHT(h)   ack(h.uuid), more queued         IN_FLIGHT(next) Checkpoint, Acknowledged,
                                                                Forward(next)*
IN_FLIGHT(h)   ack(h.uuid), none, h non-term.   IDLE            Checkpoint, Acknowledged
IN_FLIGHT(h)   ack(h.uuid), none, h terminal    CLOSED          Checkpoint, Acknowledged,
                                                                StreamClosed
any            ack(other uuid) / unknown task   unchanged       Dropped("unexpected ack")
IN_FLIGHT      tick(now ≥ due)                  IN_FLIGHT       Forward(head)*, interval*2
any            pause()                          unchanged       (no forwarding until resume)
IN_FLIGHT      resume(now)                      IN_FLIGHT       Forward(head), interval=min
any            cleanup(framework)               CLOSED          (streams forgotten)
(none)         recover(journal)                 IN_FLIGHT/IDLE  (none: resume() forwards)
=============  ===============================  ==============  ==========================

``*`` only while not paused. The manager is paused until the agent is registered with a
master and whenever the master connection is lost; :meth:`resume` re-sends every head at
once, as Mesos does on re-registration.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from mesonb.protocol.errors import BadRequest
from mesonb.protocol.mesos import TaskStatus
from mesonb.protocol.states import TaskState

log = logging.getLogger(__name__)

StreamKey = tuple[str, str]  # (framework_id, task_id)


# -- actions ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Forward:
    """Send ``status`` to the master as STATUS_UPDATE (with the task's latest state)."""

    framework_id: str
    status: TaskStatus
    latest_state: TaskState


@dataclass(frozen=True)
class Checkpoint:
    """Append ``record`` as one JSON line to the task's ``task.updates`` file."""

    framework_id: str
    task_id: str
    record: dict[str, Any]


@dataclass(frozen=True)
class Acknowledged:
    """The framework acknowledged ``status``."""

    framework_id: str
    status: TaskStatus


@dataclass(frozen=True)
class StreamClosed:
    """The task's terminal update was acknowledged; its stream is gone."""

    framework_id: str
    task_id: str
    state: TaskState


@dataclass(frozen=True)
class Dropped:
    """An update or acknowledgement that changed nothing, and why (for logs and metrics)."""

    framework_id: str
    task_id: str
    why: str


Action = Forward | Checkpoint | Acknowledged | StreamClosed | Dropped


# -- state ------------------------------------------------------------------------------
@dataclass
class _Stream:
    framework_id: str
    task_id: str
    checkpoint: bool
    pending: deque[TaskStatus] = field(default_factory=deque)
    seen: set[bytes] = field(default_factory=set)  # every uuid received (dedup)
    latest_state: TaskState | None = None
    interval: float = 0.0
    due: float | None = None  # when the in-flight head is re-sent; None: not sent yet

    @property
    def head(self) -> TaskStatus | None:
        return self.pending[0] if self.pending else None


def update_record(framework_id: str, status: TaskStatus) -> dict[str, Any]:
    """The ``task.updates`` line for an update (Mesos's StatusUpdateRecord UPDATE)."""
    return {"type": "UPDATE", "update": {"framework_id": {"value": framework_id},
                                         "status": status.to_json()}}


def ack_record(uuid: bytes) -> dict[str, Any]:
    """The ``task.updates`` line for an acknowledgement (StatusUpdateRecord ACK)."""
    return {"type": "ACK", "uuid": base64.b64encode(uuid).decode("ascii")}


@dataclass(frozen=True)
class RecoveredStream:
    """What :meth:`StatusUpdateManager.recover` read from a task's journal."""

    statuses: list[TaskStatus]  # every update, oldest first
    latest_state: TaskState | None
    closed: bool  # the terminal update was acknowledged: the task is completed
    pending: list[TaskStatus]  # unacknowledged, head first


class StatusUpdateManager:
    """Per-task streams of status updates, retried until acknowledged.

    >>> from mesonb.protocol.errors import BadRequest
from mesonb.protocol.mesos import TaskStatus
    >>> m = StatusUpdateManager(retry_min=10, retry_max=600)
    >>> m.resume(now=0.0)
    []
    >>> s = TaskStatus(task_id="t", state=TaskState.TASK_RUNNING, uuid=b"1")
    >>> [type(a).__name__ for a in m.update("fw", s, now=0.0)]
    ['Forward']
    >>> [type(a).__name__ for a in m.tick(now=10.0)]
    ['Forward']
    >>> [type(a).__name__ for a in m.acknowledge("fw", "t", b"1", now=11.0)]
    ['Acknowledged']
    """

    def __init__(self, retry_min: float = 10.0, retry_max: float = 600.0) -> None:
        if retry_min <= 0 or retry_max < retry_min:
            raise ValueError("need 0 < retry_min <= retry_max")
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.paused = True
        self._streams: dict[StreamKey, _Stream] = {}
        # Retry deadlines, earliest first: (due, n, stream key). An entry whose stream is
        # gone or has another due since is stale and skipped, so none is ever removed.
        self._dues: list[tuple[float, int, StreamKey]] = []
        self._order = itertools.count()

    # -- queries --------------------------------------------------------------------
    def pending(self, framework_id: str, task_id: str) -> list[TaskStatus]:
        """The unacknowledged updates of a task, head first."""
        stream = self._streams.get((framework_id, task_id))
        return list(stream.pending) if stream else []

    def has_stream(self, framework_id: str, task_id: str) -> bool:
        return (framework_id, task_id) in self._streams

    def seen(self, framework_id: str, task_id: str, uuid: bytes) -> bool:
        """True when an open stream already recorded the update with this uuid."""
        stream = self._streams.get((framework_id, task_id))
        return stream is not None and uuid in stream.seen

    def in_flight(self) -> list[tuple[str, TaskStatus]]:
        """Every stream head, as (framework_id, status)."""
        return [(s.framework_id, s.head) for s in self._streams.values() if s.head is not None]

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`tick` has work to do, or None."""
        if self.paused:
            return None
        dues = self._dues
        while dues and not self._current(dues[0]):
            heapq.heappop(dues)
        return dues[0][0] if dues else None

    def _current(self, entry: tuple[float, int, StreamKey]) -> bool:
        stream = self._streams.get(entry[2])
        return stream is not None and stream.due == entry[0] and stream.head is not None

    # -- events ---------------------------------------------------------------------
    def update(
        self, framework_id: str, status: TaskStatus, now: float, checkpoint: bool = False
    ) -> list[Action]:
        """Record a new update (it must carry a ``uuid``) and forward it if it is the head."""
        if status.uuid is None:
            raise ValueError("a status update needs a uuid")
        key = (framework_id, status.task_id)
        stream = self._streams.get(key)
        if stream is None:
            stream = _Stream(framework_id, status.task_id, checkpoint)
            self._streams[key] = stream
        if status.uuid in stream.seen:
            return [Dropped(framework_id, status.task_id, "duplicate update")]
        stream.seen.add(status.uuid)
        stream.pending.append(status)
        stream.latest_state = status.state
        actions: list[Action] = []
        if stream.checkpoint:
            actions.append(Checkpoint(framework_id, status.task_id,
                                      update_record(framework_id, status)))
        if len(stream.pending) == 1:
            actions.extend(self._send_head(stream, now, reset=True))
        return actions

    def acknowledge(
        self, framework_id: str, task_id: str, uuid: bytes, now: float
    ) -> list[Action]:
        """The framework acknowledged ``uuid``; pop the head and forward the next update."""
        stream = self._streams.get((framework_id, task_id))
        if stream is None or stream.head is None:
            return [Dropped(framework_id, task_id, "acknowledgement for an unknown stream")]
        head = stream.head
        if head.uuid != uuid:
            return [Dropped(framework_id, task_id, "unexpected acknowledgement")]
        stream.pending.popleft()
        stream.due = None
        actions: list[Action] = []
        if stream.checkpoint:
            actions.append(Checkpoint(framework_id, task_id, ack_record(uuid)))
        actions.append(Acknowledged(framework_id, head))
        if head.state.terminal and not stream.pending:
            del self._streams[(framework_id, task_id)]
            actions.append(StreamClosed(framework_id, task_id, head.state))
        elif stream.pending:
            actions.extend(self._send_head(stream, now, reset=True))
        return actions

    def tick(self, now: float) -> list[Action]:
        """Re-send every head whose retry is due, doubling its interval up to the max."""
        if self.paused:
            return []
        actions: list[Action] = []
        dues = self._dues
        while dues and dues[0][0] <= now:
            entry = heapq.heappop(dues)
            if self._current(entry):
                actions.extend(self._send_head(self._streams[entry[2]], now, reset=False))
        return actions

    def pause(self) -> list[Action]:
        """The master is gone: stop forwarding (updates keep being recorded)."""
        self.paused = True
        return []

    def resume(self, now: float) -> list[Action]:
        """(Re-)registered with a master: re-send every head now, with the minimum interval."""
        self.paused = False
        actions: list[Action] = []
        for stream in self._streams.values():
            if stream.head is not None:
                actions.extend(self._send_head(stream, now, reset=True))
        return actions

    def recover(
        self, framework_id: str, task_id: str, records: list[dict[str, Any]]
    ) -> RecoveredStream:
        """Rebuild a task's stream from its ``task.updates`` journal (agent recovery).

        The journal is replayed in order (UPDATE appends, ACK pops the head); a stream
        whose terminal update was acknowledged is not kept. Nothing is forwarded here:
        :meth:`resume` re-sends the heads once the agent is registered again.
        """
        statuses: list[TaskStatus] = []
        stream = _Stream(framework_id, task_id, checkpoint=True)
        closed = False
        for record in records:
            kind = record.get("type") if isinstance(record, dict) else None
            try:
                if kind == "UPDATE":
                    status = TaskStatus.from_json(record["update"]["status"],
                                                  "task.updates[].update.status")
                    if status.uuid is None or status.uuid in stream.seen:
                        continue
                    stream.seen.add(status.uuid)
                    stream.pending.append(status)
                    stream.latest_state = status.state
                    statuses.append(status)
                elif kind == "ACK":
                    uuid = base64.b64decode(record["uuid"])
                    if stream.head is not None and stream.head.uuid == uuid:
                        head = stream.pending.popleft()
                        closed = head.state.terminal and not stream.pending
                    else:
                        log.warning("task %s: acknowledgement out of order in its journal",
                                    task_id)
            except (KeyError, TypeError, ValueError, BadRequest) as exc:
                log.warning("task %s: skipping a bad journal record: %s", task_id, exc)
        if not closed and statuses:
            self._streams[(framework_id, task_id)] = stream
        return RecoveredStream(statuses, stream.latest_state, closed,
                               list(stream.pending))

    def cleanup(self, framework_id: str) -> list[Action]:
        """Forget every stream of a framework (it was shut down)."""
        for key in [k for k in self._streams if k[0] == framework_id]:
            del self._streams[key]
        return []

    # -- internals ------------------------------------------------------------------
    def _send_head(self, stream: _Stream, now: float, reset: bool) -> list[Action]:
        if reset:
            stream.interval = self.retry_min
        elif stream.due is not None:
            stream.interval = min(stream.interval * 2, self.retry_max)
        if self.paused:
            stream.due = None
            return []
        stream.due = now + stream.interval
        heapq.heappush(self._dues, (stream.due, next(self._order),
                                    (stream.framework_id, stream.task_id)))
        head = stream.head
        assert head is not None and stream.latest_state is not None
        return [Forward(stream.framework_id, head, stream.latest_state)]
