"""``POST /api/v1``: the Mesos v1 operator API of the master (JSON).

Also served at any ``/api/v1/<x>`` other than ``scheduler`` and ``executor``: pymesos's
operator client posts to ``/api/v1/operator`` and libprocess routes it by prefix.

Every call but SUBSCRIBE is answered synchronously, ``200`` with a ``Response``
(``{"type": "GET_STATE", "get_state": {...}}``, master.proto) or an empty ``200`` for
UPDATE_WEIGHTS, TEARDOWN and MARK_AGENT_GONE. Bad calls answer ``400`` with the reason;
calls mesonb does not carry out yet (reservations, volumes) answer ``501`` naming the
call. Quota, roles, maintenance, draining and the files calls are in
:mod:`.operator_maintenance`.

SUBSCRIBE keeps the response open as a chunked RecordIO stream: ``SUBSCRIBED`` with the
whole state, then the events the master emits (TASK_ADDED, TASK_UPDATED, AGENT_ADDED,
AGENT_REMOVED, FRAMEWORK_ADDED, FRAMEWORK_UPDATED, FRAMEWORK_REMOVED) and a ``HEARTBEAT``
every ``heartbeat_interval_seconds``. Writes are coalesced into one flush per loop
iteration; a subscriber that does not read is dropped once the output flushed to it in
earlier iterations and still unsent passes :attr:`OperatorHandler.max_pending_bytes`, so
it never grows the master's memory. (A burst within one iteration is not held against a
reader that keeps up.)
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

import tornado.ioloop

from mesonb.http.base import JSON, RECORDIO, BaseHandler, method_not_allowed
from mesonb.logging_level import LoggingLevel
from mesonb.master import settings, views
from mesonb.master.drain import mark_gone
from mesonb.master.http import authorize
from mesonb.master.http.metrics import snapshot
from mesonb.master.http.misc import version_json
from mesonb.master.http.operator_maintenance import MAINTENANCE_CALLS
from mesonb.master.http.operator_resources import OPERATOR_RESOURCE_CALLS
from mesonb.master.http.state import framework_user
from mesonb.master.master import Master
from mesonb.protocol import recordio
from mesonb.protocol.errors import BadRequest, NotFound
from mesonb.protocol.operator import Call, CallType, NotImplementedCall
from mesonb.protocol.roles import validate_role

log = logging.getLogger(__name__)

OPERATOR_PATH = r"/api/v1(?:/(?!(?:scheduler|executor)/?$)[^/]+)?/?"


class OperatorHandler(BaseHandler):
    master: Master
    logging_level: LoggingLevel
    max_pending_bytes = 64 * 1024 * 1024

    def get(self) -> None:
        raise method_not_allowed("POST")

    put = delete = patch = get

    async def post(self) -> None:
        self.master.check_leader()
        self.require_json_body()
        call = Call.parse(self.request.body)
        self.require_json_accept(extra=(RECORDIO,))
        if call.type is CallType.SUBSCRIBE:
            await self._subscribe()
            return
        answer = _CALLS.get(call.type)
        if answer is None:
            raise NotImplementedCall(f"The operator call {call.type.value} is not implemented "
                                     "by mesonb yet")
        authorize.operator_call(self.security, self.principal, self.master, call)
        with views.no_gc():
            body = answer(self, call)
            if body is not None:  # what the caller may see (view_* ACLs), as Mesos filters
                body = self.viewer(framework_user(self.master)).operator_answer(
                    call.type.value, body)
        if body is None:  # a change: answered once the registry holds it
            await self.master.durable()
        if body is None:  # 200, or the 202 a call set (RESERVE_RESOURCES, ...)
            self.finish()
        else:
            self.write_json({"type": call.type.value, call.type.value.lower(): body})

    # -- synchronous calls ---------------------------------------------------------
    def get_health(self, call: Call) -> dict[str, Any]:
        return {"healthy": True}

    def get_flags(self, call: Call) -> dict[str, Any]:
        flags = views.master_flags(self.master.config)
        return {"flags": [{"name": k, "value": v} for k, v in flags.items()]}

    def get_version(self, call: Call) -> dict[str, Any]:
        fields = ("version", "build_date", "build_time", "build_user", "git_sha")
        info = version_json()
        return {"version_info": {k: info[k] for k in fields if k in info}}

    def get_metrics(self, call: Call) -> dict[str, Any]:
        return {"metrics": [{"name": k, "value": v} for k, v in snapshot(self.master).items()]}

    def get_logging_level(self, call: Call) -> dict[str, Any]:
        return {"level": self.logging_level.level}

    def set_logging_level(self, call: Call) -> None:
        body = call.extra.get("set_logging_level")
        if not isinstance(body, dict):
            raise BadRequest("Expecting 'set_logging_level' to be present")
        duration = body.get("duration")
        nanos = duration.get("nanoseconds") if isinstance(duration, dict) else None
        if not isinstance(nanos, int) or isinstance(nanos, bool):
            raise BadRequest("Expecting 'set_logging_level.duration.nanoseconds' to be an "
                             "integer")
        level = body.get("level")
        if not isinstance(level, int) or isinstance(level, bool):
            raise BadRequest("Expecting 'set_logging_level.level' to be an unsigned integer")
        self.logging_level.set(level, nanos / 1e9)

    def get_state(self, call: Call) -> dict[str, Any]:
        return views.get_state(self.master.book)

    def get_agents(self, call: Call) -> dict[str, Any]:
        return views.get_agents(self.master.book)

    def get_frameworks(self, call: Call) -> dict[str, Any]:
        return views.get_frameworks(self.master.book)

    def get_executors(self, call: Call) -> dict[str, Any]:
        return views.get_executors(self.master.book)

    def get_tasks(self, call: Call) -> dict[str, Any]:
        return views.get_tasks(self.master.book)

    def get_roles(self, call: Call) -> dict[str, Any]:
        return views.get_roles(self.master)

    def get_weights(self, call: Call) -> dict[str, Any]:
        return {"weight_infos": views.weight_infos(self.master)}

    def get_master(self, call: Call) -> dict[str, Any]:
        out: dict[str, Any] = {"master_info": self.master.info().to_json(),
                               "start_time": self.master.start_time}
        if self.master.elected_time is not None:
            out["elected_time"] = self.master.elected_time
        return out

    def update_weights(self, call: Call) -> None:
        assert call.update_weights is not None
        updates: dict[str, float] = {}
        for info in call.update_weights.weight_infos or ():
            role = (info.role or "").strip()
            problem = validate_role(role)
            if problem is not None:
                raise BadRequest("Failed to validate update weights request JSON: Invalid role "
                                 f"'{role}': {problem}")
            if not (info.weight > 0 and math.isfinite(info.weight)):
                raise BadRequest(f"Failed to validate update weights request JSON for role "
                                 f"'{role}': Invalid weight '{info.weight:g}': Weights must be "
                                 "positive")
            updates[role] = info.weight
        self.master.role_weights.update(updates)
        settings.save(self.master, settings.WEIGHTS)  # kept across failover
        in_use = {r for f in self.master.book.frameworks.values() for r in f.roles}
        if in_use & updates.keys():  # as Mesos: take offers back so DRF redoes its shares
            for offer in list(self.master.book.offers.values()):
                self.master.rescind_offer(offer)

    def teardown(self, call: Call) -> None:
        assert call.teardown is not None
        framework = self.master.book.frameworks.get(call.teardown.framework_id)
        if framework is None:
            raise BadRequest(f"No framework found with ID {call.teardown.framework_id}")
        self.master.remove_framework(framework, "torn down by an operator (TEARDOWN)")

    def mark_agent_gone(self, call: Call) -> None:
        assert call.mark_agent_gone is not None
        agent_id = call.mark_agent_gone.agent_id
        book = self.master.book
        if agent_id in book.gone_agents:
            return  # idempotent, as in Mesos
        agent = book.agents.get(agent_id)
        if agent is None:
            raise NotFound(f"Agent '{agent_id}' not found")
        mark_gone(self.master, agent)

    # -- SUBSCRIBE: the event stream -------------------------------------------------
    async def _subscribe(self) -> None:
        master = self.master
        interval = master.config.heartbeat_interval
        self._done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._buffered = self._in_flight = 0
        self._flush_pending = False
        self.stream_events()
        self.set_status(200)
        self.set_header("Content-Type", JSON)
        self._viewer = self.viewer(framework_user(master))
        with views.no_gc():
            first = recordio.encode_json({"type": "SUBSCRIBED", "subscribed": {
                "get_state": self._viewer.get_state(views.get_state(master.book)),
                "heartbeat_interval_seconds": interval}})
        self._limit = self.max_pending_bytes + len(first)
        self._write(first)
        self._write(_HEARTBEAT)
        master.observers.append(self._observe)
        heartbeat = tornado.ioloop.PeriodicCallback(lambda: self._write(_HEARTBEAT),
                                                    interval * 1000)
        heartbeat.start()
        log.info("operator subscriber %s connected", self.request.remote_ip)
        try:
            reason = await self._done
        finally:
            heartbeat.stop()
            if self._observe in master.observers:
                master.observers.remove(self._observe)
        log.info("operator subscriber %s gone: %s", self.request.remote_ip, reason)

    def _observe(self, event: dict[str, Any]) -> None:
        if not self._viewer.event(event):
            return
        try:
            self._write(recordio.encode_json(event))
        except Exception:  # never let one subscriber break the master's emit()
            log.exception("operator subscriber: cannot encode %s", event.get("type"))
            self._end("encoding failed")

    def _write(self, record: bytes) -> None:
        if self._done.done():
            return
        if self._in_flight > self._limit:  # flushed earlier and still not taken by the client
            log.warning("operator subscriber %s is not reading (%d bytes unsent); dropping it",
                        self.request.remote_ip, self._in_flight)
            self._end("too slow: unsent output over the limit")
            if self.request.connection is not None:
                self.request.connection.close()  # type: ignore[attr-defined]
            return
        self._buffered += len(record)
        self.write(record)
        if not self._flush_pending:
            self._flush_pending = True
            tornado.ioloop.IOLoop.current().add_callback(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if self._done.done() or self._finished:
            return
        sent, self._buffered = self._buffered, 0
        self._in_flight += sent
        self.flush().add_done_callback(lambda f: self._flushed(f, sent))

    def _flushed(self, future: asyncio.Future[None], sent: int) -> None:
        self._in_flight -= sent
        if future.exception() is not None:
            self._end("connection closed")

    def _end(self, reason: str) -> None:
        if not self._done.done():
            self._done.set_result(reason)
        if self._observe in self.master.observers:
            self.master.observers.remove(self._observe)

    def on_connection_close(self) -> None:
        if getattr(self, "_done", None) is not None:
            self._end("connection closed")


_HEARTBEAT = recordio.encode_json({"type": "HEARTBEAT"})
_CALLS: dict[CallType, Callable[[OperatorHandler, Call], dict[str, Any] | None]] = {
    kind: getattr(OperatorHandler, kind.value.lower())
    for kind in CallType
    if kind.value.lower() in OperatorHandler.__dict__
}
_CALLS.update(MAINTENANCE_CALLS)  # quota, roles, maintenance, draining, files
_CALLS.update(OPERATOR_RESOURCE_CALLS)  # reservations, volumes, GET_OPERATIONS
