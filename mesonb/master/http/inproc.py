"""The master's in-process endpoint (:mod:`mesonb.http.inproc`): the scheduler API and the
agent link for frameworks and agents running in the master's own process and loop.

Calls pass the same checks as over HTTP (credentials, the leader check, parsing and
validation, 4xx answers with a message) through the same functions as the HTTP handlers;
only the socket and the HTTP parser are left out, and authorization: a caller in the
master's own process is trusted as the process is (it could reach the master's objects
directly), so the ACLs (``--acls``) apply to frameworks over the network only.
Everything else (operator API, state, metrics) is served over HTTP only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from mesonb.http.base import Security
from mesonb.http.inproc import Answer, Channel, later
from mesonb.master.master import Master
from mesonb.protocol.agent import AGENT_PATH, AgentCall
from mesonb.protocol.errors import BadRequest, ProtocolError, Redirect
from mesonb.protocol.jsontext import dumpb
from mesonb.protocol.scheduler import CallType

from . import scheduler
from .agent_link import AgentSession
from .misc import version_json

log = logging.getLogger(__name__)
_PLAIN = {"content-type": "text/plain; charset=utf-8"}


class MasterEndpoint:
    """Serves ``POST /api/v1/scheduler``, ``GET /version`` and the agent link in-process."""

    def __init__(self, master: Master, security: Security,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.master = master
        self.security = security
        self.loop = loop

    # -- the scheduler API ---------------------------------------------------------
    def request(self, method: str, path: str, body: bytes,
                headers: Mapping[str, str]) -> Answer | None:
        route = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and route == "/version":
            return _json(200, version_json())
        if method != "POST" or route != scheduler.SCHEDULER_PATH:
            return None
        return self._scheduler_call(path, headers, lambda: scheduler.parse(body))

    def request_json(self, method: str, path: str, payload: Any,
                     headers: Mapping[str, str]) -> Answer | None:
        """:meth:`request` of a JSON call handed over as its object: the checks in the
        same order, the calls read from the object (:func:`.scheduler.parse_json`) without
        the text between. Where the object is refused (400), it is answered as its text
        would be (:meth:`request` of ``dumpb(payload)``): the same status and message as
        over a socket, whatever in the object the codec tripped on."""
        if method != "POST" or type(payload) not in (dict, list) \
                or path.split("?", 1)[0].rstrip("/") != scheduler.SCHEDULER_PATH:
            return self.request(method, path, dumpb(payload), headers)

        def read() -> Any:
            try:
                return scheduler.parse_json(payload)
            except BadRequest:
                return self.request(method, path, dumpb(payload), headers)

        return self._scheduler_call(path, headers, read)

    def _scheduler_call(self, path: str, headers: Mapping[str, str],
                        read: Callable[[], Any]) -> Answer | None:
        """Credentials, leadership, then the call(s) ``read`` gives (or its own Answer),
        carried out: 202, or 200 with a body; None for a SUBSCRIBE (a stream)."""
        try:
            self.security.check(headers.get("Authorization"))
            self.master.check_leader()
            calls = read()
            if calls is None or isinstance(calls, Answer):
                return calls
            if not isinstance(calls, list) and calls.type is CallType.SUBSCRIBE:
                return None  # streams come through open_stream
            answer = scheduler.carry_out(self.master, calls, headers.get("Mesos-Stream-Id"))
        except ProtocolError as exc:
            return _refused(exc, path)
        except Exception:
            log.exception("scheduler call failed")
            return Answer(500, dict(_PLAIN), b"500 Internal Server Error")
        return Answer(202) if answer is None else _json(200, answer)

    def open_stream(self, path: str, body: bytes, headers: Mapping[str, str],
                    chunks: Channel) -> Answer | None:
        if path.split("?", 1)[0].rstrip("/") != scheduler.SCHEDULER_PATH:
            return None
        try:
            self.security.check(headers.get("Authorization"))
            self.master.check_leader()
            call = scheduler.parse(body)
            if isinstance(call, list) or call.type is not CallType.SUBSCRIBE:
                return None
            scheduler.check_subscribe(headers)
            stream_id = str(uuid.uuid4())
            _Subscription(self.master, call, stream_id, chunks)
        except ProtocolError as exc:
            return _refused(exc, path)
        return Answer(200, {"content-type": "application/json", "mesos-stream-id": stream_id,
                            "transfer-encoding": "chunked"})

    # -- the agent link ------------------------------------------------------------
    def open_link(self, path: str, headers: Mapping[str, str]) -> AgentLink | None:
        """An agent link, or None (the agent then tries the WebSocket, which answers
        with the refusal: credentials, a redirect to the leader)."""
        if path != AGENT_PATH:
            return None
        try:
            self.security.check(headers.get("Authorization"))
            self.master.check_leader()
        except ProtocolError:
            return None
        return AgentLink(self.master)


class _Subscription:
    """A SUBSCRIBE stream in-process: the events of one loop turn go over as one list of
    their JSON dicts (the driver reads them as it would the parsed RecordIO records, and
    treats them as read-only)."""

    def __init__(self, master: Master, call: Any, stream_id: str, chunks: Channel) -> None:
        self.master = master
        self.stream_id = stream_id
        self.chunks = chunks
        self.pending: list[dict[str, Any]] = []
        self.done = False
        chunks.on_hang_up = self.gone
        self.framework = master.calls.subscribe(call, stream_id, self.send, self.close)
        if self.framework is not None:
            self.framework.in_process = True

    def send(self, event: dict[str, Any]) -> None:
        if self.done:
            return
        if not self.pending:
            later(self.flush)
        self.pending.append(event)

    def flush(self) -> None:
        if self.pending:
            self.chunks.put(self.pending)
            self.pending = []

    def close(self, reason: str | None) -> None:
        """The master ends the stream (failover to another scheduler, teardown)."""
        if not self.done:
            self.flush()
            self.chunks.end()
            self.gone()

    def gone(self) -> None:
        if self.done:
            return
        self.done = True
        self.pending = []
        if self.framework is not None:
            self.master.calls.disconnected(self.framework, self.stream_id)


class AgentLink:
    """An agent link in-process: what the agent's master link sees in place of a
    WebSocket (``write_message``, ``read_message``, ``close``).

    Messages pass as objects (``in_process``): the master's MasterCommands (or their JSON)
    to the agent, the agent's AgentCalls (or a JSON frame) to the master, without being
    encoded and parsed again, as libprocess hands messages between actors of one process.
    Both sides treat a message as read-only once sent or received; code that needs to
    change one copies it first (``dataclasses.replace``)."""

    in_process = True

    def __init__(self, master: Master) -> None:
        self._inbox = Channel()  # master -> agent: lists of messages, until deliver_to()
        self._deliver: Callable[[list[Any]], Any] | None = None
        self._closed = False
        self._written: asyncio.Future[None] | None = None
        self.session = AgentSession(master, self._from_master, self._master_closes,
                                    "in-process")

    def deliver_to(self, handler: Callable[[list[Any]], Any]) -> None:
        """Hand the master's messages to ``handler`` as the master flushes them (one loop
        turn sooner than through :meth:`read_message`)."""
        self._deliver = handler

    def _from_master(self, messages: list[Any]) -> None:
        if self._deliver is None:
            self._inbox.put(messages)
            return
        try:
            self._deliver(messages)
        except Exception:
            log.exception("the agent failed to take the master's messages")

    def write_message(self, message: str | list[AgentCall]) -> asyncio.Future[None]:
        """The agent's calls (its link flushes them on a turn of their own): the master
        carries them out now."""
        if self._closed:
            from tornado.websocket import WebSocketClosedError

            refused: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            refused.set_exception(WebSocketClosedError())
            return refused
        try:
            if isinstance(message, list):
                self.session.handle(message)
            else:
                self.session.received(message)
        except Exception:
            log.exception("the master failed to take the agent's messages")
        done = self._written
        if done is None:  # one finished future serves every write (awaiting it is free)
            done = self._written = asyncio.get_running_loop().create_future()
            done.set_result(None)
        return done

    async def read_message(self) -> Any:
        """The next messages from the master, or None: a list of MasterCommands or their
        JSON where a WebSocket gives one text frame (typed Any so that this serves as the
        agent's ``Link``)."""
        return await self._inbox.get()

    async def wait_closed(self) -> None:
        while not self._closed:
            await self._inbox.get()  # only the end arrives here once delivery is direct

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """The agent closes the link."""
        self._end()

    def _master_closes(self) -> None:
        self._end()

    def _end(self) -> None:
        if not self._closed:
            self._closed = True
            self._inbox.end()
            later(self.session.closed)


def _json(status: int, obj: Any) -> Answer:
    return Answer(status, {"content-type": "application/json"},
                  json.dumps(obj, separators=(",", ":")).encode())


def _refused(exc: ProtocolError, path: str) -> Answer:
    headers = dict(_PLAIN)
    if isinstance(exc, Redirect):
        headers["location"] = exc.location + path if exc.append_path else exc.location
        return Answer(307, headers)
    if exc.status == 401:
        headers["www-authenticate"] = 'Bearer realm="mesonb"'
    return Answer(exc.status, headers, exc.message.encode())
