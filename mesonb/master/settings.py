"""Operator settings kept in the registry: role weights, quota, the maintenance schedule,
and the agents deactivated or drained.

Each is one record under the registry's ``settings`` kind, written (in the background,
a failure logged) whenever an operator changes it, and taken in by a new leader in
:meth:`~.master.Master.recover`, so weights, quota limits and maintenance survive a
master failover as in Mesos (whose registry holds the same three).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from .maintenance import Schedule
from .quota import Quotas
from .registry import Registry

log = logging.getLogger(__name__)


class _HasSchedule(Protocol):
    @property
    def schedule(self) -> Schedule: ...


class _HasAgentRecords(Protocol):
    def record(self) -> dict[str, Any]: ...

    def restore(self, record: dict[str, Any]) -> None: ...


class SettingsHost(Protocol):
    """What the settings are read from and restored into (the master)."""

    role_weights: dict[str, float]
    quotas: Quotas
    registry: Registry | None

    @property
    def maintenance(self) -> _HasSchedule: ...

    @property
    def drains(self) -> _HasAgentRecords: ...

    def persist(self, future: Any, what: str) -> None: ...

WEIGHTS, QUOTA, MAINTENANCE, AGENTS = "weights", "quota", "maintenance", "agents"


def record(master: SettingsHost, name: str) -> dict[str, Any]:
    if name == WEIGHTS:
        return {"weights": dict(sorted(master.role_weights.items()))}
    if name == QUOTA:
        return master.quotas.to_record()
    if name == MAINTENANCE:
        return master.maintenance.schedule.to_record()
    if name == AGENTS:
        return master.drains.record()
    raise ValueError(f"unknown setting {name!r}")


def save(master: SettingsHost, name: str) -> None:
    """Write the setting ``name`` to the registry (when the master has one)."""
    if master.registry is not None:
        master.persist(master.registry.put_setting(name, record(master, name)),
                       f"setting {name}")


def restore(master: SettingsHost, settings: dict[str, dict[str, Any]]) -> None:
    """Take in the settings a registry holds; an unreadable one is logged and skipped."""
    for name, value in settings.items():
        try:
            if name == WEIGHTS:
                weights = value.get("weights") or {}
                master.role_weights.update({str(r): float(w) for r, w in weights.items()
                                            if float(w) > 0})
            elif name == QUOTA:
                master.quotas.restore(value)
            elif name == MAINTENANCE:
                master.maintenance.schedule.restore(value)
            elif name == AGENTS:
                master.drains.restore(value)
            else:
                log.warning("registry: unknown setting %r ignored", name)
        except Exception as exc:  # a record we cannot read must not stop recovery
            log.warning("registry: unreadable setting %s: %r", name, exc)
