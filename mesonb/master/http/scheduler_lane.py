"""The master's calls lane (:mod:`mesonb.http.lane`): ``POST /api/v1/scheduler`` for every
call but SUBSCRIBE, on a TCP port of its own, parsed by :mod:`mesonb.http.wire`.

A request passes what it passes on the HTTP port (:class:`.scheduler.SchedulerHandler`),
in the same order and through the same functions: credentials (401), the method (405),
media types (400/415/406), the leader check (307/503), parsing and validation (400), the
ACLs and the framework's principal (403), the stream id and the call itself (400); the
answers carry the same statuses and messages. SUBSCRIBE is refused here (400): its
event stream belongs to the HTTP port, whose answer names this lane.

tornado's request machinery (HTTP1Connection, RequestHandler, routing, header objects)
cost the master about three times the CPU of the call itself; here a request is parsed by
httptools in C and answered with one pre-built ``202``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
from typing import Any

import tornado.netutil

from mesonb import tls
from mesonb.http import wire
from mesonb.http.base import JSON, Security, access_log, method_not_allowed
from mesonb.master.master import Master
from mesonb.protocol.errors import BadRequest, ProtocolError, Redirect
from mesonb.protocol.scheduler import CallType

from . import scheduler

log = logging.getLogger(__name__)
_ACCEPTED = wire.response(202, {"Cache-Control": "no-cache"})
_ACCEPTED_CLOSE = wire.response(202, {"Cache-Control": "no-cache", "Connection": "close"})
_PATHS = (scheduler.SCHEDULER_PATH, "/master" + scheduler.SCHEDULER_PATH)
# the methods tornado's handler answers with Mesos's 405 message (others: its bare 405)
_NAMED_METHODS = ("GET", "PUT", "DELETE", "PATCH")
_SLASHES = re.compile(r"/{2,}")
IDLE_SECONDS = 3600.0  # the HTTP port's idle_connection_timeout (daemon.py)


class SchedulerLane:
    """The lane's listening socket and its connections; see the module docstring."""

    def __init__(self, master: Master, security: Security,
                 idle_seconds: float = IDLE_SECONDS) -> None:
        self.master = master
        self.security = security
        self.idle_seconds = idle_seconds
        self.port: int | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: set[_Connection] = set()

    async def start(self, ip: str, port: int = 0) -> int:
        """Listen on ``ip:port`` (0: a free port, the same on each address ``ip`` names,
        as the HTTP port) with TLS when this process speaks it; return the port."""
        loop = asyncio.get_running_loop()
        context = tls.server_options()
        sockets = tornado.netutil.bind_sockets(port, ip)
        for sock in sockets:
            self._servers.append(await loop.create_server(
                lambda: _Connection(self), sock=sock, ssl=context))
        self.port = int(sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        for conn in list(self._connections):
            conn.close()
        for server in servers:
            await server.wait_closed()


class _Connection(asyncio.Protocol):
    """One framework's connection: requests one after another (keep-alive, pipelined)."""

    def __init__(self, lane: SchedulerLane) -> None:
        self.lane = lane
        self.transport: asyncio.Transport | None = None
        self.parser = wire.RequestParser()
        self.loop = asyncio.get_running_loop()
        self.active = self.loop.time()  # when data last came in
        self.idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        wire.read_small(transport)
        self.lane._connections.add(self)
        self.idle_timer = self.loop.call_later(self.lane.idle_seconds, self._idle_check)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lane._connections.discard(self)
        self.transport = None
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def _idle_check(self) -> None:
        """Close a connection silent for ``idle_seconds`` (a framework that went away
        without closing it), as the HTTP port's ``idle_connection_timeout`` does."""
        idle = self.loop.time() - self.active
        if idle >= self.lane.idle_seconds:
            self.idle_timer = None
            self.close()
        else:
            self.idle_timer = self.loop.call_later(self.lane.idle_seconds - idle,
                                                   self._idle_check)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.active = self.loop.time()
        try:
            requests = self.parser.feed(data)
        except ProtocolError as exc:
            self._answer(exc.status, exc.message, close=True)
            return
        for request in requests:
            if self.transport is None or self.transport.is_closing():
                return
            self._handle(request)

    def _handle(self, request: wire.Request) -> None:
        close = not request.keep_alive
        try:
            answer = self._carry_out(request)
        except Redirect as exc:
            location = exc.location + request.target if exc.append_path else exc.location
            self._write(wire.response(307, [("Cache-Control", "no-cache"),
                                            ("Location", location)]), close)
            return
        except ProtocolError as exc:
            self._answer(exc.status, exc.message, close)
            access_log.warning("%d %s %s (calls lane): %s", exc.status, request.method,
                               request.target, exc.message)
            return
        except Exception:
            log.exception("scheduler call failed")
            self._answer(500, "500 Internal Server Error", close=True)
            return
        if access_log.isEnabledFor(logging.INFO):  # as tornado's log_request: DEBUG runs
            access_log.info("%d %s %s (calls lane)", 202 if answer is None else 200,
                            request.method, request.target)
        if answer is None:
            self._write(_ACCEPTED_CLOSE if close else _ACCEPTED, close)
        else:
            body = json.dumps(answer, separators=(",", ":")).encode()
            self._write(wire.response(200, [("Cache-Control", "no-cache"),
                                            ("Content-Type", JSON)], body), close)

    def _carry_out(self, request: wire.Request) -> dict[str, Any] | None:
        lane, headers = self.lane, request.headers
        path = request.target
        if path not in _PATHS:
            path = _SLASHES.sub("/", path.split("?", 1)[0]).rstrip("/") or "/"
        if path not in _PATHS:
            raise ProtocolError(f"404 No endpoint at {path}", 404)
        principal = lane.security.authenticate(headers.get("authorization"))
        if request.method != "POST":
            if request.method in _NAMED_METHODS:
                raise method_not_allowed("POST")
            raise ProtocolError("405 Method Not Allowed", 405)
        calls = scheduler.read_calls(lane.master, headers.get("content-type"),
                                     headers.get("accept"), request.body)
        if not isinstance(calls, list) and calls.type is CallType.SUBSCRIBE:
            raise BadRequest("SUBSCRIBE is served on the master's HTTP port, not on its "
                             "calls lane")
        scheduler.authorize_calls(lane.security, principal, lane.master, calls)
        return scheduler.carry_out(lane.master, calls, headers.get("mesos-stream-id"))

    def _answer(self, status: int, message: str, close: bool) -> None:
        headers = [("Cache-Control", "no-cache"),
                   ("Content-Type", "text/plain; charset=utf-8")]
        if status == 401:
            scheme = "Basic" if self.lane.security.credentials else "Bearer"
            headers.append(("WWW-Authenticate", f'{scheme} realm="mesonb"'))
        if close:
            headers.append(("Connection", "close"))
        self._write(wire.response(status, headers, message.encode()), close)

    def _write(self, data: bytes, close: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(data)
        if close:
            self.transport.close()
