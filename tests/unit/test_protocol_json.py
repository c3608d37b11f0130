"""JSON from the network (protocol/jsontext.py): every parser answers BadRequest, never
RecursionError, for nesting too deep, and refuses numbers JSON cannot carry."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesonb.protocol.agent import load_calls, load_commands
from mesonb.protocol.errors import BadRequest
from mesonb.protocol.executor import ExecutorCall
from mesonb.protocol.jsontext import MAX_DEPTH, loads, nesting_within
from mesonb.protocol.operator import Call as OperatorCall
from mesonb.protocol.scheduler import Call

DEEP_ARRAY = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a":' * 100_000 + "1" + "}" * 100_000


def nested(levels: int) -> str:
    """A REVIVE call whose unmodelled field nests ``levels`` levels in all."""
    inner = "[" * (levels - 1) + "]" * (levels - 1)
    return '{"type": "REVIVE", "framework_id": {"value": "f"}, "x": ' + inner + "}"


@pytest.mark.parametrize("text", [DEEP_ARRAY, DEEP_OBJECT, DEEP_ARRAY.encode()])
def test_hostile_nesting_is_a_bad_request_not_a_recursion_error(text):
    with pytest.raises(BadRequest, match=f"nested deeper than {MAX_DEPTH} levels"):
        loads(text, "body")


def test_nesting_is_limited_to_mesos_s_100_levels():
    assert loads(nested(MAX_DEPTH))["type"] == "REVIVE"
    # 101 levels: Python's parser takes it, but Mesos's does not, and neither do we.
    json.loads(nested(MAX_DEPTH + 1))
    with pytest.raises(BadRequest, match="nested deeper"):
        loads(nested(MAX_DEPTH + 1))


@pytest.mark.parametrize("parse", [
    Call.parse, ExecutorCall.parse, OperatorCall.parse, load_calls, load_commands,
])
@pytest.mark.parametrize("text", [DEEP_ARRAY, DEEP_OBJECT, nested(MAX_DEPTH + 5)])
def test_every_protocol_parser_refuses_deep_nesting(parse, text):
    with pytest.raises(BadRequest, match="nested deeper"):
        parse(text.encode())


@pytest.mark.parametrize(("text", "problem"), [
    ('{"v": NaN}', "NaN is not a JSON number"),
    ('{"v": Infinity}', "Infinity is not a JSON number"),
    ('{"v": -Infinity}', "-Infinity is not a JSON number"),
    ('{"v": 1e400}', "number 1e400 is out of range"),
    ('{"v": -2.5e308}', "number -2.5e308 is out of range"),
])
def test_numbers_json_cannot_carry_are_refused(text, problem):
    with pytest.raises(BadRequest, match=problem):
        loads(text, "body")


def test_what_prefixes_the_message_and_plain_json_parses():
    with pytest.raises(BadRequest) as info:
        loads(b"{oops", "Failed to parse body into Call")
    assert info.value.message.startswith("Failed to parse body into Call: invalid JSON (")
    with pytest.raises(BadRequest, match="invalid JSON"):
        loads(b"\xff\xfe\xff", "body")
    assert loads('{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert loads(json.dumps({"s": "[" * 500}).encode()) == {"s": "[" * 500}


TRICKY = st.text(alphabet='[]{}"\\ab\u00e9\u4e16:,', max_size=8)
VALUES = st.recursive(
    st.none() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TRICKY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY, inner, max_size=3),
    max_leaves=30,
)


def depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


@given(VALUES, st.booleans(), st.integers(min_value=-1, max_value=1))
def test_nesting_is_read_off_the_text_exactly(value, ascii_only, offset):
    text = json.dumps(value, ensure_ascii=ascii_only).encode()
    limit = max(depth(value) + offset, 0)
    assert nesting_within(text, limit) is (depth(value) <= limit)

