"""``POST /api/v1/executor``: the Mesos v1 Executor HTTP API, served by the agent.

SUBSCRIBE is answered ``200`` with a chunked RecordIO stream of ``ExecutorEvent`` JSON
records that stays open; UPDATE and MESSAGE are answered ``202``. Errors are 4xx with a
plain-text reason, as Mesos answers (docs/executor-http-api.md).

Authentication: the agent gives every container a token in
``MESOS_EXECUTOR_AUTHENTICATION_TOKEN`` and the executor sends it as
``Authorization: Bearer <token>``; a token only speaks for its own executor. The cluster
secret is accepted too. An agent without a secret (loopback only) also accepts executors
that send no credentials, such as pymesos's executor driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from tornado.iostream import StreamClosedError

from mesonb.executor.driver import BATCH_HEADER
from mesonb.executor.process import TOKEN_ENV
from mesonb.http.base import JSON, RECORDIO, BaseHandler, method_not_allowed
from mesonb.protocol import recordio
from mesonb.protocol.errors import BadRequest, Forbidden
from mesonb.protocol.executor import (
    ExecutorCall,
    ExecutorCallType,
    ExecutorEvent,
    ExecutorEventType,
)
from mesonb.protocol.jsontext import loads
from mesonb.protocol.states import TaskState

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["TOKEN_ENV", "EventStream", "ExecutorApiHandler"]

log = logging.getLogger(__name__)



# Events an executor needs soon but not at once: they leave with the next other event or
# after LAZY_DELAY, so an ACKNOWLEDGED rides with the next LAUNCH instead of costing the
# executor a wake-up of its own.
LAZY = frozenset({ExecutorEventType.ACKNOWLEDGED, ExecutorEventType.HEARTBEAT})
LAZY_DELAY = 0.002


class EventStream:
    """The open SUBSCRIBE response of one executor; :meth:`send` writes one event."""

    def __init__(self, handler: ExecutorApiHandler) -> None:
        self._handler = handler
        self._closed = asyncio.Event()
        self._flush_pending = False
        self._lazy_flush: asyncio.TimerHandle | None = None

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def send(self, event: ExecutorEvent) -> bool:
        """Write ``event``; False when the executor has gone away. Events written in one
        loop turn are flushed together (one send() for a burst of LAUNCHes); :data:`LAZY`
        ones wait up to :data:`LAZY_DELAY` for company."""
        if self.closed:
            return False
        try:
            self._handler.write(recordio.encode_json(event.to_json()))
        except (StreamClosedError, RuntimeError):
            self.mark_closed()
            return False
        if self._flush_pending:
            return True
        loop = asyncio.get_running_loop()
        if event.type not in LAZY:
            self._flush_pending = True
            loop.call_soon(self._flush)
        elif self._lazy_flush is None:
            self._lazy_flush = loop.call_later(LAZY_DELAY, self._flush)
        return True

    def _flush(self) -> None:
        self._flush_pending = False
        if self._lazy_flush is not None:
            self._lazy_flush.cancel()
            self._lazy_flush = None
        if self.closed:
            return
        try:
            fut = self._handler.flush()
        except (StreamClosedError, RuntimeError):
            self.mark_closed()
            return
        fut.add_done_callback(self._flushed)

    def close(self) -> None:
        """End the stream from the agent's side."""
        if not self.closed:
            self._closed.set()
            with contextlib.suppress(StreamClosedError, RuntimeError):
                self._handler.finish()

    def mark_closed(self) -> None:
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def _flushed(self, fut: asyncio.Future[None]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            self.mark_closed()


class ExecutorApiHandler(BaseHandler):
    """The executor endpoint; the agent does the work (:meth:`Agent.executor_call`)."""

    agent: Agent
    stream: EventStream | None = None
    principal: tuple[str, str] | None = None  # (framework_id, executor_id) of the token

    def prepare(self) -> None:
        self.principal = self.agent.executors.authenticate(
            self.request.headers.get("Authorization")
        )

    async def post(self) -> None:
        self.require_json_body()
        if self.request.body.lstrip()[:1] == b"[":
            self._batch()
            return
        call = ExecutorCall.parse(self.request.body)
        self._authorize(call)
        if call.type is ExecutorCallType.SUBSCRIBE:
            self.require_json_accept((RECORDIO,))
            stream = EventStream(self)
            self.stream = stream
            self.stream_events()
            self.set_status(200)
            self.set_header("Content-Type", JSON)
            self.set_header(BATCH_HEADER, "1")
            self.agent.executors.subscribe(call, stream)
            await stream.wait_closed()
            if not self._finished:
                with contextlib.suppress(StreamClosedError):
                    self.finish()
            return
        if call.type is ExecutorCallType.UPDATE:
            self.agent.executors.update(call)
        elif call.type is ExecutorCallType.MESSAGE:
            self.agent.executors.message(call)
        self.set_status(202)
        self.finish()

    def _authorize(self, call: ExecutorCall) -> None:
        if self.principal is not None and self.principal != (
            call.framework_id, call.executor_id
        ):
            raise Forbidden(
                f"The token is not valid for executor '{call.executor_id}' of framework"
                f" '{call.framework_id}'"
            )

    def _batch(self) -> None:
        """mesonb's extension: a JSON array of UPDATE and MESSAGE calls in one request.

        Every call is parsed and checked first (400 or 403 names the bad one and nothing
        is done), then carried out in order, each update recorded before the answer; a
        call refused while carrying out stops the batch, with the calls before it done.
        Answer: 202. Mesos has no such call; the agent announces it with the
        ``Mesonb-Batch: 1`` header of its SUBSCRIBE answer and only mesonb's executor
        driver uses it."""
        items = loads(self.request.body, "Failed to parse body into executor Calls")
        if not items:
            raise BadRequest("Expecting at least one call in the batch")
        calls = []
        for i, item in enumerate(items):
            try:
                call = ExecutorCall.from_json(item, "Call")
                if call.type is ExecutorCallType.UPDATE and call.update is None:
                    raise BadRequest("Expecting 'update' to be present for an UPDATE call")
                if call.type is ExecutorCallType.MESSAGE and call.message is None:
                    raise BadRequest("Expecting 'message' to be present for a MESSAGE call")
                if call.type not in (ExecutorCallType.UPDATE, ExecutorCallType.MESSAGE):
                    raise BadRequest(f"{call.type.value} cannot be batched")
                if call.type is ExecutorCallType.UPDATE:
                    assert call.update is not None
                    status = call.update.status
                    if status.uuid is None:
                        raise BadRequest("Expecting 'uuid' to be present")
                    if status.state is TaskState.TASK_STAGING:
                        raise BadRequest("Received TASK_STAGING from executor")
            except BadRequest as exc:
                raise BadRequest(f"call {i} of the batch: {exc.message}") from None
            try:
                self._authorize(call)
            except Forbidden as exc:
                raise Forbidden(f"call {i} of the batch: {exc.message}") from None
            calls.append(call)
        executors = self.agent.executors
        for i, call in enumerate(calls):
            try:
                if call.type is ExecutorCallType.UPDATE:
                    executors.update(call)
                else:
                    executors.message(call)
            except BadRequest as exc:
                raise BadRequest(f"call {i} of the batch: {exc.message}") from None
        self.set_status(202)
        self.finish()

    def on_connection_close(self) -> None:
        if self.stream is not None:
            self.stream.mark_closed()

    def get(self) -> None:
        raise method_not_allowed("POST")

    put = delete = patch = get
