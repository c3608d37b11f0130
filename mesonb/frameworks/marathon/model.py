"""Marathon's app definition: defaults, validation with Marathon's 422 shape, and JSON.

An app is read from Marathon's JSON (``{"id": "/web", "cmd": "...", "instances": 2}``)
into an :class:`AppDefinition` with Marathon's defaults (cpus 1, mem 128, disk 0,
instances 1, backoff 1 s x 1.15 up to 300 s, upgradeStrategy 1/1). What is wrong is
reported the way Marathon reports it, so clients show the same messages:

* a value of the wrong JSON type -> 400 ``{"message": "Invalid JSON", "details": [...]}``;
* a value out of range or an inconsistent app -> 422 ``{"message": "Object is not valid",
  "details": [{"path": "/cpus", "errors": ["..."]}]}``.

:meth:`AppDefinition.to_json` writes only fields that marathon-python's strict models
know (its ``from_json`` passes every key to ``__init__``); fields we do not support are
dropped on input.

>>> app = parse_app({"id": "web", "cmd": "sleep 100"})
>>> app.id, app.cpus, app.mem, app.instances
('/web', 1.0, 128.0, 1)
"""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import UTC, datetime
from typing import Any

ID_SEGMENT = re.compile(r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*"
                        r"([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$")
RESERVED_ENDINGS = ("restart", "tasks", "versions")
OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS")
HEALTH_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS",
                    "MESOS_TCP")
KILL_SELECTIONS = ("YOUNGEST_FIRST", "OLDEST_FIRST")
DEPLOY_TIMEOUT_LABEL = "MESONB_DEPLOY_TIMEOUT"
HEALTH_DEFAULTS = {"gracePeriodSeconds": 300, "intervalSeconds": 60, "timeoutSeconds": 20,
                   "maxConsecutiveFailures": 3, "delaySeconds": 15, "ignoreHttp1xx": False}
READINESS_DEFAULTS = {"name": "readinessCheck", "protocol": "HTTP", "path": "/",
                      "portName": "http-api", "intervalSeconds": 30, "timeoutSeconds": 10,
                      "httpStatusCodesForReady": [200], "preserveLastResponse": False}
READINESS_KEYS = tuple(READINESS_DEFAULTS)
PORT_KEYS = ("port", "protocol", "name", "labels")


class InvalidJSON(Exception):
    """400: the body is not JSON, or a field has the wrong JSON type."""

    def __init__(self, details: list[dict[str, Any]]) -> None:
        super().__init__("Invalid JSON")
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"message": "Invalid JSON", "details": self.details}


class InvalidObject(Exception):
    """422: the app is well-formed JSON but not a valid app."""

    def __init__(self, details: list[dict[str, Any]]) -> None:
        super().__init__("Object is not valid")
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"message": "Object is not valid", "details": self.details}


def timestamp(epoch: float | None = None) -> str:
    """Marathon's timestamps and version ids: ``2015-09-30T09:09:17.614Z``."""
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def normalize_path(path: str, base: str = "/") -> str:
    """``web`` -> ``/web``, ``//a//b/`` -> ``/a/b``; relative ids resolve under ``base``."""
    if not path.startswith("/"):
        path = base.rstrip("/") + "/" + path
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def path_problems(path: str) -> list[str]:
    """Why ``path`` is no valid Marathon id (empty when it is)."""
    segments = [s for s in path.split("/") if s]
    if not segments:
        return ["Path must not be empty or the root group"]
    bad = [s for s in segments if not ID_SEGMENT.match(s)]
    if bad:
        return ["must fully match regular expression "
                "'^(([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])\\.)*([a-z0-9]|"
                "[a-z0-9][a-z0-9\\-]*[a-z0-9])|(\\.|\\.\\.)$'"]
    return []


def parent_of(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


# -- the fields: JSON name, attribute, JSON type, default ------------------------------------
_NUMBER = (int, float)
_FIELDS: tuple[tuple[str, str, Any, Any], ...] = (
    ("id", "id", str, None),
    ("cmd", "cmd", str, None),
    ("args", "args", list, None),
    ("user", "user", str, None),
    ("env", "env", dict, dict),
    ("instances", "instances", int, 1),
    ("cpus", "cpus", _NUMBER, 1.0),
    ("mem", "mem", _NUMBER, 128.0),
    ("disk", "disk", _NUMBER, 0.0),
    ("gpus", "gpus", int, 0),
    ("executor", "executor", str, ""),
    ("constraints", "constraints", list, list),
    ("uris", "uris", list, list),
    ("fetch", "fetch", list, list),
    ("storeUrls", "store_urls", list, list),
    ("backoffSeconds", "backoff_seconds", _NUMBER, 1.0),
    ("backoffFactor", "backoff_factor", _NUMBER, 1.15),
    ("maxLaunchDelaySeconds", "max_launch_delay_seconds", _NUMBER, 300.0),
    ("container", "container", dict, None),
    ("healthChecks", "health_checks", list, list),
    ("readinessChecks", "readiness_checks", list, list),
    ("dependencies", "dependencies", list, list),
    ("upgradeStrategy", "upgrade_strategy", dict, None),
    ("labels", "labels", dict, dict),
    ("acceptedResourceRoles", "accepted_resource_roles", list, None),
    ("killSelection", "kill_selection", str, "YOUNGEST_FIRST"),
    ("requirePorts", "require_ports", bool, False),
    ("portDefinitions", "port_definitions", list, None),
    ("taskKillGracePeriodSeconds", "task_kill_grace_period_seconds", _NUMBER, None),
    ("unreachableStrategy", "unreachable_strategy", (dict, str), None),
    ("secrets", "secrets", dict, dict),
    ("role", "role", str, None),
    ("networks", "networks", list, None),
)
_JS_TYPE = {str: "jsstring", list: "jsarray", dict: "jsobject", int: "jsnumber",
            _NUMBER: "jsnumber", bool: "jsboolean", (dict, str): "jsobject"}
UNREACHABLE_DISABLED = "disabled"
UNREACHABLE_KEYS = {"inactiveAfterSeconds": "inactiveAfterSeconds",
                    "expungeAfterSeconds": "expungeAfterSeconds",
                    # marathon-python's older names for the same
                    "unreachableInactiveAfterSeconds": "inactiveAfterSeconds",
                    "unreachableExpungeAfterSeconds": "expungeAfterSeconds"}
UPDATABLE = {name for name, _attr, _t, _d in _FIELDS} - {"id"}


@dataclasses.dataclass
class AppDefinition:
    """One version of an app, as Marathon defines it (see :func:`parse_app`)."""

    id: str
    cmd: str | None = None
    args: list[str] | None = None
    user: str | None = None
    env: dict[str, Any] = dataclasses.field(default_factory=dict)
    instances: int = 1
    cpus: float = 1.0
    mem: float = 128.0
    disk: float = 0.0
    gpus: int = 0
    executor: str = ""
    constraints: list[list[str]] = dataclasses.field(default_factory=list)
    uris: list[str] = dataclasses.field(default_factory=list)
    fetch: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    store_urls: list[str] = dataclasses.field(default_factory=list)
    backoff_seconds: float = 1.0
    backoff_factor: float = 1.15
    max_launch_delay_seconds: float = 300.0
    container: dict[str, Any] | None = None
    health_checks: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    readiness_checks: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    dependencies: list[str] = dataclasses.field(default_factory=list)
    upgrade_strategy: dict[str, Any] | None = None
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    accepted_resource_roles: list[str] | None = None
    kill_selection: str = "YOUNGEST_FIRST"
    require_ports: bool = False
    port_definitions: list[dict[str, Any]] | None = None
    task_kill_grace_period_seconds: float | None = None
    unreachable_strategy: dict[str, Any] | str | None = None
    secrets: dict[str, Any] = dataclasses.field(default_factory=dict)
    role: str | None = None
    networks: list[dict[str, Any]] | None = None
    version: str = ""  # this definition's version (a timestamp)
    last_config_change_at: str = ""  # the version whose config tasks must run
    last_scaling_at: str = ""
    pod: dict[str, Any] | None = None  # a pod's spec (see .pods); None for an app

    # -- derived ------------------------------------------------------------------------
    @property
    def minimum_health_capacity(self) -> float:
        return float((self.upgrade_strategy or {}).get("minimumHealthCapacity", 1.0))

    @property
    def maximum_over_capacity(self) -> float:
        return float((self.upgrade_strategy or {}).get("maximumOverCapacity", 1.0))

    @property
    def ports(self) -> list[dict[str, Any]]:
        """The port definitions (Marathon's default: one dynamic tcp port)."""
        if self.port_definitions is None:
            return [{"port": 0, "protocol": "tcp"}]
        return self.port_definitions

    @property
    def unreachable(self) -> tuple[float, float] | None:
        """``unreachableStrategy`` as (inactiveAfterSeconds, expungeAfterSeconds); None when
        "disabled" (an unreachable instance is never replaced nor expunged). Marathon's
        default is (0, 0): replaced at once, forgotten (and killed if it comes back)."""
        strategy = self.unreachable_strategy
        if isinstance(strategy, str):  # "disabled" (validated)
            return None
        values = {UNREACHABLE_KEYS[k]: v for k, v in (strategy or {}).items()
                  if k in UNREACHABLE_KEYS and v is not None}
        return (float(values.get("inactiveAfterSeconds", 0)),
                float(values.get("expungeAfterSeconds", 0)))

    @property
    def deploy_timeout(self) -> float | None:
        """Seconds a deployment of this app may take (label MESONB_DEPLOY_TIMEOUT)."""
        value = self.labels.get(DEPLOY_TIMEOUT_LABEL)
        return float(value) if value not in (None, "") else None

    def same_config(self, other: AppDefinition) -> bool:
        """Whether tasks of ``other`` run this definition unchanged (scaling aside)."""
        if self.pod is not None or other.pod is not None:
            return {**(self.pod or {}), "scaling": None} == {**(other.pod or {}),
                                                             "scaling": None}
        a, b = self.to_json(), other.to_json()
        for key in ("instances", "version", "versionInfo"):
            a.pop(key, None)
            b.pop(key, None)
        return a == b

    # -- JSON -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Marathon's app JSON: the definition, with only fields marathon-python knows."""
        # Nested values are shared with the definition, not copied (GET /v2/groups writes
        # hundreds of apps): callers change only the top level of what they get.
        out: dict[str, Any] = {}
        for name, attr, _type, _default in _FIELDS:
            value = getattr(self, attr)
            if value is not None:
                out[name] = value
        out["portDefinitions"] = self.ports
        out["upgradeStrategy"] = {"minimumHealthCapacity": self.minimum_health_capacity,
                                  "maximumOverCapacity": self.maximum_over_capacity}
        out["healthChecks"] = [{**HEALTH_DEFAULTS, **hc} for hc in self.health_checks]
        out["readinessChecks"] = [{**READINESS_DEFAULTS, **rc} for rc in self.readiness_checks]
        unreachable = self.unreachable
        out["unreachableStrategy"] = UNREACHABLE_DISABLED if unreachable is None else {
            "inactiveAfterSeconds": int(unreachable[0]),
            "expungeAfterSeconds": int(unreachable[1])}
        if not self.version:
            return out
        out["version"] = self.version
        out["versionInfo"] = {"lastScalingAt": self.last_scaling_at or self.version,
                              "lastConfigChangeAt": self.last_config_change_at or self.version}
        return out

    def to_store(self) -> dict[str, Any]:
        """What persistence keeps (the JSON plus the version info, and a pod's spec)."""
        out = self.to_json()
        if self.pod is not None:
            out["pod"] = self.pod
        return out

    @classmethod
    def from_store(cls, data: dict[str, Any]) -> AppDefinition:
        app = parse_app(data)
        app.version = data.get("version", "")
        info = data.get("versionInfo") or {}
        app.last_config_change_at = info.get("lastConfigChangeAt", app.version)
        app.last_scaling_at = info.get("lastScalingAt", app.version)
        app.pod = data.get("pod")
        return app


def parse_app(body: Any, base: str = "/", require_id: bool = True) -> AppDefinition:
    """Read and validate an app; raises :class:`InvalidJSON` (400) or :class:`InvalidObject`
    (422)."""
    if not isinstance(body, dict):
        raise InvalidJSON([{"path": "/", "errors": ["error.expected.jsobject"]}])
    typed: list[dict[str, Any]] = []
    values: dict[str, Any] = {}
    for name, attr, kind, default in _FIELDS:
        value = body.get(name)
        if value is None:
            values[attr] = default() if callable(default) else default
            continue
        ok = isinstance(value, kind) and not (kind in (int, _NUMBER) and isinstance(value, bool))
        if kind is int and isinstance(value, float) and value.is_integer():
            value, ok = int(value), True
        if not ok:
            typed.append({"path": f"/{name}", "errors": [f"error.expected.{_JS_TYPE[kind]}"]})
            continue
        values[attr] = float(value) if kind is _NUMBER else value
    if typed:
        raise InvalidJSON(typed)
    if values["id"] is None:
        values["id"] = "" if require_id else base
    elif values["id"] is not None:
        values["id"] = normalize_path(values["id"], base)
    app = AppDefinition(**values)
    if app.port_definitions is None and isinstance(body.get("ports"), list):
        app.port_definitions = [{"port": p, "protocol": "tcp"} for p in body["ports"]
                                if isinstance(p, int)]
    app.dependencies = [normalize_path(d, parent_of(app.id or "/"))
                        for d in app.dependencies if isinstance(d, str)]
    problems = validate(app, require_id)
    if problems:
        raise InvalidObject(problems)
    return app


def validate(app: AppDefinition, require_id: bool = True) -> list[dict[str, Any]]:
    """Marathon's checks of an app; a list of ``{"path", "errors"}`` (empty: valid)."""
    out: list[dict[str, Any]] = []

    def bad(path: str, error: str) -> None:
        for item in out:
            if item["path"] == path:
                item["errors"].append(error)
                return
        out.append({"path": path, "errors": [error]})

    if require_id:
        if not app.id or app.id == "/":
            bad("/id", "error.path.missing")
        else:
            for problem in path_problems(app.id):
                bad("/id", problem)
            if app.id.rsplit("/", 1)[-1] in RESERVED_ENDINGS:
                bad("/id", f"must not end with {', '.join(RESERVED_ENDINGS)}")
    if app.cmd is not None and app.args is not None:
        bad("/", "AppDefinition must either contain one of 'cmd' or 'args', not both")
    if app.cmd is None and app.args is None and app.container is None:
        bad("/", "AppDefinition must either contain one of 'cmd' or 'args', "
                 "and/or a 'container'.")
    if app.args is not None and not all(isinstance(a, str) for a in app.args):
        bad("/args", "error.expected.jsstring")
    if app.cpus < 0.001:
        bad("/cpus", f"got {app.cpus:g}, expected 0.001 or more")
    for attr, path in (("mem", "/mem"), ("disk", "/disk"), ("gpus", "/gpus"),
                       ("instances", "/instances"), ("backoff_seconds", "/backoffSeconds"),
                       ("max_launch_delay_seconds", "/maxLaunchDelaySeconds")):
        if getattr(app, attr) < 0:
            bad(path, f"got {getattr(app, attr):g}, expected 0 or more")
    if app.backoff_factor < 1.0:
        bad("/backoffFactor", f"got {app.backoff_factor:g}, expected 1.0 or more")
    for key, value in (app.upgrade_strategy or {}).items():
        if key not in ("minimumHealthCapacity", "maximumOverCapacity"):
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            bad(f"/upgradeStrategy/{key}", "error.expected.jsnumber")
        elif value > 1:
            bad(f"/upgradeStrategy/{key}", "is greater than 1")
        elif value < 0:
            bad(f"/upgradeStrategy/{key}", "is less than 0")
    if app.kill_selection not in KILL_SELECTIONS:
        bad("/killSelection", f"must be one of {', '.join(KILL_SELECTIONS)}")
    for i, env_value in enumerate(app.env.values()):
        if not isinstance(env_value, (str, dict)):
            bad(f"/env/{list(app.env)[i]}", "error.expected.jsstring")
    for key, label in app.labels.items():
        if not isinstance(label, str):
            bad(f"/labels/{key}", "error.expected.jsstring")
    try:
        timeout = app.deploy_timeout
        if timeout is not None and timeout <= 0:
            bad(f"/labels/{DEPLOY_TIMEOUT_LABEL}", "must be a positive number of seconds")
    except (TypeError, ValueError):
        bad(f"/labels/{DEPLOY_TIMEOUT_LABEL}", "must be a positive number of seconds")
    for i, constraint in enumerate(app.constraints):
        for problem in constraint_problems(constraint):
            bad(f"/constraints({i})", problem)
    for i, uri in enumerate(app.uris):
        if not isinstance(uri, str):
            bad(f"/uris({i})", "error.expected.jsstring")
    for i, item in enumerate(app.fetch):
        if not isinstance(item, dict) or not isinstance(item.get("uri"), str):
            bad(f"/fetch({i})/uri", "error.path.missing")
    ports = app.ports
    names = [p.get("name") for p in ports if isinstance(p, dict) and p.get("name")]
    if len(names) != len(set(names)):
        bad("/portDefinitions", "Port names must be unique.")
    for i, port in enumerate(ports):
        if not isinstance(port, dict) or not isinstance(port.get("port", 0), int) \
                or not 0 <= port.get("port", 0) <= 65535:
            bad(f"/portDefinitions({i})/port", "got an invalid port, expected 0 to 65535")
        elif set(port) - set(PORT_KEYS):
            bad(f"/portDefinitions({i})", "unknown fields: " + ", ".join(sorted(
                set(port) - set(PORT_KEYS))))
    for i, check in enumerate(app.health_checks):
        for path, problem in health_check_problems(check, len(ports)):
            bad(f"/healthChecks({i}){path}", problem)
    for i, check in enumerate(app.readiness_checks):
        if not isinstance(check, dict) or set(check) - set(READINESS_KEYS):
            bad(f"/readinessChecks({i})", "unknown fields")
        elif {**READINESS_DEFAULTS, **check}["portName"] not in names:
            bad(f"/readinessChecks({i})/portName", "must name one of the portDefinitions")
    for i, role in enumerate(app.accepted_resource_roles or []):
        if not isinstance(role, str) or not role:
            bad(f"/acceptedResourceRoles({i})", "must be a role name or '*'")
    grace = app.task_kill_grace_period_seconds
    if grace is not None and grace < 0:
        bad("/taskKillGracePeriodSeconds", "got a negative number, expected 0 or more")
    for path, problem in unreachable_problems(app.unreachable_strategy):
        bad(f"/unreachableStrategy{path}", problem)
    return out


def unreachable_problems(strategy: Any) -> list[tuple[str, str]]:
    """Why an ``unreachableStrategy`` (an object or "disabled") is not valid."""
    if strategy is None or strategy == UNREACHABLE_DISABLED:
        return []
    if isinstance(strategy, str):
        return [("", f"must be an object or '{UNREACHABLE_DISABLED}'")]
    out: list[tuple[str, str]] = []
    for key in sorted(set(strategy) - set(UNREACHABLE_KEYS)):
        out.append((f"/{key}", "error.path.unknown"))
    values: dict[str, float] = {}
    for key, value in strategy.items():
        if key not in UNREACHABLE_KEYS or value is None:  # marathon-python sends nulls
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            out.append((f"/{key}", "error.expected.jsnumber"))
        elif value < 0:
            out.append((f"/{key}", f"{UNREACHABLE_KEYS[key]} ({value}) must be greater than "
                                   "or equal to 0"))
        else:
            values[UNREACHABLE_KEYS[key]] = value
    inactive = values.get("inactiveAfterSeconds", 0)
    expunge = values.get("expungeAfterSeconds", 0)
    if not out and inactive > expunge:
        out.append(("/inactiveAfterSeconds", f"inactiveAfterSeconds ({inactive:g}) must be less "
                    f"or equal to expungeAfterSeconds, which is {expunge:g}"))
    return out


def constraint_problems(constraint: Any) -> list[str]:
    """Why a constraint ``[field, OPERATOR, value?]`` is not valid."""
    if not isinstance(constraint, list) or not 2 <= len(constraint) <= 3 \
            or not all(isinstance(c, str) for c in constraint):
        return ["Each constraint must be an array of 2 or 3 strings: field, operator, value"]
    field, operator, *rest = constraint
    value = rest[0] if rest else None
    if operator not in OPERATORS:
        return [f"Constraint operator must be one of {', '.join(OPERATORS)}"]
    if operator == "UNIQUE" and value is not None:
        return ["Value specified but not used"]
    if operator in ("CLUSTER", "LIKE", "UNLIKE", "MAX_PER", "IS") and value is None:
        return [f"Missing value for operator {operator}"]
    if operator in ("LIKE", "UNLIKE"):
        try:
            re.compile(value or "")
        except re.error:
            return ["is not a valid regular expression"]
    if operator in ("GROUP_BY", "MAX_PER") and value is not None and not value.isdigit():
        return ["Value was not a valid integer"]
    del field
    return []


def health_check_problems(check: Any, port_count: int) -> list[tuple[str, str]]:
    if not isinstance(check, dict):
        return [("", "error.expected.jsobject")]
    out: list[tuple[str, str]] = []
    protocol = check.get("protocol", "HTTP")
    if protocol not in HEALTH_PROTOCOLS:
        out.append(("/protocol", f"must be one of {', '.join(HEALTH_PROTOCOLS)}"))
    if protocol == "COMMAND" and not (check.get("command") or {}).get("value"):
        out.append(("/command", "A COMMAND health check needs a command"))
    index = check.get("portIndex")
    if protocol != "COMMAND" and check.get("port") is None:
        index = 0 if index is None else index
        if not isinstance(index, int) or not 0 <= index < port_count:
            out.append(("/portIndex", "Health check port indices must address an element of "
                                      "the ports array or container port mappings."))
    for key in ("gracePeriodSeconds", "intervalSeconds", "timeoutSeconds",
                "maxConsecutiveFailures", "delaySeconds"):
        value = check.get(key)
        if value is not None and (not isinstance(value, (int, float)) or value < 0):
            out.append((f"/{key}", "got a negative or non-numeric value, expected 0 or more"))
    return out


def merge_update(current: AppDefinition, patch: dict[str, Any]) -> dict[str, Any]:
    """The JSON of ``current`` with the fields given in ``patch`` replaced (PUT/PATCH)."""
    merged = current.to_json()
    for key in ("version", "versionInfo"):
        merged.pop(key, None)
    for key, value in patch.items():
        if key in UPDATABLE or key == "ports":
            merged[key] = value
    if "ports" in patch and "portDefinitions" not in patch:
        merged.pop("portDefinitions", None)
    return merged
