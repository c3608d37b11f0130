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

from mesonb.executor.process import TOKEN_ENV
from mesonb.http.base import JSON, RECORDIO, BaseHandler, method_not_allowed
from mesonb.protocol import recordio
from mesonb.protocol.errors import Forbidden
from mesonb.protocol.executor import ExecutorCall, ExecutorCallType, ExecutorEvent

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["TOKEN_ENV", "EventStream", "ExecutorApiHandler"]

log = logging.getLogger(__name__)



class EventStream:
    """The open SUBSCRIBE response of one executor; :meth:`send` writes one event."""

    def __init__(self, handler: ExecutorApiHandler) -> None:
        self._handler = handler
        self._closed = asyncio.Event()
        self._flush_pending = False

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def send(self, event: ExecutorEvent) -> bool:
        """Write ``event``; False when the executor has gone away. Events written in one
        loop turn are flushed together (one send() for a burst of LAUNCHes)."""
        if self.closed:
            return False
        try:
            self._handler.write(recordio.encode_json(event.to_json()))
        except (StreamClosedError, RuntimeError):
            self.mark_closed()
            return False
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)
        return True

    def _flush(self) -> None:
        self._flush_pending = False
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
        call = ExecutorCall.parse(self.request.body)
        if self.principal is not None and self.principal != (
            call.framework_id, call.executor_id
        ):
            raise Forbidden(
                f"The token is not valid for executor '{call.executor_id}' of framework"
                f" '{call.framework_id}'"
            )
        if call.type is ExecutorCallType.SUBSCRIBE:
            self.require_json_accept((RECORDIO,))
            stream = EventStream(self)
            self.stream = stream
            self.set_status(200)
            self.set_header("Content-Type", JSON)
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

    def on_connection_close(self) -> None:
        if self.stream is not None:
            self.stream.mark_closed()

    def get(self) -> None:
        raise method_not_allowed("POST")

    put = delete = patch = get
