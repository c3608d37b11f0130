"""Mesos's ``HealthCheck`` and ``CheckInfo`` (mesos.proto; docs/health-checks.md).

A task carries them as ``TaskInfo.health_check`` and ``TaskInfo.check`` (raw JSON in the
task's ``extra``); whoever runs the task (the agent for a command task, the default
executor for a task group member, the functions executor for a call) runs them:
:mod:`mesonb.executor.health`. This module is their shape and validation, shared by the
agent (a malformed one is ``TASK_ERROR``, as Mesos's master answers) and the client
(``cluster.submit(fn, health_check=HealthCheck.tcp(8080))`` fails at once on a bad one).

Example::

    >>> HealthCheck.tcp(8080, interval_seconds=1).to_json()["tcp"]
    {'port': 8080}
    >>> validate_check({"type": "HTTP", "http": {"port": 0}}, "health_check")
    Traceback (most recent call last):
    ...
    ValueError: health_check.http.port: must be a port number (1-65535), not 0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

KINDS = ("COMMAND", "HTTP", "TCP")
TIMINGS = ("delay_seconds", "interval_seconds", "timeout_seconds", "grace_period_seconds")


@dataclass(frozen=True)
class HealthCheck:
    """A health check with Mesos's fields and defaults: ``type`` ``COMMAND`` (``command``,
    a shell command run in the sandbox; healthy when it exits 0), ``HTTP`` (a GET of
    ``path`` on 127.0.0.1:``port``; healthy on one of ``statuses``, else on 200-399) or
    ``TCP`` (healthy when a connection to 127.0.0.1:``port`` opens). After
    ``consecutive_failures`` failed checks in a row (outside the grace period) the task
    is killed."""

    type: str
    command: str | None = None
    port: int | None = None
    path: str = "/"
    scheme: str = "http"
    statuses: tuple[int, ...] = ()
    delay_seconds: float = 15.0
    interval_seconds: float = 10.0
    timeout_seconds: float = 20.0
    consecutive_failures: int = 3
    grace_period_seconds: float = 10.0

    @classmethod
    def tcp(cls, port: int, **timing: Any) -> HealthCheck:
        """A TCP check of ``port`` on 127.0.0.1."""
        return cls("TCP", port=port, **timing)

    @classmethod
    def http(cls, port: int, path: str = "/", **options: Any) -> HealthCheck:
        """An HTTP check: ``GET path`` on 127.0.0.1:``port``."""
        return cls("HTTP", port=port, path=path, **options)

    @classmethod
    def shell(cls, command: str, **timing: Any) -> HealthCheck:
        """A COMMAND check: ``command`` run by the shell in the task's sandbox."""
        return cls("COMMAND", command=command, **timing)

    def to_json(self) -> dict[str, Any]:
        """Mesos's JSON (``TaskInfo.health_check``); ValueError when it is not valid."""
        out: dict[str, Any] = {"type": self.type}
        if self.type == "COMMAND":
            out["command"] = {"shell": True, "value": self.command}
        elif self.type == "HTTP":
            out["http"] = {"scheme": self.scheme, "port": self.port, "path": self.path}
            if self.statuses:
                out["http"]["statuses"] = list(self.statuses)
        elif self.type == "TCP":
            out["tcp"] = {"port": self.port}
        for name in (*TIMINGS, "consecutive_failures"):
            out[name] = getattr(self, name)
        validate_check(out, "health_check")
        return out

    def describe(self) -> str:
        """The check in words (for messages): ``TCP port 8080``."""
        return describe_check(self.to_json())


def validate_check(spec: Any, field: str = "health_check", health: bool = True) -> None:
    """ValueError naming the field when ``spec`` (Mesos JSON of a ``HealthCheck``, or of a
    ``CheckInfo`` with ``health=False``) is not one Mesos would accept."""
    if not isinstance(spec, dict):
        raise ValueError(f"{field}: must be an object, not {type(spec).__name__}")
    kind = spec.get("type")
    if kind not in KINDS:
        raise ValueError(f"{field}.type: must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == "COMMAND":
        command = spec.get("command")
        if isinstance(command, dict) and isinstance(command.get("command"), dict):
            command = command["command"]  # CheckInfo.Command wraps its CommandInfo
        if not isinstance(command, dict) or not (command.get("value") or (
                command.get("shell") is False and command.get("arguments"))):
            raise ValueError(f"{field}.command: a COMMAND check needs a command with a value")
    else:
        body = spec.get(kind.lower())
        if not isinstance(body, dict):
            raise ValueError(f"{field}.{kind.lower()}: a {kind} check needs it")
        _port(body.get("port"), f"{field}.{kind.lower()}.port")
        if kind == "HTTP":
            _http(body, f"{field}.http")
    for name in TIMINGS if health else TIMINGS[:3]:
        value = spec.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not math.isfinite(value) or value < 0:
            raise ValueError(f"{field}.{name}: must be a number of seconds >= 0, not {value!r}")
    failures = spec.get("consecutive_failures")
    if health and failures is not None and (
            isinstance(failures, bool) or not isinstance(failures, int) or failures < 1):
        raise ValueError(f"{field}.consecutive_failures: must be an integer >= 1, "
                         f"not {failures!r}")


def _port(value: Any, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError(f"{field}: must be a port number (1-65535), not {value!r}")


def _http(body: dict[str, Any], field: str) -> None:
    scheme = body.get("scheme") or "http"
    if scheme not in ("http", "https"):
        raise ValueError(f"{field}.scheme: must be http or https, not {scheme!r}")
    path = body.get("path") or "/"
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"{field}.path: must start with '/', not {path!r}")
    statuses = body.get("statuses") or []
    if not isinstance(statuses, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and 100 <= s < 600 for s in statuses):
        raise ValueError(f"{field}.statuses: must be HTTP status codes (100-599)")


def describe_check(spec: dict[str, Any]) -> str:
    """A check's JSON in words: ``TCP port 8080``, ``HTTP GET :8080/health``,
    ``COMMAND 'test -f ready'``."""
    kind = spec.get("type")
    if kind == "TCP":
        return f"TCP port {(spec.get('tcp') or {}).get('port')}"
    if kind == "HTTP":
        http = spec.get("http") or {}
        return f"HTTP GET :{http.get('port')}{http.get('path') or '/'}"
    command = spec.get("command") or {}
    return f"COMMAND {command.get('value') or ' '.join(command.get('arguments') or ())!r}"


def health_check_json(value: HealthCheck | dict[str, Any] | None) -> dict[str, Any] | None:
    """What a client may pass as a health check (a :class:`HealthCheck`, Mesos's JSON, or
    None) as Mesos's JSON; ValueError or TypeError at once when it is not valid."""
    if value is None:
        return None
    if isinstance(value, HealthCheck):
        return value.to_json()
    if isinstance(value, dict):
        validate_check(value, "health_check")
        return dict(value)
    raise TypeError(f"health_check must be a HealthCheck or a dict of Mesos's HealthCheck "
                    f"JSON, not {type(value).__name__}")
