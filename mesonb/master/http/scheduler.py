"""``POST /api/v1/scheduler``: the Mesos v1 Scheduler HTTP API (JSON).

SUBSCRIBE keeps the response open as a chunked RecordIO stream of events, tagged with a
``Mesos-Stream-Id`` header; every other call comes on its own request carrying that id
and is answered ``202 Accepted`` (``200`` with a body for UPDATE_FRAMEWORK).

The SUBSCRIBE answer also names the master's calls lane (:mod:`.scheduler_lane`) in a
``Mesonb-Calls-Port`` header: mesonb's own driver sends its other calls there, with the
same checks and answers at a fraction of tornado's cost; other clients ignore it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from tornado.http1connection import HTTP1Connection

from mesonb.http.base import (
    JSON,
    RECORDIO,
    BaseHandler,
    Security,
    check_json_accept,
    check_json_body,
    method_not_allowed,
)
from mesonb.http.direct_write import write_now
from mesonb.http.lane import LANE_HEADER
from mesonb.master.http import authorize
from mesonb.master.master import Master
from mesonb.protocol import recordio
from mesonb.protocol.errors import BadRequest
from mesonb.protocol.jsontext import loads
from mesonb.protocol.scheduler import SCHEDULER_PATH as SCHEDULER_PATH  # routes import it here
from mesonb.protocol.scheduler import Call, CallType

log = logging.getLogger(__name__)
# Loop turns an event stream's write may wait for an allocation run that is due: the
# offers a task's end frees then leave in the same write as its UPDATE (one send, and one
# wake-up of the framework, instead of two; the UPDATE is still first).
FLUSH_WAITS = 3


def parse(body: bytes) -> Call | list[Call]:
    """The call a request carries, or the calls of a batch (mesonb's extension: a JSON
    array of non-SUBSCRIBE calls, validated whole: a 400 names the bad one)."""
    if body.lstrip()[:1] != b"[":
        return Call.parse(body)
    return _batch(loads(body, "Failed to parse body into Calls"))


def parse_json(data: dict[str, Any] | list[Any]) -> Call | list[Call]:
    """:func:`parse` of a request body already read as JSON (an object or an array, as a
    caller in this process hands it over): the same calls, or the same BadRequest."""
    return Call.parse(data) if type(data) is dict else _batch(data)


def _batch(items: Any) -> list[Call]:
    if not items:
        raise BadRequest("Expecting at least one call in the batch")
    if not isinstance(items, list):
        raise BadRequest("Failed to parse body into Calls: expected a JSON array")
    calls = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(f"call {i} of the batch: expected a JSON object")
        try:
            call = Call.parse(item)
        except BadRequest as exc:
            raise BadRequest(f"call {i} of the batch: {exc.message}") from None
        if call.type in (CallType.SUBSCRIBE, CallType.UPDATE_FRAMEWORK):
            raise BadRequest(f"call {i} of the batch: {call.type} cannot be batched")
        calls.append(call)
    return calls


def carry_out(master: Master, calls: Call | list[Call],
              stream_id: str | None) -> dict[str, Any] | None:
    """Carry out a parsed non-SUBSCRIBE call (its synchronous answer, if any) or a batch
    in order; a call of a batch refused while carried out stops it, the calls before it
    done. Mesos has no batches; mesonb's own driver sends its acknowledgements so when
    the master says it is mesonb."""
    if not isinstance(calls, list):
        return master.calls.handle(calls, stream_id)
    for i, call in enumerate(calls):
        try:
            master.calls.handle(call, stream_id)
        except BadRequest as exc:
            raise BadRequest(f"call {i} of the batch: {exc.message}") from None
    return None


def read_calls(master: Master, content_type: str | None, accept: str | None,
               body: bytes) -> Call | list[Call]:
    """A request's checks before its calls are carried out, in Mesos's order: its media
    types (400/415/406), the leader check (307/503), then the parsed calls (400)."""
    if (content_type, accept) not in _MEDIA_PASSED:
        check_json_body(content_type)
        check_json_accept(accept, (RECORDIO,))
        if len(_MEDIA_PASSED) < 64:
            _MEDIA_PASSED.add((content_type, accept))
    master.check_leader()
    return parse(body)


# (Content-Type, Accept) pairs that passed the media checks: a client sends the same on
# every call, and reading an Accept header's q-values each time cost 1% of the master.
_MEDIA_PASSED: set[tuple[str | None, str | None]] = set()


def authorize_calls(security: Security, principal: str | None, master: Master,
                    calls: Call | list[Call]) -> None:
    """403 unless the caller may make every (non-SUBSCRIBE) call of the request."""
    for call in calls if isinstance(calls, list) else [calls]:
        authorize.scheduler_call(security, principal, master, call)


def check_subscribe(headers: Any) -> None:
    if "Mesos-Stream-Id" in headers:
        raise BadRequest("Subscribe calls should not include the 'Mesos-Stream-Id' header")


class SchedulerHandler(BaseHandler):
    master: Master
    lane_port: int | None = None  # the calls lane's (:mod:`.scheduler_lane`), if served

    def get(self) -> None:
        raise method_not_allowed("POST")

    put = delete = patch = get

    async def post(self) -> None:
        headers = self.request.headers
        calls = read_calls(self.master, headers.get("Content-Type"), headers.get("Accept"),
                           self.request.body)
        if not isinstance(calls, list) and calls.type is CallType.SUBSCRIBE:
            assert calls.subscribe is not None
            authorize.subscribe(self.security, self.principal, calls.subscribe.framework_info)
            await self._subscribe(calls)
            return
        authorize_calls(self.security, self.principal, self.master, calls)
        body = carry_out(self.master, calls, self.request.headers.get("Mesos-Stream-Id"))
        if body is None:
            self.set_status(202)
            self.finish()
        else:
            self.write_json(body)

    # -- the event stream ----------------------------------------------------------
    async def _subscribe(self, call: Call) -> None:
        check_subscribe(self.request.headers)
        stream_id = str(uuid.uuid4())
        self.stream_events()
        self._loop = asyncio.get_running_loop()
        self._done = self._loop.create_future()
        self._flush_pending = False
        self._flush_waits = 0
        self._events: list[bytes] = []  # encoded events of this turn, once headers are out
        self.set_status(200)
        self.set_header("Content-Type", JSON)
        self.set_header("Mesos-Stream-Id", stream_id)
        if self.lane_port is not None:  # mesonb's drivers send their other calls there
            self.set_header(LANE_HEADER, str(self.lane_port))
        framework = self.master.calls.subscribe(call, stream_id, self._send, self._close)
        if framework is None:
            return
        framework.in_process = False  # over the network: the ACLs apply
        self.flush()
        try:
            await self._done
        finally:
            self.master.calls.disconnected(framework, stream_id)

    def _send(self, event: dict[str, Any]) -> None:
        if self._done.done():
            return
        if self._headers_written:  # written at the flush, in one chunk
            self._events.append(recordio.encode_json(event))
        else:  # SUBSCRIBED and the first HEARTBEAT leave with the answer's headers
            self.write(recordio.encode_json(event))
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        if self.master.allocation_pending and self._flush_waits < FLUSH_WAITS \
                and not self._done.done():
            self._flush_waits += 1
            self._loop.call_soon(self._flush)
            return
        self._flush_pending = False
        self._flush_waits = 0
        if not self._done.done() and not self._finished:
            self._write_events()

    def _write_events(self) -> None:
        """The turn's events as one HTTP chunk: straight to the socket (:func:`write_now`)
        where tornado would write nothing else, else through ``RequestHandler.flush``
        (the same bytes, chunk framing and all)."""
        events, self._events = self._events, []
        if not events:
            if self._write_buffer:
                self.flush()
            return
        data = events[0] if len(events) == 1 else b"".join(events)
        conn = self.request.connection
        if (not self._write_buffer and not self._transforms and self._headers_written
                and type(conn) is HTTP1Connection and conn._chunking_output):
            write_now(conn.stream, b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.write(data)
            self.flush()

    def _close(self, reason: str | None) -> None:
        if not self._done.done():
            self._done.set_result(reason)
        if self._events and not self._finished:  # what this turn sent goes before the end
            self.write(b"".join(self._events))
            self._events = []
        if not self._finished:
            if not self._headers_written:
                self.flush()  # keep the answer a chunked stream (pymesos insists), then end it
            self.finish()

    def on_connection_close(self) -> None:
        done = getattr(self, "_done", None)
        if done is not None and not done.done():
            done.set_result("connection closed")
