"""Mesos's local authorizer: ACLs in Mesos's JSON format (``--acls FILE``).

An ACL file holds ``permissive`` (default true) and, per action, a list of rules, each a
subject entity ``principals`` and an object entity whose name depends on the action
(``roles``, ``users``, ``framework_principals``, ...; include/mesos/authorizer/acls.proto)::

    {"permissive": false,
     "register_frameworks": [{"principals": {"values": ["etl"]},
                              "roles": {"values": ["batch"]}}],
     "run_tasks": [{"principals": {"type": "ANY"}, "users": {"values": ["nobody"]}}],
     "teardown_frameworks": [{"principals": {"values": ["ops"]},
                              "framework_principals": {"type": "ANY"}}]}

An entity is ``{"values": [...]}`` (SOME), ``{"type": "ANY"}`` or ``{"type": "NONE"}``.
Rules are tried in order; the first whose subject and object both *match* the request
decides, allowing it when both also *allow* it (a rule with NONE matches and denies);
when none matches, ``permissive`` decides. The match and allow tables are Mesos's
(src/authorizer/local/authorizer.cpp): a request without a principal is the ANY subject,
an action on an unspecified object the ANY object.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class AclError(ValueError):
    """The ACLs cannot be used; the message says where and why."""


class Action(enum.Enum):
    """Authorizable actions: the ACL file's key, and the name of each rule's object."""

    REGISTER_FRAMEWORK = ("register_frameworks", "roles")
    RUN_TASK = ("run_tasks", "users")
    TEARDOWN_FRAMEWORK = ("teardown_frameworks", "framework_principals")
    RESERVE_RESOURCES = ("reserve_resources", "roles")
    UNRESERVE_RESOURCES = ("unreserve_resources", "reserver_principals")
    CREATE_VOLUME = ("create_volumes", "roles")
    DESTROY_VOLUME = ("destroy_volumes", "creator_principals")
    RESIZE_VOLUME = ("resize_volumes", "roles")
    GET_QUOTA = ("get_quotas", "roles")
    UPDATE_QUOTA = ("update_quotas", "roles")
    UPDATE_WEIGHT = ("update_weights", "roles")
    VIEW_ROLE = ("view_roles", "roles")
    GET_ENDPOINT = ("get_endpoints", "paths")
    VIEW_FRAMEWORK = ("view_frameworks", "users")
    VIEW_TASK = ("view_tasks", "users")
    VIEW_EXECUTOR = ("view_executors", "users")
    ACCESS_SANDBOX = ("access_sandboxes", "users")
    ACCESS_MESOS_LOG = ("access_mesos_logs", "logs")
    VIEW_FLAGS = ("view_flags", "flags")
    SET_LOG_LEVEL = ("set_log_level", "level")
    LAUNCH_NESTED_CONTAINER_SESSION = ("launch_nested_container_sessions_as_user", "users")
    LAUNCH_NESTED_CONTAINER = ("launch_nested_containers_as_user", "users")
    KILL_NESTED_CONTAINER = ("kill_nested_containers", "users")
    WAIT_NESTED_CONTAINER = ("wait_nested_containers", "users")
    REMOVE_NESTED_CONTAINER = ("remove_nested_containers", "users")
    ATTACH_CONTAINER_INPUT = ("attach_containers_input", "users")
    ATTACH_CONTAINER_OUTPUT = ("attach_containers_output", "users")
    VIEW_CONTAINER = ("view_containers", "users")
    REGISTER_AGENT = ("register_agents", "agents")
    UPDATE_MAINTENANCE_SCHEDULE = ("update_maintenance_schedules", "machines")
    GET_MAINTENANCE_SCHEDULE = ("get_maintenance_schedules", "machines")
    START_MAINTENANCE = ("start_maintenances", "machines")
    STOP_MAINTENANCE = ("stop_maintenances", "machines")
    GET_MAINTENANCE_STATUS = ("get_maintenance_statuses", "machines")
    DRAIN_AGENT = ("drain_agents", "agents")
    DEACTIVATE_AGENT = ("deactivate_agents", "agents")
    REACTIVATE_AGENT = ("reactivate_agents", "agents")
    MARK_AGENT_GONE = ("mark_agents_gone", "agents")
    LAUNCH_STANDALONE_CONTAINER = ("launch_standalone_containers", "users")
    KILL_STANDALONE_CONTAINER = ("kill_standalone_containers", "users")
    WAIT_STANDALONE_CONTAINER = ("wait_standalone_containers", "users")
    REMOVE_STANDALONE_CONTAINER = ("remove_standalone_containers", "users")
    VIEW_STANDALONE_CONTAINER = ("view_standalone_containers", "users")
    MODIFY_RESOURCE_PROVIDER_CONFIG = ("modify_resource_provider_configs",
                                       "resource_providers")
    MARK_RESOURCE_PROVIDERS_GONE = ("mark_resource_providers_gone", "resource_providers")
    VIEW_RESOURCE_PROVIDER = ("view_resource_providers", "resource_providers")
    PRUNE_IMAGES = ("prune_images", "images")
    CREATE_BLOCK_DISK = ("create_block_disks", "roles")
    DESTROY_BLOCK_DISK = ("destroy_block_disks", "roles")
    CREATE_MOUNT_DISK = ("create_mount_disks", "roles")
    DESTROY_MOUNT_DISK = ("destroy_mount_disks", "roles")
    DESTROY_RAW_DISK = ("destroy_raw_disks", "roles")

    @property
    def key(self) -> str:
        return self.value[0]

    @property
    def object_field(self) -> str:
        return self.value[1]


_BY_KEY = {action.key: action for action in Action}


class Kind(enum.Enum):
    SOME = "SOME"
    ANY = "ANY"
    NONE = "NONE"


@dataclass(frozen=True)
class Entity:
    kind: Kind
    values: frozenset[str] = frozenset()

    @classmethod
    def some(cls, *values: str) -> Entity:
        return cls(Kind.SOME, frozenset(values))

    @classmethod
    def parse(cls, data: Any, where: str) -> Entity:
        if not isinstance(data, dict):
            raise AclError(f"{where}: expected an entity object ({{\"values\": [...]}} or "
                           "{\"type\": \"ANY\"})")
        kind_name = data.get("type", "SOME")
        try:
            kind = Kind(kind_name)
        except ValueError:
            raise AclError(f"{where}.type: expected SOME, ANY or NONE, got {kind_name!r}"
                           ) from None
        values = data.get("values", [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise AclError(f"{where}.values: expected a list of strings")
        return cls(kind, frozenset(values) if kind is Kind.SOME else frozenset())


ANY = Entity(Kind.ANY)


def matches(request: Entity, acl: Entity) -> bool:
    """Mesos's match table: whether a rule's entity applies to the request's."""
    if request.kind is Kind.NONE:
        return acl.kind is Kind.NONE
    if request.kind is Kind.ANY:
        return acl.kind in (Kind.ANY, Kind.NONE)
    if acl.kind in (Kind.ANY, Kind.NONE):
        return True
    return request.values <= acl.values


def allows(request: Entity, acl: Entity) -> bool:
    """Mesos's allow table: whether a matching rule's entity grants the request's."""
    if request.kind is Kind.NONE:
        return acl.kind is Kind.NONE
    if request.kind is Kind.ANY:
        return acl.kind is Kind.ANY
    if acl.kind is Kind.ANY:
        return True
    if acl.kind is Kind.NONE:
        return False
    return request.values <= acl.values


@dataclass(frozen=True)
class Rule:
    subjects: Entity
    objects: Entity


class Acls:
    """The local authorizer: rules per action and the ``permissive`` default."""

    def __init__(self, rules: dict[Action, list[Rule]] | None = None,
                 permissive: bool = True) -> None:
        self.rules = rules or {}
        self.permissive = permissive

    def allowed(self, action: Action, principal: str | None, obj: str | None = None) -> bool:
        """Whether ``principal`` (None: unauthenticated, the ANY subject) may do ``action``
        on ``obj`` (None: unspecified, the ANY object)."""
        subject = ANY if principal is None else Entity.some(principal)
        target = ANY if obj is None else Entity.some(obj)
        for rule in self.rules.get(action, ()):
            if matches(subject, rule.subjects) and matches(target, rule.objects):
                return allows(subject, rule.subjects) and allows(target, rule.objects)
        return self.permissive

    def allowed_all(self, action: Action, principal: str | None, objs: Iterable[str]) -> bool:
        """Whether every one of ``objs`` is allowed (e.g. each role of a framework)."""
        return all(self.allowed(action, principal, o) for o in objs)

    def explain(self, action: Action, principal: str | None, obj: str | None = None) -> str:
        """The words of a 403 for a denied request."""
        who = f"Principal '{principal}'" if principal else "An unauthenticated caller"
        what = f" ({action.object_field}: '{obj}')" if obj is not None else ""
        return f"{who} is not authorized to {action.key.replace('_', ' ')}{what}"

    @classmethod
    def parse(cls, data: Any, where: str = "acls") -> Acls:
        if not isinstance(data, dict):
            raise AclError(f"{where}: expected a JSON object")
        permissive = data.get("permissive", True)
        if not isinstance(permissive, bool):
            raise AclError(f"{where}.permissive: expected true or false")
        rules: dict[Action, list[Rule]] = {}
        for key, items in data.items():
            if key == "permissive":
                continue
            action = _BY_KEY.get(key)
            if action is None:
                raise AclError(f"{where}: unknown action '{key}' (known: "
                               f"{', '.join(sorted(_BY_KEY))})")
            if not isinstance(items, list):
                raise AclError(f"{where}.{key}: expected a list of rules")
            parsed = []
            for i, item in enumerate(items):
                here = f"{where}.{key}[{i}]"
                if not isinstance(item, dict):
                    raise AclError(f"{here}: expected an object")
                for field in ("principals", action.object_field):
                    if field not in item:
                        raise AclError(f"{here}: missing '{field}'")
                parsed.append(Rule(Entity.parse(item["principals"], f"{here}.principals"),
                                   Entity.parse(item[action.object_field],
                                                f"{here}.{action.object_field}")))
            rules[action] = parsed
        return cls(rules, permissive)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Acls:
        """Read ``--acls FILE`` (a path; Mesos also takes the JSON text itself)."""
        text = str(path)
        if not text.lstrip().startswith("{"):
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise AclError(f"Cannot read ACLs file {path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AclError(f"ACLs: invalid JSON: {exc}") from None
        return cls.parse(data)


PERMISSIVE = Acls()
