"""The orjson fast paths of protocol/jsontext.py give what the json module gives.

``loads``, ``loads_lenient``, ``dumps`` and ``dumpb`` use orjson and fall back to json
where orjson refuses or might differ; a client or a test must not see the difference.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesonb.protocol import jsontext, recordio
from mesonb.protocol.errors import BadRequest

TEXT = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from('\x7f\x00"\\[{é😀'),
               max_size=12)
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | TEXT)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=25,
)


def same(a, b) -> bool:
    """Equal, and of the same types all the way down (1 is not 1.0 here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def slow_loads(text, what="Failed to parse JSON"):
    return jsontext._loads_slowly(text, what)


def outcome(fn, text):
    try:
        return ("ok", fn(text))
    except BadRequest as exc:
        return ("bad", exc.message)


@given(VALUES, st.booleans(), st.booleans())
def test_loads_reads_what_json_reads(value, ascii_only, as_str):
    text = json.dumps(value, ensure_ascii=ascii_only)
    given_text = text if as_str else text.encode()
    fast, slow = outcome(jsontext.loads, given_text), outcome(slow_loads, given_text)
    assert fast[0] == slow[0]
    assert same(fast[1], slow[1]) if fast[0] == "ok" else fast == slow
    assert same(jsontext.loads_lenient(given_text), json.loads(given_text))


@pytest.mark.parametrize("text", [
    b"{oops", b"", b"[1,]", b'{"a" 1}', b"\xff\xfe\xff", b'{"v": NaN}', b'{"v": 1e400}',
    b'{"v": -Infinity}', b'["\\ud800"]', b"\xef\xbb\xbf{}", '{"a": 1}'.encode("utf-16"),
    b"[18446744073709551616]", b"[-9223372036854775809]", b"[1.5e-400]", b'["\x00"]',
    "[" * 150 + "]" * 150, b"[" * 2000 + b"]" * 2000, '["\ud800"]', b'{"a":1,"a":2}',
])
def test_loads_edge_cases_read_and_fail_as_before(text):
    fast, slow = outcome(jsontext.loads, text), outcome(slow_loads, text)
    assert fast[0] == slow[0]
    assert same(fast[1], slow[1]) if fast[0] == "ok" else fast == slow


def test_big_integers_stay_integers():
    assert jsontext.loads(b'{"n": 123456789012345678901234567890}') == {
        "n": 123456789012345678901234567890}
    assert type(jsontext.loads(b"[-9223372036854775809]")[0]) is int
    assert type(jsontext.loads_lenient(b"[18446744073709551616]")[0]) is int


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def same_text(fast: bytes, slow: bytes) -> bool:
    """Byte-equal, or equal once read back (orjson writes 0.00001 where json 1e-05)."""
    return fast == slow or same(json.loads(fast), json.loads(slow))


@given(VALUES)
def test_dumps_writes_what_json_writes(value):
    assert same_text(jsontext.dumpb(value), compact(value))
    assert same_text(jsontext.dumps(value).encode(), compact(value))
    framed = recordio.encode_json(value)
    length, _, body = framed.partition(b"\n")
    assert int(length) == len(body) and same_text(body, compact(value))


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize("value", [
    {"v": float("nan"), "w": float("inf")}, ["é", "\x7f", "😀"], {"n": 2**80},
    {1: "int key", None: 1, 2.5: True}, ("tuple", 1), {"a": None},
    {"deep": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}, [1e-05, 1e300, -0.0, 0.1, 1024.0],
])
def test_dumps_special_values_as_json_does(value):
    assert jsontext.dumpb(value) == compact(value) or same_text(jsontext.dumpb(value),
                                                                compact(value))
    assert jsontext.dumps(value) == json.dumps(value, separators=(",", ":")) or same_text(
        jsontext.dumps(value).encode(), compact(value))
    # NaN, non-ASCII and big numbers come out exactly as json writes them
    if not isinstance(value, list) or value[0] != 1e-05:
        assert jsontext.dumpb(value) == compact(value)


@pytest.mark.parametrize("value", [
    Point(1), datetime.datetime(2020, 1, 1), {1, 2}, b"bytes", object(),
])
def test_dumps_refuses_what_json_refuses(value):
    with pytest.raises(TypeError):
        jsontext.dumpb(value)
    with pytest.raises(TypeError):
        jsontext.dumps(value)


def test_recordio_decoder_reads_json_records():
    decoder = recordio.Decoder()
    chunk = recordio.encode_json({"type": "HEARTBEAT", "n": 2**70, "s": "é"})
    assert list(decoder.feed_json(chunk[:5])) == []
    assert list(decoder.feed_json(chunk[5:])) == [{"type": "HEARTBEAT", "n": 2**70, "s": "é"}]


def test_any_bytes_like_input_reads_as_before():
    for text in (b'{"a": [1]}', bytearray(b'{"a": [1]}'), '{"a": [1]}'):
        assert jsontext.loads(text) == {"a": [1]} == jsontext.loads_lenient(text)
    assert jsontext.loads(memoryview(b'{"a": [1]}')) == {"a": [1]}
    with pytest.raises(TypeError):  # as json.loads
        jsontext.loads_lenient(memoryview(b'{"a": [1]}'))


@given(VALUES)
def test_what_reads_back_is_what_its_text_reads_into(value):
    """A value that ``reads_back`` may be handed over in place of its text (in-process
    calls): reading its text gives an equal value of the same types."""
    if jsontext.reads_back(value):
        assert same(jsontext.loads(jsontext.dumpb(value)), value)


@pytest.mark.parametrize("value", [
    {"a": float("nan")}, [float("inf")], {"a": None}, None, {1: "x"}, [2**64], {"s": {1, 2}},
    b"x", {"t": datetime.datetime(2020, 1, 1)}, "\ud800",
    {"a": type("S", (str,), {})("x")}, {"a": type("D", (dict,), {})()},
])
def test_what_does_not_read_back_goes_as_text(value):
    assert not jsontext.reads_back(value)


def test_nesting_beyond_the_limit_does_not_read_back():
    deep: list = []
    for _ in range(jsontext.MAX_DEPTH - 1):
        deep = [deep]
    assert jsontext.reads_back(deep)  # 100 levels
    assert not jsontext.reads_back([deep])
    wide = [[[]] for _ in range(300)]  # many brackets, shallow
    assert jsontext.reads_back(wide)
    assert jsontext.reads_back({"k": "[[[[" * 100})  # brackets in a string
