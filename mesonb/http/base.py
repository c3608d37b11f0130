"""The one place every HTTP request of the master and the agent passes through.

:class:`BaseHandler` authenticates (bearer token when the daemon has a secret), checks
media types, turns :class:`~mesonb.protocol.errors.ProtocolError` into a 4xx answer with a
plain-text message, and never lets an unexpected exception take the daemon down.
"""

from __future__ import annotations

import base64
import functools
import hmac
import json
import logging
import os
import re
from collections.abc import Awaitable
from typing import Any

import tornado.web
from tornado import httputil

from mesonb.protocol.errors import (
    BadRequest,
    Forbidden,
    MethodNotAllowed,
    NotAcceptable,
    ProtocolError,
    Redirect,
    Unauthorized,
    UnsupportedMediaType,
)
from mesonb.protocol.jsontext import dumpb, loads
from mesonb.security.acls import PERMISSIVE, Acls, Action
from mesonb.security.credentials import Credentials
from mesonb.security.views import Viewer

log = logging.getLogger(__name__)
# mesonb's daemons log each request here, not on tornado.access (and the log message of
# an HTTPError here, not on tornado.general): an embedded cluster quiets this logger and
# leaves the loggers of the user's own tornado applications alone (mesonb.client.local)
access_log = logging.getLogger("mesonb.http.access")

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
RECORDIO = "application/recordio"
_DOUBLE_SLASH = re.compile(r"/{2,}")


class Security:
    """Who may call a daemon, and what they may do.

    ``secret``: the cluster's shared bearer token (``--secret``). ``credentials``: principals
    and secrets (``--credentials``), sent as HTTP Basic (what pymesos sends from a
    framework's ``principal`` and ``secret``) or as ``Authorization: Bearer
    principal:secret``. ``acls``: Mesos's local authorizer (``--acls``). With neither a
    secret nor credentials the daemon is open (it then binds to loopback only)."""

    def __init__(self, secret: str | None = None, credentials: Credentials | None = None,
                 acls: Acls | None = None) -> None:
        self.secret = secret
        self.credentials = credentials
        self.acls = acls or PERMISSIVE

    @property
    def required(self) -> bool:
        """Whether callers must authenticate."""
        return self.secret is not None or bool(self.credentials)

    def authenticate(self, authorization: str | None) -> str | None:
        """The caller's principal (None for the cluster secret, or an open daemon);
        :class:`Unauthorized` for missing or wrong credentials."""
        if not self.required:
            return None
        if not authorization:
            raise Unauthorized("Missing 'Authorization' header (Bearer <secret> or Basic "
                               "principal:secret)")
        scheme, _, token = authorization.partition(" ")
        scheme, token = scheme.lower(), token.strip()
        if scheme == "bearer":
            if self.secret is not None and hmac.compare_digest(token.encode(),
                                                               self.secret.encode()):
                return None
            principal, sep, secret = token.partition(":")
            if sep and self.credentials and self.credentials.check(principal, secret):
                return principal
        elif scheme == "basic" and self.credentials:
            try:
                decoded = base64.b64decode(token, validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                raise Unauthorized("Malformed Basic credentials") from None
            principal, _, secret = decoded.partition(":")
            if self.credentials.check(principal, secret):
                return principal
        raise Unauthorized("Invalid credentials")

    def check(self, authorization: str | None) -> None:
        self.authenticate(authorization)

    @classmethod
    def from_flags(cls, secret: str | None, credentials: str | os.PathLike[str] | None = None,
                   acls: str | os.PathLike[str] | None = None) -> Security:
        """A daemon's gate from its flags (``--secret``, ``--credentials``, ``--acls``);
        ValueError names a file that cannot be used."""
        return cls(secret, Credentials.load(credentials) if credentials else None,
                   Acls.load(acls) if acls else None)

    def authorize(self, action: Action, principal: str | None, obj: str | None = None) -> None:
        """:class:`Forbidden` with the reason unless the ACLs allow it."""
        if not self.acls.allowed(action, principal, obj):
            raise Forbidden(self.acls.explain(action, principal, obj))

    def headers(self) -> dict[str, str]:
        """Headers a client of a daemon with this secret must send."""
        return {"Authorization": f"Bearer {self.secret}"} if self.secret else {}


def check_json_body(content_type: str | None) -> None:
    """Mesos rules for a request body: no Content-Type -> 400, protobuf or other -> 415."""
    if content_type == JSON:  # what nearly every client sends
        return
    if not content_type:
        raise BadRequest("Expecting 'Content-Type' to be present")
    media = content_type.split(";")[0].strip().lower()
    if media == PROTOBUF:
        raise UnsupportedMediaType(
            "Content-Type 'application/x-protobuf' is not supported; use application/json"
        )
    if media != JSON:
        raise UnsupportedMediaType(
            f"Expecting 'Content-Type' of application/json, got '{media}'"
        )


def check_json_accept(accept: str | None, extra: tuple[str, ...] = ()) -> None:
    """406 unless ``accept`` takes JSON (or one of ``extra``) with a q-value above 0."""
    if accept and accept != JSON and not _accepts_json(accept, extra):
        raise NotAcceptable(f"Expecting 'Accept' to allow application/json, got '{accept}'")


@functools.lru_cache(maxsize=256)
def _accepts_json(accept: str, extra: tuple[str, ...]) -> bool:
    """Whether ``accept`` takes JSON or one of ``extra`` (clients send the same few
    headers again and again: the answer is kept)."""
    return any(accepts(accept, media) for media in (JSON, *extra))


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Tornado's access line for a request to a mesonb daemon (the ``log_function`` of its
    Applications), on :data:`access_log`: INFO for 1xx-3xx, WARNING 4xx, ERROR 5xx."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if access_log.isEnabledFor(level):
        request = handler.request
        access_log.log(level, "%d %s %s (%s) %.2fms", status, request.method, request.uri,
                       request.remote_ip, 1000.0 * request.request_time())


class BaseHandler(tornado.web.RequestHandler):
    """Authentication, media types and error answers for every endpoint."""

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """An HTTPError's log message on :data:`access_log` (tornado: tornado.general)."""
        if isinstance(value, tornado.web.HTTPError):
            if value.log_message:
                request = self.request
                # formatted lazily, as tornado does: logging reports a bad format itself
                access_log.warning("%d %s %s (%s): " + value.log_message, value.status_code,
                                   request.method, request.uri, request.remote_ip,
                                   *value.args)
            return
        super().log_exception(typ, value, tb)

    security: Security
    public = False  # True for endpoints open without credentials (health, version)
    # True for endpoints Mesos guards with get_endpoints (ACL object: the path): 403 unless
    # the caller may GET it
    endpoint_acl = False
    principal: str | None = None  # who called, once prepare() authenticated them
    operator = False  # the caller holds the cluster's shared secret: it may see everything

    def initialize(self, security: Security, **kwargs: Any) -> None:
        self.security = security
        for key, value in kwargs.items():
            setattr(self, key, value)

    def prepare(self) -> None:
        if not self.public:
            self.principal = self.security.authenticate(self.request.headers.get("Authorization"))
            self.operator = self.security.secret is not None and self.principal is None
            if self.endpoint_acl and not self.operator:
                path = self.request.path.rstrip("/").removesuffix(".json") or "/"
                self.authorize(Action.GET_ENDPOINT, path)

    def viewer(self, user_of: Any = None) -> Viewer:
        """The ``view_*`` ACLs for this caller (:mod:`mesonb.security.views`);
        ``user_of(framework_id)`` names a framework's user for answers naming only ids."""
        if user_of is None:
            return Viewer(self.security.acls, self.principal, everything=self.operator)
        return Viewer(self.security.acls, self.principal, everything=self.operator,
                      user_of=user_of)

    def authorize(self, action: Action, obj: str | None = None) -> None:
        """403 with the reason unless the caller may do ``action`` on ``obj``."""
        self.security.authorize(action, self.principal, obj)

    def check_xsrf_cookie(self) -> None:  # API clients do not carry cookies
        return

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-cache")

    # -- helpers for subclasses ----------------------------------------------------
    def require_json_body(self) -> None:
        """Mesos rules: no Content-Type -> 400, protobuf or other -> 415."""
        check_json_body(self.request.headers.get("Content-Type"))

    def require_json_accept(self, extra: tuple[str, ...] = ()) -> None:
        """406 unless ``Accept`` takes JSON (or one of ``extra``) with a q-value above 0."""
        check_json_accept(self.request.headers.get("Accept"), extra)

    def stream_events(self) -> None:
        """This answer is a long-lived stream of small writes: send each at once.

        tornado leaves Nagle's algorithm on while a response is open; a second small
        event written before the peer acknowledged the first (which its delayed-ACK
        timer holds up to 40 ms, as the peer never writes back on a stream) would wait
        for that acknowledgement."""
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.set_nodelay(True)

    def json_body(self) -> Any:
        return loads(self.request.body or b"null", "Failed to parse JSON body")

    def write_json(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", JSON)
        self.finish(dumpb(obj))

    def write_jsonp_or_json(self, obj: Any) -> None:
        """Legacy endpoints accept ``?jsonp=callback`` like Mesos."""
        callback = self.get_query_argument("jsonp", None)
        if callback and re.fullmatch(r"[A-Za-z_$][\w$.]*", callback):
            self.set_header("Content-Type", "text/javascript")
            self.finish(f"{callback}({json.dumps(obj)});")
        else:
            self.write_json(obj)

    # -- errors --------------------------------------------------------------------
    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, Redirect):
            if not self._finished:
                self.set_status(307)
                location = e.location + (self.request.uri or "") if e.append_path else e.location
                self.set_header("Location", location)
                self.finish()
            return
        if isinstance(e, ProtocolError):
            if not self._finished:
                self.clear()
                self.set_status(e.status)
                self.set_header("Content-Type", "text/plain; charset=utf-8")
                if e.status == 401:
                    scheme = "Basic" if self.security.credentials else "Bearer"
                    self.set_header("WWW-Authenticate", f'{scheme} realm="mesonb"')
                self.finish(e.message)
            return
        super()._handle_request_exception(e)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        reason = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            reason = exc.log_message % exc.args if exc.args else exc.log_message
        self.finish(f"{status_code} {reason}")


def accepts(accept: str, media: str) -> bool:
    """Whether an ``Accept`` header takes ``media`` (RFC 7231 §5.3.2, as Mesos reads it):
    the most specific matching range decides (``type/subtype`` over ``type/*`` over
    ``*/*``), and its q-value 0 means "not acceptable".

    >>> accepts("application/x-protobuf;q=1, application/json;q=0", "application/json")
    False
    >>> accepts("application/*;q=0.5, text/html", "application/json")
    True
    """
    media = media.lower()
    wildcard = media.split("/", 1)[0] + "/*"
    best, q_best = -1, 0.0
    for part in accept.split(","):
        name, *params = part.split(";")
        name = name.strip().lower()
        rank = 2 if name == media else 1 if name == wildcard else 0 if name == "*/*" else -1
        if rank <= best:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 1.0  # a malformed q-value is ignored
        best, q_best = rank, q
    return best >= 0 and q_best > 0


class NotFoundHandler(BaseHandler):
    public = True

    def prepare(self) -> None:
        raise tornado.web.HTTPError(404, "No endpoint at %s", self.request.path)


def method_not_allowed(allowed: str) -> MethodNotAllowed:
    return MethodNotAllowed(f"Expecting one of {{ '{allowed}' }}, but received a different method")


MAX_BODY_BYTES = 64 * 1024 * 1024  # the largest request body a daemon reads
UNBOUNDED_BODY = 1 << 62  # the HTTPServer's max_body_size: BodyLimit answers 413 first


class SlashCollapsingApplication(tornado.web.Application):
    """An Application that routes ``//a//b`` as ``/a/b`` (clients that join ids to paths)
    and refuses a request body over ``max_body_bytes`` with ``413`` before reading it."""

    max_body_bytes = MAX_BODY_BYTES

    def __init__(self, *args: Any, **settings: Any) -> None:
        settings.setdefault("log_function", log_request)
        super().__init__(*args, **settings)

    def find_handler(self, request: Any, **kwargs: Any) -> Any:
        if "//" in request.path:
            request.path = _DOUBLE_SLASH.sub("/", request.path)
        return super().find_handler(request, **kwargs)

    def start_request(self, server_conn: object,
                      request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        inner = super().start_request(server_conn, request_conn)
        return BodyLimit(inner, request_conn, self.max_body_bytes)


class BodyLimit(httputil.HTTPMessageDelegate):
    """Answers ``413`` to a body over the limit: at once from its ``Content-Length``, or
    as soon as a chunked body passes it; the body is never buffered, the connection
    closes after the answer. (The server's own ``max_body_size`` must be above the limit,
    or tornado closes the connection with a bare 400 first.)"""

    def __init__(self, inner: httputil.HTTPMessageDelegate,
                 connection: httputil.HTTPConnection, limit: int) -> None:
        self.inner = inner
        self.connection = connection
        self.limit = limit
        self.received = 0
        self.refused = False

    def headers_received(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> Awaitable[None] | None:
        length = headers.get("Content-Length", "")
        if length.strip().isdigit() and int(length) > self.limit:
            self._refuse(f"Request body of {int(length)} bytes is over the limit of "
                         f"{self.limit} bytes")
            return None
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self.refused:
            return None
        self.received += len(chunk)
        if self.received > self.limit:
            self._refuse(f"Request body is over the limit of {self.limit} bytes")
            self.inner.on_connection_close()
            return None
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        if not self.refused:
            self.inner.finish()

    def on_connection_close(self) -> None:
        if not self.refused:
            self.inner.on_connection_close()

    def _refuse(self, message: str) -> None:
        self.refused = True
        body = message.encode()
        self.connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", 413, "Payload Too Large"),
            httputil.HTTPHeaders({"Content-Type": "text/plain; charset=utf-8",
                                  "Content-Length": str(len(body)), "Connection": "close"}),
            body)
        self.connection.finish()
