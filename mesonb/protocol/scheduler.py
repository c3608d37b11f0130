"""The Mesos v1 Scheduler API (include/mesos/v1/scheduler/scheduler.proto) as data.

A :class:`Call` is what a framework POSTs to ``/api/v1/scheduler``; an :class:`Event` is
one record of the SUBSCRIBE stream. Both nest exactly like the protobuf: the body of a
call or event of type ``FOO`` is the field ``foo`` (``{"type":"OFFERS","offers":{"offers":
[...]}}``). :meth:`Call.parse` also accepts the lenient shapes that Mesos's own doc
examples show (``revive.role``, a top-level ``requests``) and normalises them.
"""

from __future__ import annotations

from typing import Any

from .codec import ID, Message, ProtoEnum, message
from .errors import BadRequest
from .jsontext import loads
from .mesos import Filters, FrameworkInfo, KillPolicy, MasterInfo, Operation, TaskStatus

SCHEDULER_PATH = "/api/v1/scheduler"


class CallType(ProtoEnum):
    UNKNOWN = "UNKNOWN", 0
    SUBSCRIBE = "SUBSCRIBE", 1
    TEARDOWN = "TEARDOWN", 2
    ACCEPT = "ACCEPT", 3
    DECLINE = "DECLINE", 4
    ACCEPT_INVERSE_OFFERS = "ACCEPT_INVERSE_OFFERS", 13
    DECLINE_INVERSE_OFFERS = "DECLINE_INVERSE_OFFERS", 14
    REVIVE = "REVIVE", 5
    KILL = "KILL", 6
    SHUTDOWN = "SHUTDOWN", 7
    ACKNOWLEDGE = "ACKNOWLEDGE", 8
    ACKNOWLEDGE_OPERATION_STATUS = "ACKNOWLEDGE_OPERATION_STATUS", 15
    RECONCILE = "RECONCILE", 9
    RECONCILE_OPERATIONS = "RECONCILE_OPERATIONS", 16
    MESSAGE = "MESSAGE", 10
    REQUEST = "REQUEST", 11
    SUPPRESS = "SUPPRESS", 12
    UPDATE_FRAMEWORK = "UPDATE_FRAMEWORK", 17


@message
class Subscribe(Message):
    framework_info: FrameworkInfo
    suppressed_roles: list[str] | None = None


@message
class Accept(Message):
    offer_ids: list[ID]
    operations: list[Operation] | None = None
    filters: Filters | None = None


@message
class Decline(Message):
    offer_ids: list[ID]
    filters: Filters | None = None


@message
class Roles(Message):
    """The body of REVIVE and SUPPRESS: an empty list means every role."""

    roles: list[str] | None = None


@message
class Kill(Message):
    task_id: ID
    agent_id: ID | None = None
    kill_policy: KillPolicy | None = None


@message
class Shutdown(Message):
    executor_id: ID
    agent_id: ID


@message
class Acknowledge(Message):
    agent_id: ID
    task_id: ID
    uuid: bytes


@message
class ReconcileTask(Message):
    task_id: ID
    agent_id: ID | None = None


@message
class Reconcile(Message):
    tasks: list[ReconcileTask] | None = None


@message
class FrameworkMessage(Message):
    agent_id: ID
    executor_id: ID
    data: bytes


@message
class Request(Message):
    requests: list[dict] | None = None


@message
class UpdateFramework(Message):
    framework_info: FrameworkInfo
    suppressed_roles: list[str] | None = None


@message
class Call(Message):
    type: CallType
    framework_id: ID | None = None
    subscribe: Subscribe | None = None
    accept: Accept | None = None
    decline: Decline | None = None
    revive: Roles | None = None
    suppress: Roles | None = None
    kill: Kill | None = None
    shutdown: Shutdown | None = None
    acknowledge: Acknowledge | None = None
    reconcile: Reconcile | None = None
    message: FrameworkMessage | None = None
    request: Request | None = None
    update_framework: UpdateFramework | None = None
    acknowledge_operation_status: dict | None = None  # read by master/operation_status.py
    reconcile_operations: dict | None = None

    # Calls whose body must be present.
    _BODY_REQUIRED = frozenset(
        {
            CallType.SUBSCRIBE,
            CallType.ACCEPT,
            CallType.DECLINE,
            CallType.KILL,
            CallType.SHUTDOWN,
            CallType.ACKNOWLEDGE,
            CallType.MESSAGE,
            CallType.UPDATE_FRAMEWORK,
            CallType.ACKNOWLEDGE_OPERATION_STATUS,
        }
    )

    @classmethod
    def parse(cls, body: bytes | str | dict) -> Call:
        """Decode and validate a call from the HTTP body; BadRequest when malformed."""
        data = body if isinstance(body, dict) else loads(body, "Failed to parse body into Call")
        if not isinstance(data, dict):
            raise BadRequest("Failed to parse body into Call: expected a JSON object")
        data = _lenient(data)
        call = cls.from_json(data, "Call")
        body_field = call.type.value.lower()
        if call.type in cls._BODY_REQUIRED and getattr(call, body_field, None) is None:
            raise BadRequest(f"Expecting '{body_field}' to be present for a {call.type} call")
        if call.type is CallType.UNKNOWN:
            raise BadRequest("Expecting 'type' to be present")
        return call


def _lenient(data: dict[str, Any]) -> dict[str, Any]:
    """Accept the shapes of Mesos's doc examples, which differ from the proto."""
    kind = data.get("type")
    if kind in ("REVIVE", "SUPPRESS"):
        body = data.get(kind.lower())
        if isinstance(body, dict) and "role" in body and "roles" not in body:
            role = body["role"]
            data = {**data, kind.lower(): {"roles": [role] if isinstance(role, str) else role}}
    elif kind == "REQUEST" and "requests" in data and "request" not in data:
        data = {**data, "request": {"requests": data["requests"]}}
        data.pop("requests")
    return data


# ---- events --------------------------------------------------------------------------


class EventType(ProtoEnum):
    UNKNOWN = "UNKNOWN", 0
    SUBSCRIBED = "SUBSCRIBED", 1
    OFFERS = "OFFERS", 2
    INVERSE_OFFERS = "INVERSE_OFFERS", 9
    RESCIND = "RESCIND", 3
    RESCIND_INVERSE_OFFER = "RESCIND_INVERSE_OFFER", 10
    UPDATE = "UPDATE", 4
    UPDATE_OPERATION_STATUS = "UPDATE_OPERATION_STATUS", 11
    MESSAGE = "MESSAGE", 5
    FAILURE = "FAILURE", 6
    ERROR = "ERROR", 7
    HEARTBEAT = "HEARTBEAT", 8


@message
class Subscribed(Message):
    framework_id: ID
    heartbeat_interval_seconds: float | None = None
    master_info: MasterInfo | None = None


@message
class Offers(Message):
    # Offers are built by the master as ready JSON (see master/offers.py); a list of dicts.
    offers: list[dict] | None = None


@message
class Rescind(Message):
    offer_id: ID


@message
class Update(Message):
    status: TaskStatus


@message
class EventMessage(Message):
    agent_id: ID
    executor_id: ID
    data: bytes


@message
class Failure(Message):
    agent_id: ID | None = None
    executor_id: ID | None = None
    status: int | None = None


@message
class Error(Message):
    message: str


@message
class Event(Message):
    type: EventType
    subscribed: Subscribed | None = None
    offers: Offers | None = None
    rescind: Rescind | None = None
    update: Update | None = None
    message: EventMessage | None = None
    failure: Failure | None = None
    error: Error | None = None
    update_operation_status: dict | None = None  # {"status": OperationStatus JSON}


def heartbeat() -> Event:
    return Event(type=EventType.HEARTBEAT)
