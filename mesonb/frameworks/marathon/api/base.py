"""What every Marathon API handler shares: authentication, JSON errors in Marathon's shape,
query booleans (``true``/``True``), and proxying to the leader from a standby."""

from __future__ import annotations

import json
import logging
from typing import Any

import tornado.web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from mesonb import tls
from mesonb.http.base import Security
from mesonb.protocol.errors import ProtocolError

from ..model import InvalidJSON, InvalidObject
from ..operations import ApiError

log = logging.getLogger(__name__)
LOADING_WAIT = 10.0  # seconds a request waits for an elected instance to lead
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host",
               "content-encoding"}


class MarathonHandler(tornado.web.RequestHandler):
    """Base of the ``/v2`` handlers; ``self.service`` is the :class:`~..service.Marathon`."""

    service: Any
    security: Security
    local = False  # answered by any instance, leader or not

    def initialize(self, service: Any) -> None:
        self.service = service
        self.security = service.security

    def check_xsrf_cookie(self) -> None:
        return

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-cache, no-store, must-revalidate")

    async def prepare(self) -> None:
        authorization = self.request.headers.get("Authorization")
        if authorization and authorization.startswith("token="):  # DC/OS, marathon-python
            authorization = "Bearer " + authorization[len("token="):]
        try:
            self.security.check(authorization)
        except ProtocolError as exc:
            self.write_json({"message": exc.message}, exc.status)
            return
        if not self.local and not self.service.is_leader:
            # elected and loading the state: answer once it leads, never proxy to itself
            if self.service.leader_address == self.service.address and \
                    await self.service.wait_leading(LOADING_WAIT):
                return
            await self.proxy()

    async def proxy(self) -> None:
        """Forward the request to the leader and relay its answer (Marathon's proxy)."""
        leader = self.service.leader_address
        if not leader:
            self.write_json({"message": "Could not determine the current leader"}, 503)
            return
        url = tls.address_url(leader, self.request.uri or "")
        headers = {k: v for k, v in self.request.headers.get_all()
                   if k.lower() not in HOP_HEADERS}
        headers["X-Marathon-Via"] = self.service.address
        body = self.request.body if self.request.method in ("POST", "PUT", "PATCH") else None
        try:
            answer = await AsyncHTTPClient().fetch(HTTPRequest(
                url, method=self.request.method, headers=headers, body=body,
                allow_nonstandard_methods=True, follow_redirects=False, connect_timeout=1.0,
                request_timeout=30,
                ssl_options=tls.client_context() if tls.enabled() else None), raise_error=False)
        except Exception as exc:  # refused, reset, timed out: the leader is going away
            self.write_json({"message": f"Could not reach the leader {leader}: {exc}"}, 503)
            return
        self.set_status(answer.code)
        for name, value in answer.headers.get_all():
            if name.lower() not in HOP_HEADERS:
                self.set_header(name, value)
        self.set_header("X-Marathon-Leader", tls.address_url(leader))
        self.finish(answer.body or b"")

    # -- helpers ------------------------------------------------------------------------
    def flag(self, name: str, default: bool = False) -> bool:
        """A query boolean: ``true``/``True``/``1`` (marathon-python sends ``True``)."""
        value = self.get_query_argument(name, None)
        if value is None:
            return default
        return value.strip().lower() in ("true", "1", "yes", "")

    def body_json(self) -> Any:
        try:
            return json.loads(self.request.body or b"null")
        except ValueError as exc:
            raise InvalidJSON([{"path": "/", "errors": [f"error.invalid.json: {exc}"]}]
                              ) from None

    def write_json(self, obj: Any, status: int = 200) -> None:
        if self._finished:
            return
        self.set_status(status)
        self.set_header("Content-Type", "application/json; qs=2")
        self.finish(json.dumps(obj, separators=(",", ":")))

    def _handle_request_exception(self, e: BaseException) -> None:
        if self._finished:
            return
        if isinstance(e, InvalidJSON):
            self.write_json(e.body(), 400)
        elif isinstance(e, InvalidObject):
            self.write_json(e.body(), 422)
        elif isinstance(e, ApiError):
            self.write_json(e.body, e.status)
        elif isinstance(e, tornado.web.HTTPError):
            self.write_json({"message": e.log_message or self._reason}, e.status_code)
        else:
            log.exception("marathon API %s %s failed", self.request.method, self.request.uri)
            self.write_json({"message": f"internal error: {type(e).__name__}: {e}"}, 500)


class NotFound(MarathonHandler):
    local = True

    async def prepare(self) -> None:
        self.write_json({"message": f"No endpoint at {self.request.path}"}, 404)
