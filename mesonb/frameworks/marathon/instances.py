"""An app instance (one Mesos task) as the framework keeps it, and its Marathon JSON.

The task id names the app, so that a task found by reconciliation after a restart is
known to belong to it: ``/group/web`` -> ``group_web.<uuid>`` (Marathon's pre-1.5 form;
ids never hold ``_``, so the mapping is reversible).
"""

from __future__ import annotations

import dataclasses
import uuid
import zlib
from typing import Any

from .instance_fsm import InstanceState


def new_task_id(app_id: str) -> str:
    return f"{app_id.strip('/').replace('/', '_')}.{uuid.uuid4()}"


def service_ports(app_id: str, definitions: list[dict[str, Any]], count: int) -> list[int]:
    """Marathon's service ports (10000-20000) for an app's port definitions: the fixed
    port when one is given, else one derived from the app id (stable across restarts)."""
    out = []
    for i in range(count):
        port = definitions[i].get("port") if i < len(definitions) else 0
        out.append(int(port) if port else 10000 + zlib.crc32(f"{app_id}#{i}".encode()) % 10000)
    return out


def app_of_task(task_id: str) -> str | None:
    """The app id a task id names, or None if it is not one of ours."""
    prefix, dot, rest = task_id.rpartition(".")
    if not dot or len(rest) != 36:
        return None
    return "/" + prefix.replace("_", "/")


@dataclasses.dataclass(eq=False)
class Instance:
    """One task of an app."""

    id: str
    app_id: str
    config_version: str  # the app's lastConfigChangeAt when it was launched
    version: str  # the app version it was launched with
    agent_id: str = ""
    host: str = ""
    ip: str = ""  # where Marathon-side health checks connect
    ports: list[int] = dataclasses.field(default_factory=list)
    role: str = "*"
    state: InstanceState = InstanceState.STAGING
    staged_at: str = ""
    started_at: str | None = None
    launched_at: float = 0.0  # monotonic seconds (for killSelection and grace periods)
    healthy: bool | None = None  # None: not known yet (or no health checks)
    ready: bool = False  # readiness checks passed (or none)
    health: dict[str, Any] = dataclasses.field(default_factory=dict)  # Marathon's result
    running_since: float | None = None  # monotonic, when RUNNING was first reported
    kill_sent_at: float = 0.0
    fields: dict[str, str | None] = dataclasses.field(default_factory=dict)  # constraints'
    service_ports: list[int] = dataclasses.field(default_factory=list)
    unreachable_since: float | None = None  # monotonic, while TASK_UNREACHABLE
    inactive: bool = False  # unreachable past the app's inactiveAfterSeconds: replaced
    containers: dict[str, str] = dataclasses.field(default_factory=dict)  # a pod's: states

    @property
    def active(self) -> bool:
        """Counted as one of the app's instances: not being killed, not gone, and not
        unreachable for longer than its app's ``unreachableStrategy`` allows (Marathon's
        default replaces those at once; one that comes back is an extra instance, scaled
        away by ``killSelection``)."""
        if self.state is InstanceState.UNREACHABLE:
            return not self.inactive
        return not self.state.terminal and self.state is not InstanceState.KILLING

    def to_json(self) -> dict[str, Any]:
        """Marathon's task JSON (only fields marathon-python's MarathonTask knows)."""
        out: dict[str, Any] = {
            "id": self.id,
            "appId": self.app_id,
            "host": self.host,
            "ports": list(self.ports),
            "servicePorts": list(self.service_ports),
            "slaveId": self.agent_id,
            "state": self.state.value,
            "stagedAt": self.staged_at,
            "startedAt": self.started_at,
            "version": self.version,
            "ipAddresses": [{"ipAddress": self.ip, "protocol": "IPv4"}] if self.ip else [],
            "localVolumes": [],
            "role": self.role,
        }
        if self.health:
            out["healthCheckResults"] = [dict(self.health, taskId=self.id, instanceId=self.id)]
        return out

    def to_store(self) -> dict[str, Any]:
        """What persistence keeps (copies: the instance's own lists and dicts change)."""
        return {"id": self.id, "app": self.app_id, "config": self.config_version,
                "version": self.version, "agent": self.agent_id, "host": self.host,
                "ip": self.ip, "ports": list(self.ports), "role": self.role,
                "state": self.state.value, "staged": self.staged_at,
                "started": self.started_at, "healthy": self.healthy, "ready": self.ready,
                "fields": dict(self.fields), "service_ports": list(self.service_ports),
                "containers": dict(self.containers)}

    @classmethod
    def from_store(cls, data: dict[str, Any], now: float) -> Instance:
        return cls(id=data["id"], app_id=data["app"], config_version=data["config"],
                   version=data["version"], agent_id=data["agent"], host=data["host"],
                   ip=data["ip"], ports=list(data["ports"]), role=data["role"],
                   state=InstanceState(data["state"]), staged_at=data["staged"],
                   started_at=data["started"], healthy=data["healthy"], ready=data["ready"],
                   launched_at=now, running_since=now if data["started"] else None,
                   fields=data.get("fields") or {},
                   service_ports=data.get("service_ports") or [],
                   containers=data.get("containers") or {},
                   unreachable_since=now if data["state"] == InstanceState.UNREACHABLE.value
                   else None)
