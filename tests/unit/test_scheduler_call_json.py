"""The scheduler calls the driver builds as JSON directly are those the typed calls write."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from mesonb.frameworks.call_json import accept_call, acknowledge_call
from mesonb.frameworks.driver import _acknowledge, _filters
from mesonb.protocol.scheduler import Accept, Call, CallType


def _status(**extra: object) -> dict[str, object]:
    return {"agent_id": {"value": "a1b2-S0"}, "task_id": {"value": "noop-12-abcdef12"},
            "uuid": base64.b64encode(uuid.uuid4().bytes).decode("ascii"),
            "state": "TASK_FINISHED", **extra}


@pytest.mark.parametrize("status", [_status(), _status(data="eHl6", source="SOURCE_EXECUTOR"),
                                    _status(state="TASK_RUNNING", healthy=True)])
def test_acknowledge_call_is_the_typed_calls_json(status: dict[str, object]) -> None:
    typed = Call(type=CallType.ACKNOWLEDGE, framework_id="fw-0001",
                 acknowledge=_acknowledge(status)).to_json()
    fast = acknowledge_call("fw-0001", status)
    assert fast == typed
    assert json.dumps(fast, sort_keys=True) == json.dumps(typed, sort_keys=True)
    # and it reads back as the same typed call
    assert Call.from_json(fast, "Call") == Call.from_json(typed, "Call")


LAUNCH = [{"type": "LAUNCH", "launch": {"task_infos": [{
    "name": "noop", "task_id": {"value": "t1"}, "agent_id": {"value": "a-S0"},
    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.2}}],
    "data": "eHl6"}]}}]


@pytest.mark.parametrize("refuse", [None, 5.0, 1, 0, 2.5])
@pytest.mark.parametrize("offers", [["o-1"], ["o-1", "o-2"]])
def test_accept_call_is_the_typed_calls_json(refuse: float | None, offers: list[str]) -> None:
    call = Call(type=CallType.ACCEPT, framework_id="fw-0001",
                accept=Accept(offer_ids=list(offers), filters=_filters(refuse)))
    typed = call.to_json()
    typed["accept"]["operations"] = LAUNCH
    fast = accept_call("fw-0001", offers, LAUNCH, refuse)
    assert json.dumps(fast, sort_keys=True) == json.dumps(typed, sort_keys=True)
