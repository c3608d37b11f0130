"""The calls a scheduler driver sends, and the acknowledgements it batches.

:class:`SchedulerCalls` is the sending half of
:class:`~mesonb.frameworks.driver.SchedulerDriver`: the typed calls of the Mesos v1
scheduler API (ACCEPT, DECLINE, KILL, ...), each with the driver's framework id and stream
id, over its calls connection (a mesonb master's calls lane, :mod:`mesonb.http.lane`),
and the acknowledgements of status updates, which against a mesonb master go out in
batches (one request for the updates of a burst, or riding with the next ACCEPT).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from mesonb.http.client import Connection, Response
from mesonb.protocol.mesos import Duration, Filters, KillPolicy, Operation
from mesonb.protocol.scheduler import (
    SCHEDULER_PATH,
    Accept,
    Acknowledge,
    Call,
    CallType,
    Decline,
    FrameworkMessage,
    Kill,
    Reconcile,
    ReconcileTask,
    Roles,
    Shutdown,
)
from mesonb.protocol.states import TERMINAL_STATE_NAMES
from mesonb.tasks import spawn

from .call_json import accept_call, acknowledge_call
from .calls_pipe import CallsPipe

log = logging.getLogger(__name__)
# Acknowledgements wait this long to go out together (a mesonb master takes them as one
# call): the updates of a burst share a call, and a caller waiting on the update that was
# just handed over gets the CPU before the loop goes on to acknowledge it.
ACK_DELAY = 0.001
# The acknowledgement of a terminal update holds nothing up (the agent has no later update
# of that task to send; the master freed the task's resources when the update passed), so
# it waits longer for a call to ride with: in a burst of short tasks each would otherwise
# cost a request of its own, in the master as much CPU as the ACCEPT that follows it.
TERMINAL_ACK_DELAY = 0.025
# Calls (answered 202, no body) that carry the acknowledgements waiting, in one batch.
CARRY_ACKS = frozenset({CallType.ACCEPT, CallType.DECLINE, CallType.REVIVE, CallType.SUPPRESS})


class SchedulerCalls:
    """The calls half of :class:`~mesonb.frameworks.driver.SchedulerDriver` (a mixin:
    the driver sets the state below when it subscribes)."""

    framework_id: str | None
    stream_id: str | None
    _calls: Connection
    _acks: set[asyncio.Future[Any]]
    _batching: bool  # the master takes arrays of calls (mesonb, not Mesos)
    _ack_queue: list[dict[str, Any]]
    _ack_timer: asyncio.TimerHandle | None
    _ack_due: float  # when the acks waiting go out on their own (loop time)
    # Launches go over a pipelined connection to the calls lane when it is plain TCP
    # (:mod:`.calls_pipe`): their answers are read in batches, without a wake-up each.
    _pipe: CallsPipe | None = None

    async def _after_launches(self) -> None:
        """Before a call the usual way: the launches sent on the pipe are carried out
        first (their answers read), so the master meets the calls in order."""
        if self._pipe is not None and self._pipe.pending():
            await self._pipe.drain()

    def _queue_ack(self, status: dict[str, Any]) -> None:
        """Acknowledge soon; against a mesonb master, acks pending together go in one call,
        or in the request of the next ACCEPT, DECLINE, REVIVE or SUPPRESS made meanwhile
        (:data:`ACK_DELAY`, :data:`TERMINAL_ACK_DELAY` for a terminal update's)."""
        if not self._batching:
            self._spawn(self.acknowledge(status))
            return
        terminal = status.get("state") in TERMINAL_STATE_NAMES
        if terminal and self._ack_timer is not None:
            # The timer is due within TERMINAL_ACK_DELAY of an earlier ack: no later than
            # this one's would be (a burst's terminal updates need no clock read each).
            self._ack_queue.append(status)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + (TERMINAL_ACK_DELAY if terminal else ACK_DELAY)
        if self._ack_timer is None or due < self._ack_due:
            if self._ack_timer is not None:
                self._ack_timer.cancel()
            self._ack_due = due
            self._ack_timer = loop.call_at(due, self._ack_soon)
        self._ack_queue.append(status)

    def _ack_soon(self) -> None:
        self._ack_timer = None
        self._spawn(self._send_acks())

    async def _send_acks(self) -> None:
        try:
            while self._ack_queue and self.framework_id and self.stream_id:
                batch, self._ack_queue = self._ack_queue, []
                calls = [acknowledge_call(self.framework_id, s) for s in batch]
                await self._after_launches()
                await self._calls.post_json(SCHEDULER_PATH, calls,
                                            {"Mesos-Stream-Id": self.stream_id})
        finally:
            # Acks that could not be sent are dropped: the agent resends those updates.
            self._ack_queue.clear()

    def _spawn(self, coro: Any) -> None:
        spawn(coro, self._acks, "call", logger=log)

    # -- calls ---------------------------------------------------------------------------
    async def send(self, call: Call, operations: list[dict[str, Any]] | None = None) -> Any:
        """Send one typed call (its ``framework_id`` filled in); returns the decoded body of
        synchronous calls (else None). ``operations``: an ACCEPT's operations as JSON,
        sent as they are (see :meth:`accept`)."""
        if not self.framework_id or not self.stream_id:
            raise ConnectionError("not subscribed to the master")
        call.framework_id = self.framework_id
        payload = call.to_json()
        if operations is not None:
            payload["accept"]["operations"] = operations
        return await self._post(payload, call.type in CARRY_ACKS)

    async def _post(self, payload: dict[str, Any], carry_acks: bool) -> Any:
        """POST one call's JSON (with the acknowledgements waiting, if it may carry them)."""
        acks = self._take_acks() if carry_acks else []
        await self._after_launches()
        response = await self._calls.post_json(SCHEDULER_PATH, [*acks, payload] if acks
                                                else payload,
                                                {"Mesos-Stream-Id": self.stream_id or ""})
        return response.json() if response.status == 200 else None

    def _take_acks(self) -> list[dict[str, Any]]:
        """The acknowledgements waiting to go out, as calls to send in this batch (a mesonb
        master takes arrays): an ACCEPT after an update then costs one request, not two."""
        if not self._batching or not self._ack_queue:
            return []
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        batch, self._ack_queue = self._ack_queue, []
        framework_id = self.framework_id or ""
        return [acknowledge_call(framework_id, s) for s in batch]

    async def call(self, kind: str, body: dict[str, Any] | None = None) -> Any:
        """Send one call given as its type and JSON body (read into a typed :class:`Call`;
        a malformed body raises BadRequest before anything is sent)."""
        data: dict[str, Any] = {"type": kind}
        if body is not None:
            data[kind.lower()] = body
        return await self.send(Call.from_json(data, "Call"))

    async def accept(self, offer_ids: Iterable[str],
                     operations: Sequence[dict[str, Any] | Operation],
                     refuse_seconds: float | None = None) -> None:
        """Accept offers with operations: typed Operation objects, or Offer.Operation JSON
        objects, which go out as they are (the master reads and checks them: reading
        TaskInfos here too would cost about 50 us a launch, the most frequent call)."""
        accept = Accept(offer_ids=list(offer_ids), filters=_filters(refuse_seconds))
        typed = [op for op in operations if isinstance(op, Operation)]
        if len(typed) == len(operations):
            accept.operations = typed
            await self.send(Call(type=CallType.ACCEPT, accept=accept))
        elif not typed and self.framework_id and self.stream_id:  # a launch: built directly
            raw = [op for op in operations if not isinstance(op, Operation)]
            await self._post(accept_call(self.framework_id, accept.offer_ids, raw,
                                         refuse_seconds), True)
        else:
            raw = [op.to_json() if isinstance(op, Operation) else op for op in operations]
            await self.send(Call(type=CallType.ACCEPT, accept=accept), raw)

    async def launch(self, offer_ids: Iterable[str], tasks: list[dict[str, Any]],
                     refuse_seconds: float | None = None) -> None:
        """Launch TaskInfos (JSON objects) on offers."""
        await self.accept(offer_ids, [{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
                          refuse_seconds)

    def launch_now(self, offer_ids: Iterable[str], tasks: list[dict[str, Any]],
                   refuse_seconds: float | None = None) -> asyncio.Future[Response] | None:
        """:meth:`launch`'s ACCEPT (with the acknowledgements waiting), written now on the
        pipelined lane (:mod:`.calls_pipe`), its answer read later with others: the
        future of that answer (the caller checks its status: HTTPError
        beyond 2xx, as :meth:`launch` raises). None, nothing sent, where it cannot go at
        once (no pipe, its connection not open, the lane given up): use :meth:`launch`."""
        pipe = self._pipe
        if pipe is None or not pipe.ready() or getattr(self._calls, "failed", False) or \
                not self.framework_id or not self.stream_id:
            return None
        acks = self._take_acks()
        call = accept_call(self.framework_id, list(offer_ids),
                           [{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
                           refuse_seconds)
        return pipe.send_now(SCHEDULER_PATH, [*acks, call] if acks else call,
                             {"Mesos-Stream-Id": self.stream_id})

    async def decline(self, offer_ids: Iterable[str], refuse_seconds: float | None = None) -> None:
        await self.send(Call(type=CallType.DECLINE, decline=Decline(
            offer_ids=list(offer_ids), filters=_filters(refuse_seconds))))

    async def revive(self, roles: Iterable[str] = ()) -> None:
        await self.send(Call(type=CallType.REVIVE, revive=Roles(roles=list(roles))))

    async def suppress(self, roles: Iterable[str] = ()) -> None:
        await self.send(Call(type=CallType.SUPPRESS, suppress=Roles(roles=list(roles))))

    async def kill(self, task_id: str, agent_id: str | None = None,
                   grace_seconds: float | None = None) -> None:
        policy = None
        if grace_seconds is not None:
            policy = KillPolicy(grace_period=Duration(nanoseconds=int(grace_seconds * 1e9)))
        await self.send(Call(type=CallType.KILL, kill=Kill(
            task_id=task_id, agent_id=agent_id or None, kill_policy=policy)))

    async def acknowledge(self, status: dict[str, Any]) -> None:
        await self.send(Call(type=CallType.ACKNOWLEDGE, acknowledge=_acknowledge(status)))

    async def reconcile(self, tasks: Iterable[tuple[str, str | None]] = ()) -> None:
        """Ask for the latest state of ``(task_id, agent_id)`` pairs (all tasks when empty)."""
        items = [ReconcileTask(task_id=task_id, agent_id=agent_id or None)
                 for task_id, agent_id in tasks]
        await self.send(Call(type=CallType.RECONCILE, reconcile=Reconcile(tasks=items)))

    async def message(self, agent_id: str, executor_id: str, data: bytes) -> None:
        await self.send(Call(type=CallType.MESSAGE, message=FrameworkMessage(
            agent_id=agent_id, executor_id=executor_id, data=data)))

    async def shutdown_executor(self, agent_id: str, executor_id: str) -> None:
        await self.send(Call(type=CallType.SHUTDOWN, shutdown=Shutdown(
            agent_id=agent_id, executor_id=executor_id)))


def _filters(refuse_seconds: float | None) -> Filters | None:
    return None if refuse_seconds is None else Filters(refuse_seconds=refuse_seconds)


def _acknowledge(status: dict[str, Any]) -> Acknowledge:
    """The ACKNOWLEDGE body for a TaskStatus JSON object (its uuid is Base64)."""
    return Acknowledge(agent_id=status["agent_id"]["value"], task_id=status["task_id"]["value"],
                       uuid=base64.b64decode(status["uuid"]))
