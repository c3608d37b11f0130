"""``POST /api/v1/executor``: the Mesos v1 Executor HTTP API, served by the agent.

SUBSCRIBE is answered ``200`` with a chunked RecordIO stream of ``ExecutorEvent`` JSON
records that stays open; UPDATE and MESSAGE are answered ``202``. Errors are 4xx with a
plain-text reason, as Mesos answers (docs/executor-http-api.md).

Authentication: the agent gives every container a token in
``MESOS_EXECUTOR_AUTHENTICATION_TOKEN`` and the executor sends it as
``Authorization: Bearer <token>``; a token only speaks for its own executor. The cluster
secret is accepted too. An agent without a secret (loopback only) also accepts executors
that send no credentials, such as pymesos's executor driver.

The API is served twice, by the same functions here: on the agent's HTTP port
(:class:`ExecutorApiHandler`, what ``MESOS_AGENT_ENDPOINT`` names and any Mesos executor
uses), and on a local socket for mesonb's own executors (:mod:`.executor_socket`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from tornado.iostream import StreamClosedError

from mesonb.http.base import JSON, RECORDIO, BaseHandler, method_not_allowed
from mesonb.protocol import recordio
from mesonb.protocol.errors import BadRequest, Forbidden
from mesonb.protocol.executor import (
    BATCH_HEADER,
    TOKEN_ENV,
    ExecutorCall,
    ExecutorCallType,
    ExecutorEvent,
    ExecutorEventType,
)
from mesonb.protocol.jsontext import loads

if TYPE_CHECKING:
    from .executors import Executors

__all__ = ["TOKEN_ENV", "EventStream", "ExecutorApiHandler"]

log = logging.getLogger(__name__)
Principal = tuple[str, str] | None  # (framework_id, executor_id) a token speaks for

# Events an executor needs soon but not at once: they leave with the next other event or
# after LAZY_DELAY, so an ACKNOWLEDGED rides with the next LAUNCH instead of costing the
# executor a wake-up of its own.
LAZY = frozenset({ExecutorEventType.ACKNOWLEDGED, ExecutorEventType.HEARTBEAT})
LAZY_DELAY = 0.002
_GONE = (StreamClosedError, RuntimeError, ConnectionError)
_BLANK = b" \t\n\r\x0b\x0c"  # what bytes.lstrip() strips


class AgentSide(Protocol):
    """What the executor API needs of the agent: its executors."""

    @property
    def executors(self) -> Executors: ...


class Sink(Protocol):
    """Where a stream's bytes go: buffered by ``write``, sent by ``flush``."""

    def write(self, data: bytes) -> None: ...

    def flush(self) -> None: ...

    def finish(self) -> None: ...


class EventStream:
    """The open SUBSCRIBE answer of one executor; :meth:`send` writes one event."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._closed = asyncio.Event()
        self._flush_pending = False
        self._lazy_flush: asyncio.TimerHandle | None = None
        self._lazy_due = 0.0  # when the LAZY events waiting go out on their own (loop time)
        self._lazy: list[bytes] = []  # LAZY events, written after the others of a flush
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of the first send

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def send(self, event: ExecutorEvent, delay: float = LAZY_DELAY) -> bool:
        """Write ``event``; False when the executor has gone away. Events written in one
        loop turn are flushed together (one send() for a burst of LAUNCHes); :data:`LAZY`
        ones wait up to ``delay`` (:data:`LAZY_DELAY`) for company."""
        if self.closed:
            return False
        data = recordio.encode_json(event.to_json())
        loop = self._loop
        if loop is None:  # (asyncio.get_running_loop() asks the OS for the pid each time)
            loop = self._loop = asyncio.get_running_loop()
        if event.type in LAZY:
            self._lazy.append(data)
            if not self._flush_pending:
                due = loop.time() + delay
                if self._lazy_flush is None or due < self._lazy_due:
                    if self._lazy_flush is not None:
                        self._lazy_flush.cancel()
                    self._lazy_due = due
                    self._lazy_flush = loop.call_at(due, self._flush)
            return True
        try:
            self._sink.write(data)
        except _GONE:
            self.mark_closed()
            return False
        if not self._flush_pending:
            self._flush_pending = True
            loop.call_soon(self._flush)
        return True

    def _flush(self) -> None:
        self._flush_pending = False
        if self._lazy_flush is not None:
            self._lazy_flush.cancel()
            self._lazy_flush = None
        if self.closed:
            return
        try:
            if self._lazy:  # after a LAUNCH, so the executor starts its task first
                lazy, self._lazy = self._lazy, []
                for data in lazy:
                    self._sink.write(data)
            self._sink.flush()
        except _GONE:
            self.mark_closed()

    def close(self) -> None:
        """End the stream from the agent's side (what is queued goes first)."""
        if not self.closed:
            self._closed.set()
            with contextlib.suppress(*_GONE):
                for data in self._lazy:
                    self._sink.write(data)
                self._lazy = []
                self._sink.finish()

    def mark_closed(self) -> None:
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()


# -- the API, whatever carries it -------------------------------------------------------
def parse_calls(body: bytes) -> ExecutorCall | list[ExecutorCall]:
    """The call a request carries, or the calls of a batch (mesonb's extension: a JSON
    array of UPDATE and MESSAGE calls, checked whole; 400 names the bad one).

    Mesos has no batches; the agent announces them with the ``Mesonb-Batch: 1`` header of
    its SUBSCRIBE answer and only mesonb's executor driver sends them."""
    first = body[:1]
    if first in _BLANK:  # (b"" too) only then copy the body to find its first character
        first = body.lstrip()[:1]
    if first != b"[":
        return ExecutorCall.parse(body)
    items = loads(body, "Failed to parse body into executor Calls")
    if not items:
        raise BadRequest("Expecting at least one call in the batch")
    calls = []
    for i, item in enumerate(items):
        try:
            call = ExecutorCall.from_json(item, "Call")
            call.validate()
            if call.type not in (ExecutorCallType.UPDATE, ExecutorCallType.MESSAGE):
                raise BadRequest(f"{call.type.value} cannot be batched")
        except BadRequest as exc:
            raise BadRequest(f"call {i} of the batch: {exc.message}") from None
        calls.append(call)
    return calls


def authorize(principal: Principal, calls: ExecutorCall | list[ExecutorCall]) -> None:
    """Forbidden unless the token speaks for the executor of every call."""
    batch = calls if isinstance(calls, list) else [calls]
    for i, call in enumerate(batch):
        if principal is not None and principal != (call.framework_id, call.executor_id):
            where = f"call {i} of the batch: " if isinstance(calls, list) else ""
            raise Forbidden(
                f"{where}The token is not valid for executor '{call.executor_id}' of"
                f" framework '{call.framework_id}'")


def carry_out(agent: AgentSide, calls: ExecutorCall | list[ExecutorCall]) -> None:
    """Carry out UPDATE and MESSAGE calls in order, each update recorded before the
    answer; a call refused while carried out stops a batch, the calls before it done."""
    executors = agent.executors
    batch = calls if isinstance(calls, list) else [calls]
    for i, call in enumerate(batch):
        try:
            if call.type is ExecutorCallType.UPDATE:
                executors.update(call)
            elif call.type is ExecutorCallType.MESSAGE:
                executors.message(call)
        except BadRequest as exc:
            if not isinstance(calls, list):
                raise
            raise BadRequest(f"call {i} of the batch: {exc.message}") from None


# -- over the agent's HTTP port ---------------------------------------------------------
class _HandlerSink:
    def __init__(self, handler: ExecutorApiHandler, lost: Callable[[], Any]) -> None:
        self._handler = handler
        self._lost = lost

    def write(self, data: bytes) -> None:
        self._handler.write(data)

    def flush(self) -> None:
        self._handler.flush().add_done_callback(self._flushed)

    def finish(self) -> None:
        self._handler.finish()

    def _flushed(self, fut: asyncio.Future[None]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            self._lost()


class ExecutorApiHandler(BaseHandler):
    """The executor endpoint on the agent's HTTP port; the work is the functions above."""

    agent: AgentSide
    stream: EventStream | None = None
    executor_principal: Principal = None  # (framework, executor) of a container's token

    def prepare(self) -> None:
        self.executor_principal = self.agent.executors.authenticate(
            self.request.headers.get("Authorization")
        )

    async def post(self) -> None:
        self.require_json_body()
        calls = parse_calls(self.request.body)
        authorize(self.executor_principal, calls)
        if not isinstance(calls, list) and calls.type is ExecutorCallType.SUBSCRIBE:
            self.require_json_accept((RECORDIO,))
            stream = EventStream(_HandlerSink(self, lambda: stream.mark_closed()))
            self.stream = stream
            self.stream_events()
            self.set_status(200)
            self.set_header("Content-Type", JSON)
            self.set_header(BATCH_HEADER, "1")
            self.agent.executors.subscribe(calls, stream)
            await stream.wait_closed()
            if not self._finished:
                with contextlib.suppress(StreamClosedError):
                    self.finish()
            return
        carry_out(self.agent, calls)
        self.set_status(202)
        self.finish()

    def on_connection_close(self) -> None:
        if self.stream is not None:
            self.stream.mark_closed()

    def get(self) -> None:
        raise method_not_allowed("POST")

    put = delete = patch = get
