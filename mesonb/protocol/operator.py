"""The Mesos v1 operator API's calls (``mesos.v1.master.Call``), as the master reads them.

``Call.parse(body)`` reads a ``POST /api/v1`` body: every call type Mesos defines is
known (:class:`CallType`); the bodies mesonb acts on are typed, the others stay in
``extra``. A valid call mesonb does not carry out raises :class:`NotImplementedCall` (501).
"""

from __future__ import annotations

from .codec import ID, Message, ProtoEnum, message
from .errors import BadRequest, ProtocolError
from .jsontext import loads

__all__ = [
    "Call",
    "CallType",
    "MarkAgentGone",
    "NotImplementedCall",
    "Teardown",
    "UpdateWeights",
    "WeightInfo",
]


class NotImplementedCall(ProtocolError):
    """A valid operator call that mesonb does not carry out yet (501)."""

    status = 501


class CallType(ProtoEnum):
    """``mesos.v1.master.Call.Type``, complete."""

    UNKNOWN = "UNKNOWN", 0
    GET_HEALTH = "GET_HEALTH", 1
    GET_FLAGS = "GET_FLAGS", 2
    GET_VERSION = "GET_VERSION", 3
    GET_METRICS = "GET_METRICS", 4
    GET_LOGGING_LEVEL = "GET_LOGGING_LEVEL", 5
    SET_LOGGING_LEVEL = "SET_LOGGING_LEVEL", 6
    LIST_FILES = "LIST_FILES", 7
    READ_FILE = "READ_FILE", 8
    GET_STATE = "GET_STATE", 9
    GET_AGENTS = "GET_AGENTS", 10
    GET_FRAMEWORKS = "GET_FRAMEWORKS", 11
    GET_EXECUTORS = "GET_EXECUTORS", 12
    GET_OPERATIONS = "GET_OPERATIONS", 33
    GET_TASKS = "GET_TASKS", 13
    GET_ROLES = "GET_ROLES", 14
    GET_WEIGHTS = "GET_WEIGHTS", 15
    UPDATE_WEIGHTS = "UPDATE_WEIGHTS", 16
    GET_MASTER = "GET_MASTER", 17
    SUBSCRIBE = "SUBSCRIBE", 18
    RESERVE_RESOURCES = "RESERVE_RESOURCES", 19
    UNRESERVE_RESOURCES = "UNRESERVE_RESOURCES", 20
    CREATE_VOLUMES = "CREATE_VOLUMES", 21
    DESTROY_VOLUMES = "DESTROY_VOLUMES", 22
    GROW_VOLUME = "GROW_VOLUME", 34
    SHRINK_VOLUME = "SHRINK_VOLUME", 35
    GET_MAINTENANCE_STATUS = "GET_MAINTENANCE_STATUS", 23
    GET_MAINTENANCE_SCHEDULE = "GET_MAINTENANCE_SCHEDULE", 24
    UPDATE_MAINTENANCE_SCHEDULE = "UPDATE_MAINTENANCE_SCHEDULE", 25
    START_MAINTENANCE = "START_MAINTENANCE", 26
    STOP_MAINTENANCE = "STOP_MAINTENANCE", 27
    DRAIN_AGENT = "DRAIN_AGENT", 37
    DEACTIVATE_AGENT = "DEACTIVATE_AGENT", 38
    REACTIVATE_AGENT = "REACTIVATE_AGENT", 39
    GET_QUOTA = "GET_QUOTA", 28
    UPDATE_QUOTA = "UPDATE_QUOTA", 36
    SET_QUOTA = "SET_QUOTA", 29
    REMOVE_QUOTA = "REMOVE_QUOTA", 30
    TEARDOWN = "TEARDOWN", 31
    MARK_AGENT_GONE = "MARK_AGENT_GONE", 32


@message
class WeightInfo(Message):
    weight: float
    role: str | None = None


@message
class UpdateWeights(Message):
    weight_infos: list[WeightInfo] | None = None


@message
class Teardown(Message):
    framework_id: ID


@message
class MarkAgentGone(Message):
    agent_id: ID


@message
class Call(Message):
    """``mesos.v1.master.Call``: the bodies mesonb acts on; the others stay in ``extra``."""

    type: CallType
    get_metrics: dict | None = None
    update_weights: UpdateWeights | None = None
    teardown: Teardown | None = None
    mark_agent_gone: MarkAgentGone | None = None

    @classmethod
    def parse(cls, body: bytes) -> Call:
        data = loads(body, "Failed to parse body into JSON")
        if not isinstance(data, dict):
            raise BadRequest("Failed to convert JSON into Call protobuf: expected an object")
        if data.get("type") in (None, "UNKNOWN"):
            raise BadRequest("Expecting 'type' to be present")
        call = cls.from_json(data, "Call")
        field = call.type.value.lower()
        if field in _BODY_REQUIRED and getattr(call, field) is None:
            raise BadRequest(f"Expecting '{field}' to be present")
        return call


_BODY_REQUIRED = frozenset({"update_weights", "teardown", "mark_agent_gone"})
