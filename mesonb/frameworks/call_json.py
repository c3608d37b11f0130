"""The scheduler calls a framework sends for every task, as JSON built directly.

Each is the object :meth:`mesonb.protocol.scheduler.Call.to_json` writes for the same
typed call (tests/unit/test_scheduler_call_json.py compares them), without building the
typed call and walking it: an ACKNOWLEDGE per status update and an ACCEPT per launch are
the scheduler's most frequent calls.
"""

from __future__ import annotations

from typing import Any


def acknowledge_call(framework_id: str, status: dict[str, Any]) -> dict[str, Any]:
    """The ACKNOWLEDGE call for a TaskStatus JSON object from a mesonb master (whose uuid
    is canonical Base64, written by the master's encoder: it goes back as it came)."""
    return {"type": "ACKNOWLEDGE", "framework_id": {"value": framework_id},
            "acknowledge": {"agent_id": {"value": status["agent_id"]["value"]},
                            "task_id": {"value": status["task_id"]["value"]},
                            "uuid": status["uuid"]}}


def accept_call(framework_id: str, offer_ids: list[str], operations: list[dict[str, Any]],
                refuse_seconds: float | None) -> dict[str, Any]:
    """The ACCEPT call of ``offer_ids`` with ``operations`` (Offer.Operation JSON, sent as
    they are) and, when given, a ``refuse_seconds`` filter."""
    accept: dict[str, Any] = {"offer_ids": [{"value": o} for o in offer_ids]}
    if refuse_seconds is not None:
        accept["filters"] = {"refuse_seconds": refuse_seconds}
    accept["operations"] = operations
    return {"type": "ACCEPT", "framework_id": {"value": framework_id}, "accept": accept}
