"""Quota: per-role limits (and guarantees, kept and shown) on scalar resources.

As Mesos 1.9+ (include/mesos/v1/quota/quota.proto, docs/quota.md):

* ``UPDATE_QUOTA{force, quota_configs: [{role, guarantees, limits}]}`` sets the quota of
  each role in the list, all or nothing; a config with neither guarantees nor limits
  resets the role to the default (no quota). Without ``force`` it is refused when a role
  already consumes more than its new limits, or when the guarantees of all roles together
  would exceed the cluster's total (409). Guarantees may not exceed limits, and a
  sub-role's limits may not exceed its parent's.
* The older ``SET_QUOTA{quota_request: {role, guarantee: [Resource], force}}`` sets both
  guarantees and limits to the guarantee (refused when the role has quota already), and
  ``REMOVE_QUOTA{role}`` resets the role.
* ``GET_QUOTA`` answers ``QuotaStatus{infos, configs}``; ``infos`` are the old
  ``QuotaInfo{role, guarantee}`` form of the same configs.

The allocator enforces the limits (:mod:`mesonb.allocator.quota`); the configs are kept in
the registry (:mod:`.settings`), so a new leader enforces them too. Pure data and
validation here; the operator API carries the calls out (:mod:`.http.operator_maintenance`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from mesonb.protocol.errors import BadRequest, Conflict
from mesonb.protocol.roles import validate_role

_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,64}$")


@dataclasses.dataclass(frozen=True)
class QuotaConfig:
    """``mesos.v1.quota.QuotaConfig``: scalar quantities by resource name."""

    role: str
    guarantees: Mapping[str, float] = dataclasses.field(default_factory=dict)
    limits: Mapping[str, float] = dataclasses.field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.guarantees and not self.limits

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role}
        if self.guarantees:
            out["guarantees"] = _quantities_json(self.guarantees)
        if self.limits:
            out["limits"] = _quantities_json(self.limits)
        return out

    def info_json(self) -> dict[str, Any]:
        """The deprecated ``QuotaInfo{role, guarantee: [Resource]}`` form."""
        return {"role": self.role, "guarantee": [
            {"name": name, "type": "SCALAR", "scalar": {"value": value}}
            for name, value in sorted(self.guarantees.items())]}

    @classmethod
    def from_json(cls, data: Any, where: str = "quota_config") -> QuotaConfig:
        if not isinstance(data, dict):
            raise BadRequest(f"Expecting '{where}' to be an object")
        role = data.get("role")
        if not isinstance(role, str):
            raise BadRequest(f"Expecting '{where}.role' to be a string")
        return cls(_role(role), _quantities(data.get("guarantees"), f"{where}.guarantees"),
                   _quantities(data.get("limits"), f"{where}.limits"))


def _quantities_json(values: Mapping[str, float]) -> dict[str, Any]:
    return {name: {"value": value} for name, value in sorted(values.items())}


def _role(role: str) -> str:
    if role == "*":
        raise BadRequest("Invalid QuotaConfig: setting quota for the default '*' role is "
                         "not supported")
    problem = validate_role(role)
    if problem is not None:
        raise BadRequest(f"Invalid QuotaConfig: invalid role '{role}': {problem}")
    return role


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"Expecting '{where}' to be a number")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise BadRequest(f"Invalid QuotaConfig: '{where}' must be a finite, non-negative "
                         f"number, not {value!r}")
    return round(number, 3)


def _quantities(data: Any, where: str) -> dict[str, float]:
    """A ``map<string, Value.Scalar>``: ``{"cpus": {"value": 2}}``."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadRequest(f"Expecting '{where}' to be an object of resource names")
    out: dict[str, float] = {}
    for name, scalar in data.items():
        if not _NAME.match(name):
            raise BadRequest(f"Invalid QuotaConfig: bad resource name '{name}' in '{where}'")
        if not isinstance(scalar, dict) or "value" not in scalar:
            raise BadRequest(f"Expecting '{where}.{name}.value' to be present")
        out[name] = _number(scalar["value"], f"{where}.{name}.value")
    return out


def parse_update(body: Any) -> tuple[bool, list[QuotaConfig]]:
    """``Call.UpdateQuota``: (force, configs); BadRequest when malformed."""
    if not isinstance(body, dict):
        raise BadRequest("Expecting 'update_quota' to be present")
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise BadRequest("Expecting 'update_quota.force' to be a boolean")
    items = body.get("quota_configs")
    if not isinstance(items, list):
        raise BadRequest("Expecting 'update_quota.quota_configs' to be a list")
    configs = [QuotaConfig.from_json(item, f"quota_configs[{i}]") for i, item in
               enumerate(items)]
    roles = [c.role for c in configs]
    if len(set(roles)) != len(roles):
        raise BadRequest("Invalid QuotaConfig: a role appears more than once in the request")
    return force, configs


def parse_request(body: Any, where: str = "quota_request") -> tuple[bool, QuotaConfig]:
    """The deprecated ``QuotaRequest{force, role, guarantee: [Resource]}`` (SET_QUOTA and
    ``POST /master/quota``): guarantees and limits both set to the guarantee."""
    if not isinstance(body, dict):
        raise BadRequest(f"Expecting '{where}' to be an object")
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise BadRequest(f"Expecting '{where}.force' to be a boolean")
    role = body.get("role")
    if not isinstance(role, str):
        raise BadRequest(f"Expecting '{where}.role' to be a string")
    items = body.get("guarantee")
    if not isinstance(items, list) or not items:
        raise BadRequest(f"Expecting '{where}.guarantee' to be a non-empty list of resources")
    amounts: dict[str, float] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequest(f"Expecting '{where}.guarantee[{i}].name' to be a string")
        if item.get("type", "SCALAR") != "SCALAR" or not isinstance(item.get("scalar"), dict):
            raise BadRequest(f"Invalid QuotaRequest: '{where}.guarantee[{i}]' must be a "
                             "scalar resource")
        if item.get("reservations") or item.get("role", "*") != "*":
            raise BadRequest("Invalid QuotaRequest: quota cannot be set on reserved resources")
        name = item["name"]
        amounts[name] = amounts.get(name, 0.0) + _number(
            item["scalar"].get("value"), f"{where}.guarantee[{i}].scalar.value")
    config = QuotaConfig(_role(role), amounts, amounts)
    return force, config


def _guaranteed(configs: Mapping[str, QuotaConfig]) -> dict[str, float]:
    """The guarantees of top-level roles summed (a sub-role's are inside its parent's)."""
    out: dict[str, float] = {}
    for role, config in configs.items():
        if "/" not in role:
            for name, value in config.guarantees.items():
                out[name] = out.get(name, 0.0) + value
    return out


class Quotas:
    """The roles' quota configs (only roles with some quota are held)."""

    def __init__(self) -> None:
        self.configs: dict[str, QuotaConfig] = {}

    def limits(self) -> dict[str, dict[str, float]]:
        """role -> resource -> limit, for the allocator's snapshot."""
        return {role: dict(c.limits) for role, c in self.configs.items() if c.limits}

    def status_json(self, visible: Iterable[str] | None = None) -> dict[str, Any]:
        """``QuotaStatus``; ``visible``: the roles the caller may see (None: all)."""
        roles = sorted(self.configs if visible is None else set(visible) & set(self.configs))
        return {"infos": [self.configs[r].info_json() for r in roles],
                "configs": [self.configs[r].to_json() for r in roles]}

    def check(self, configs: list[QuotaConfig], force: bool,
              consumed: Mapping[str, Mapping[str, float]],
              total: Mapping[str, float] | None = None) -> None:
        """Refuse an update that cannot be applied (BadRequest; Conflict when the
        guarantees overcommit the cluster's ``total``); ``consumed``: what each role and
        its sub-roles hold now."""
        after = dict(self.configs)
        for config in configs:
            after[config.role] = config
        for config in configs:
            for name, guarantee in config.guarantees.items():
                if name in config.limits and guarantee > config.limits[name]:
                    raise BadRequest(f"Invalid QuotaConfig: role '{config.role}': guarantee "
                                     f"{name}:{guarantee:g} exceeds limit "
                                     f"{name}:{config.limits[name]:g}")
        for role, config in after.items():
            parts = role.split("/")
            for i in range(1, len(parts)):
                parent = after.get("/".join(parts[:i]))
                if parent is None:
                    continue
                for name, limit in config.limits.items():
                    if name in parent.limits and limit > parent.limits[name]:
                        raise BadRequest(
                            f"Invalid QuotaConfig: role '{role}' limit {name}:{limit:g} "
                            f"exceeds its parent role '{parent.role}' limit "
                            f"{name}:{parent.limits[name]:g}")
        if force:
            return
        if total is not None:  # only an update that adds guarantees is checked
            now, then = _guaranteed(self.configs), _guaranteed(after)
            over = {n: v for n, v in then.items()
                    if v > total.get(n, 0.0) + 1e-9 and v > now.get(n, 0.0)}
            if over:
                text = ";".join(f"{n}:{v:g}" for n, v in sorted(over.items()))
                raise Conflict(f"Total quota guarantees '{text}' exceed the cluster's "
                               "resources (use 'force' to bypass this check)")
        for config in configs:
            held = consumed.get(config.role, {})
            over = {n: held.get(n, 0.0) for n, limit in config.limits.items()
                    if held.get(n, 0.0) > limit + 1e-9}
            if over:
                text = ";".join(f"{n}:{v:g}" for n, v in sorted(over.items()))
                raise BadRequest(f"Invalid QuotaConfig: role '{config.role}' is already "
                                 f"consuming '{text}', more than the requested limits (use "
                                 "'force' to bypass this check)")

    def apply(self, configs: list[QuotaConfig]) -> None:
        for config in configs:
            if config.empty:
                self.configs.pop(config.role, None)
            else:
                self.configs[config.role] = config

    # -- the registry record ---------------------------------------------------------
    def to_record(self) -> dict[str, Any]:
        return {"configs": [c.to_json() for _, c in sorted(self.configs.items())]}

    def restore(self, record: Mapping[str, Any]) -> None:
        self.configs = {}
        for item in record.get("configs") or ():
            config = QuotaConfig.from_json(item)
            self.configs[config.role] = config
