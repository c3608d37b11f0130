"""parse_calls: one executor call or a batch, whatever blank space comes first."""

from __future__ import annotations

import base64
import json

import pytest

from mesonb.agent.executor_api import parse_calls
from mesonb.protocol.errors import BadRequest
from mesonb.protocol.executor import ExecutorCall, ExecutorCallType

UPDATE = {"type": "UPDATE", "framework_id": {"value": "f"}, "executor_id": {"value": "e"},
          "update": {"status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING",
                                "source": "SOURCE_EXECUTOR",
                                "uuid": base64.b64encode(b"0123456789abcdef").decode()}}}


@pytest.mark.parametrize("blank", ["", " ", "\n", "\t\r\n "])
def test_a_call_or_a_batch_after_any_blank(blank: str) -> None:
    one = parse_calls((blank + json.dumps(UPDATE)).encode())
    assert isinstance(one, ExecutorCall) and one.type is ExecutorCallType.UPDATE
    batch = parse_calls((blank + json.dumps([UPDATE, UPDATE])).encode())
    assert isinstance(batch, list) and [c.type for c in batch] == [ExecutorCallType.UPDATE] * 2


@pytest.mark.parametrize("body", [b"", b"  ", b" []", b"[", b"{", b"\x0b[{}]", b"\x0c{}"])
def test_bad_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_calls(body)
    batch = body.lstrip()[:1] == b"["  # a batch's errors say "Calls"
    assert ("executor Calls" in refused.value.message) == (batch and body.strip() != b"[]")
