"""Protocol errors and their HTTP answers, in one registry.

Every handler turns a :class:`ProtocolError` into ``status`` + a plain-text message, the
way the Mesos master answers bad calls (``400 Bad Request`` with the reason as body).
"""

from __future__ import annotations


class ProtocolError(Exception):
    """A call the server refuses. ``status`` is the HTTP status to answer with."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(ProtocolError):
    """Malformed or invalid call (400)."""

    status = 400


class Unauthorized(ProtocolError):
    """Missing or wrong credentials (401)."""

    status = 401


class Forbidden(ProtocolError):
    """Authenticated but not allowed, or framework not subscribed (403)."""

    status = 403


class NotFound(ProtocolError):
    status = 404


class MethodNotAllowed(ProtocolError):
    status = 405


class NotAcceptable(ProtocolError):
    """The ``Accept`` header asks for an encoding we cannot produce (406)."""

    status = 406


class Conflict(ProtocolError):
    status = 409


class UnsupportedMediaType(ProtocolError):
    """The request body's ``Content-Type`` is not one we read (415)."""

    status = 415


class ServiceUnavailable(ProtocolError):
    """No leading master yet, or the master is still recovering (503)."""

    status = 503


class Redirect(ProtocolError):
    """This master is not the leader; answer 307 to ``location``."""

    status = 307

    def __init__(self, location: str, append_path: bool = False) -> None:
        super().__init__(f"not the leading master; try {location}")
        self.location = location
        self.append_path = append_path  # Mesos sends //leader:port/<the original path>
