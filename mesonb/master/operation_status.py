"""Operation feedback: UPDATE_OPERATION_STATUS events, ACKNOWLEDGE_OPERATION_STATUS,
RECONCILE_OPERATIONS and the operator's GET_OPERATIONS.

An offer operation that carries an ``id`` (``Offer.Operation.id``) is recorded here and
its framework is told each state: ``OPERATION_PENDING`` when the master takes it, then
``OPERATION_FINISHED`` (its ``converted_resources`` the result) or ``OPERATION_ERROR`` /
``OPERATION_DROPPED`` with the reason. The terminal update carries a ``uuid`` and stays
until the framework acknowledges it; RECONCILE_OPERATIONS answers the latest state of
the operations it names (all of the framework's when it names none) and
``OPERATION_UNKNOWN`` for the ones the master does not know (mesos.proto
``OperationStatus``, scheduler.proto ``Call.AcknowledgeOperationStatus``).
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import uuid
from typing import Any

from mesonb.protocol.errors import BadRequest

PENDING, FINISHED = "OPERATION_PENDING", "OPERATION_FINISHED"
ERROR, DROPPED, UNKNOWN = "OPERATION_ERROR", "OPERATION_DROPPED", "OPERATION_UNKNOWN"
TERMINAL = frozenset({FINISHED, ERROR, DROPPED, "OPERATION_FAILED", "OPERATION_GONE_BY_OPERATOR"})
MAX_KEPT = 10_000  # unacknowledged operations kept per master, oldest forgotten first


@dataclasses.dataclass(slots=True)
class OperationRecord:
    """Mesos's ``Operation`` (master.proto GET_OPERATIONS)."""

    framework_id: str
    agent_id: str
    operation_id: str
    info: dict[str, Any]
    statuses: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    uuid: str = dataclasses.field(default_factory=lambda: _uuid())

    @property
    def latest(self) -> dict[str, Any] | None:
        return self.statuses[-1] if self.statuses else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "framework_id": {"value": self.framework_id},
            "agent_id": {"value": self.agent_id},
            "info": self.info,
            "statuses": list(self.statuses),
            "uuid": {"value": self.uuid},
        }
        if self.latest is not None:
            out["latest_status"] = self.latest
        return out


def _uuid() -> str:
    return base64.b64encode(uuid.uuid4().bytes).decode()


def _id(data: Any, where: str) -> str:
    value = data.get("value") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{where}: expected {{\"value\": \"...\"}}")
    return value


class OperationStatuses:
    """The operations with an id that frameworks have not acknowledged the end of."""

    def __init__(self) -> None:
        self.records: collections.OrderedDict[tuple[str, str], OperationRecord] = (
            collections.OrderedDict())

    def start(self, framework_id: str, agent_id: str, operation_id: str,
              info: dict[str, Any]) -> OperationRecord:
        record = OperationRecord(framework_id, agent_id, operation_id, info)
        self.records[(framework_id, operation_id)] = record
        while len(self.records) > MAX_KEPT:
            self.records.popitem(last=False)
        return record

    @staticmethod
    def status(record: OperationRecord, state: str, message: str | None = None,
               converted: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Record a new state; returns the UPDATE_OPERATION_STATUS event to send."""
        status: dict[str, Any] = {
            "operation_id": {"value": record.operation_id},
            "state": state,
            "agent_id": {"value": record.agent_id},
        }
        if message:
            status["message"] = message
        if converted is not None:
            status["converted_resources"] = converted
        if state in TERMINAL:  # needs an acknowledgement
            status["uuid"] = {"value": _uuid()}
        record.statuses.append(status)
        return event(status)

    def acknowledge(self, framework_id: str, body: Any) -> None:
        """ACKNOWLEDGE_OPERATION_STATUS: forget an operation whose terminal update the
        framework acknowledged; BadRequest when malformed or the uuid is not its latest."""
        if not isinstance(body, dict):
            raise BadRequest("Expecting 'acknowledge_operation_status' to be an object")
        operation_id = _id(body.get("operation_id"), "acknowledge_operation_status.operation_id")
        given = body.get("uuid")
        if not isinstance(given, str) or not given:
            raise BadRequest("acknowledge_operation_status.uuid: expected the status's uuid"
                             " (base64 bytes)")
        record = self.records.get((framework_id, operation_id))
        if record is None:
            return  # already acknowledged, or never known here: nothing to do (as Mesos)
        latest = record.latest or {}
        if (latest.get("uuid") or {}).get("value") != given:
            raise BadRequest(f"Operation '{operation_id}': uuid {given!r} is not the uuid of"
                             " its latest status update")
        del self.records[(framework_id, operation_id)]

    def reconcile(self, framework_id: str, body: Any) -> list[dict[str, Any]]:
        """RECONCILE_OPERATIONS: the events answering it (latest states, without uuid)."""
        if body is not None and not isinstance(body, dict):
            raise BadRequest("Expecting 'reconcile_operations' to be an object")
        wanted = (body or {}).get("operations")
        if wanted is not None and not isinstance(wanted, list):
            raise BadRequest("reconcile_operations.operations: expected an array")
        out: list[dict[str, Any]] = []
        if not wanted:
            for (fid, _), known in self.records.items():
                if fid == framework_id and known.latest is not None:
                    out.append(event(_without_uuid(known.latest)))
            return out
        for i, item in enumerate(wanted):
            where = f"reconcile_operations.operations[{i}]"
            if not isinstance(item, dict):
                raise BadRequest(f"{where}: expected an object")
            operation_id = _id(item.get("operation_id"), f"{where}.operation_id")
            record = self.records.get((framework_id, operation_id))
            if record is not None and record.latest is not None:
                out.append(event(_without_uuid(record.latest)))
                continue
            status: dict[str, Any] = {"operation_id": {"value": operation_id}, "state": UNKNOWN}
            if isinstance(item.get("agent_id"), dict):
                status["agent_id"] = item["agent_id"]
            out.append(event(status))
        return out

    def of_framework(self, framework_id: str) -> list[OperationRecord]:
        return [r for (fid, _), r in self.records.items() if fid == framework_id]

    def forget_framework(self, framework_id: str) -> None:
        for key in [k for k in self.records if k[0] == framework_id]:
            del self.records[key]

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.records.values()]


def _without_uuid(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "uuid"}


def event(status: dict[str, Any]) -> dict[str, Any]:
    return {"type": "UPDATE_OPERATION_STATUS", "update_operation_status": {"status": status}}
