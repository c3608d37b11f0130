"""The common Mesos v1 messages (include/mesos/v1/mesos.proto) that mesonb reads.

Only the fields mesonb acts on are modelled; every other field a client sends is kept in
``extra`` and passed through (see :mod:`mesonb.protocol.codec`). Resources stay as their
raw JSON list here (:data:`ResourceList`, whose scalars are checked while decoding) and
become :class:`~mesonb.protocol.resources.Resources` where they are counted.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from .codec import ID, Check, Message, ProtoEnum, message
from .resources import scalar_problem
from .states import Reason, Source, TaskState

ResourceList = Annotated[list[dict], Check(scalar_problem)]
"""A raw list of ``Resource`` objects whose scalars are finite and not negative."""


@message
class Address(Message):
    hostname: str | None = None
    ip: str | None = None
    port: int | None = None


DEFAULT_MASTER_PORT = 5050


@message
class MasterInfo(Message):
    id: str
    ip: int = 0
    port: int = DEFAULT_MASTER_PORT
    pid: str | None = None
    hostname: str | None = None
    version: str | None = None
    address: Address | None = None


@message
class Capability(Message):
    type: str


@message
class FrameworkInfo(Message):
    user: str
    name: str
    id: ID | None = None
    failover_timeout: float = 0.0
    checkpoint: bool = False
    role: str | None = None
    roles: list[str] | None = None
    hostname: str | None = None
    principal: str | None = None
    webui_url: str | None = None
    capabilities: list[Capability] | None = None
    labels: dict | None = None

    def has_capability(self, name: str) -> bool:
        return any(c.type == name for c in self.capabilities or ())

    @property
    def role_list(self) -> list[str]:
        """The roles this framework subscribes to (MULTI_ROLE ``roles`` or legacy ``role``)."""
        if self.roles:
            return list(self.roles)
        return [self.role or "*"]


@message
class Variable(Message):
    name: str
    value: str = ""


@message
class Environment(Message):
    variables: list[Variable] | None = None


@message
class CommandInfo(Message):
    uris: list[dict] | None = None
    environment: Environment | None = None
    shell: bool = True
    value: str | None = None
    arguments: list[str] | None = None
    user: str | None = None


class ExecutorType(ProtoEnum):
    UNKNOWN = "UNKNOWN", 0
    DEFAULT = "DEFAULT", 1
    CUSTOM = "CUSTOM", 2


@message
class ExecutorInfo(Message):
    executor_id: ID
    type: ExecutorType | None = None
    framework_id: ID | None = None
    command: CommandInfo | None = None
    resources: ResourceList | None = None
    name: str | None = None
    source: str | None = None
    data: bytes | None = None


@message
class Duration(Message):
    nanoseconds: int


@message
class KillPolicy(Message):
    grace_period: Duration | None = None

    def grace_seconds(self, default: float) -> float:
        if self.grace_period is None:
            return default
        return max(0.0, self.grace_period.nanoseconds / 1e9)


@message
class TaskInfo(Message):
    name: str
    task_id: ID
    agent_id: ID
    resources: ResourceList | None = None
    executor: ExecutorInfo | None = None
    command: CommandInfo | None = None
    kill_policy: KillPolicy | None = None
    data: bytes | None = None
    labels: dict | None = None
    max_completion_time: Duration | None = None


@message
class TaskGroupInfo(Message):
    tasks: list[TaskInfo]


@message
class TaskStatus(Message):
    task_id: ID
    state: TaskState
    message: str | None = None
    source: Source | None = None
    reason: Reason | None = None
    data: bytes | None = None
    agent_id: ID | None = None
    executor_id: ID | None = None
    timestamp: float | None = None
    uuid: bytes | None = None
    healthy: bool | None = None
    labels: dict | None = None
    unreachable_time: dict | None = None


@message
class Filters(Message):
    refuse_seconds: float = 5.0


class OperationType(ProtoEnum):
    UNKNOWN = "UNKNOWN", 0
    LAUNCH = "LAUNCH", 1
    LAUNCH_GROUP = "LAUNCH_GROUP", 6
    RESERVE = "RESERVE", 2
    UNRESERVE = "UNRESERVE", 3
    CREATE = "CREATE", 4
    DESTROY = "DESTROY", 5
    GROW_VOLUME = "GROW_VOLUME", 11
    SHRINK_VOLUME = "SHRINK_VOLUME", 12
    CREATE_DISK = "CREATE_DISK", 13
    DESTROY_DISK = "DESTROY_DISK", 14


@message
class Launch(Message):
    task_infos: list[TaskInfo]


@message
class LaunchGroup(Message):
    executor: ExecutorInfo
    task_group: TaskGroupInfo


@message
class Operation(Message):
    """``Offer.Operation``. The bodies of the resource operations stay raw JSON: they are
    read by :mod:`mesonb.protocol.reservations` (``reserve.resources``, ``create.volumes``,
    ``grow_volume.volume`` and ``.addition``, ``shrink_volume.subtract.value``, ...)."""

    type: OperationType
    id: ID | None = None  # ``OperationID``: the framework wants UPDATE_OPERATION_STATUS
    launch: Launch | None = None
    launch_group: LaunchGroup | None = None
    reserve: dict | None = None
    unreserve: dict | None = None
    create: dict | None = None
    destroy: dict | None = None
    grow_volume: dict | None = None
    shrink_volume: dict | None = None
    create_disk: dict | None = None
    destroy_disk: dict | None = None


@message
class Attribute(Message):
    name: str
    type: str = "TEXT"
    scalar: dict | None = None
    ranges: dict | None = None
    set: dict | None = None
    text: dict | None = None

    @classmethod
    def parse(cls, text: str) -> list[Attribute]:
        """Parse the agent flag form ``rack:a;zone:1;ports:[1-2]``."""
        out: list[Attribute] = []
        for part in filter(None, (p.strip() for p in text.split(";"))):
            name, sep, value = part.partition(":")
            if not sep or not name.strip():
                raise ValueError(f"bad attribute {part!r}: expected NAME:VALUE")
            value = value.strip()
            if value.startswith("[") and value.endswith("]"):
                rng = []
                for chunk in filter(None, (c.strip() for c in value[1:-1].split(","))):
                    b, _, e = chunk.partition("-")
                    rng.append({"begin": int(b), "end": int(e or b)})
                out.append(cls(name=name.strip(), type="RANGES", ranges={"range": rng}))
                continue
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if math.isfinite(number):  # "inf" and "nan" stay text: JSON has no such numbers
                out.append(cls(name=name.strip(), type="SCALAR", scalar={"value": number}))
            else:
                out.append(cls(name=name.strip(), type="TEXT", text={"value": value}))
        return out

    def value(self) -> Any:
        """The attribute's value as Python: str, float, or list of (begin, end)."""
        if self.type == "SCALAR" and self.scalar:
            return self.scalar.get("value")
        if self.type == "RANGES" and self.ranges:
            return [(r["begin"], r["end"]) for r in self.ranges.get("range", [])]
        if self.type == "SET" and self.set:
            return list(self.set.get("item", []))
        return (self.text or {}).get("value", "")


@message
class AgentInfo(Message):
    hostname: str
    port: int = 5051
    resources: ResourceList | None = None
    attributes: list[Attribute] | None = None
    id: ID | None = None
