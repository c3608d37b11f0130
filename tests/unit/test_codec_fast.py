"""The compiled decoders of protocol/codec.py build what the general decoder builds.

Each message class gets a decoder that reads its fields straight off the JSON object and
hands anything odd to the general decoder (the one every message used before). Here both
read the same real messages, and the same messages damaged at random: equal messages
(``extra`` included) or the same 400 message, path and all.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesonb.protocol import codec
from mesonb.protocol.agent import AgentCall, MasterCommand
from mesonb.protocol.errors import BadRequest
from mesonb.protocol.executor import ExecutorCall, ExecutorEvent
from mesonb.protocol.scheduler import Call, Event

TASK = {
    "name": "noop", "task_id": {"value": "noop-1"}, "agent_id": {"value": "S1"},
    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.2}, "role": "*"},
                  {"name": "mem", "type": "SCALAR", "scalar": {"value": 1024.0}}],
    "executor": {"executor_id": {"value": "functions-1"}, "type": "CUSTOM",
                 "name": "mesonb functions executor",
                 "command": {"shell": False, "value": "/usr/bin/python3",
                             "arguments": ["python3", "-m", "x"],
                             "environment": {"variables": [{"name": "A", "value": "b"}]}}},
    "data": "gAWVxwAAAAAAAACMJG1lc29u", "labels": {"labels": [{"key": "k"}]},
}
STATUS = {"task_id": {"value": "noop-1"}, "state": "TASK_FINISHED", "source": "SOURCE_EXECUTOR",
          "agent_id": {"value": "S1"}, "executor_id": {"value": "functions-1"},
          "timestamp": 1733459257.5, "uuid": "AAECAwQFBgcICQoLDA0ODw==", "data": "eyJ4IjoxfQ=="}
CASES: list[tuple[type, dict[str, Any]]] = [
    (Call, {"type": "ACCEPT", "framework_id": {"value": "F1"}, "accept": {
        "offer_ids": [{"value": "O1"}], "filters": {"refuse_seconds": 5.0},
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [TASK]}}]}}),
    (Call, {"type": "ACKNOWLEDGE", "framework_id": {"value": "F1"}, "acknowledge": {
        "agent_id": {"value": "S1"}, "task_id": {"value": "t"}, "uuid": "AAECAw=="}}),
    (Call, {"type": "SUBSCRIBE", "subscribe": {"framework_info": {
        "user": "u", "name": "n", "roles": ["*"], "capabilities": [{"type": "MULTI_ROLE"}],
        "failover_timeout": 10}}}),
    (Event, {"type": "UPDATE", "update": {"status": STATUS}}),
    (ExecutorEvent, {"type": "LAUNCH", "launch": {"task": TASK}}),
    (ExecutorCall, {"type": "UPDATE", "framework_id": {"value": "F1"},
                    "executor_id": {"value": "functions-1"}, "update": {"status": STATUS}}),
    (AgentCall, {"type": "STATUS_UPDATE", "status_update": {
        "framework_id": {"value": "F1"}, "status": STATUS}}),
    (MasterCommand, {"type": "RUN_TASK", "run_task": {
        "framework_info": {"user": "u", "name": "n", "id": {"value": "F1"}},
        "task": TASK, "executor": TASK["executor"]}}),
]


REFERENCE_ENCODERS: dict[type, Any] = {}


@pytest.fixture(scope="module")
def reference():
    """Decoders (and, in REFERENCE_ENCODERS, encoders) for every message class, built
    without the compiled fast paths: the general decoder, encoders called by name."""
    for cls, _ in CASES:
        codec._codec(cls)
    saved = dict(codec._CODECS)
    codec._CODECS.clear()
    try:
        with mock.patch.object(codec, "_fast_decoder", lambda cls, decoders, generic: generic), \
                mock.patch.object(codec, "_plain_list", lambda kind, decode_list: decode_list), \
                mock.patch.object(codec, "_inline",
                                  lambda encode: "v" if encode is codec._identity else None):
            decoders = {cls: codec._codec(cls)[0] for cls, _ in CASES}
        REFERENCE_ENCODERS.update({cls: pair[1] for cls, pair in codec._CODECS.items()})
    finally:
        codec._CODECS.clear()
        codec._CODECS.update(saved)
        for cls, pair in saved.items():
            cls.to_json = pair[1]
    return decoders


def reference_to_json(msg) -> dict:
    """``msg.to_json()`` with the reference encoders, nested messages included."""
    try:
        for cls, encode in REFERENCE_ENCODERS.items():
            cls.to_json = encode
        return msg.to_json()
    finally:
        for cls in REFERENCE_ENCODERS:
            cls.to_json = codec._CODECS[cls][1]


def read(decode, cls, data):
    try:
        return ("ok", decode(data))
    except codec._Invalid as exc:
        return ("bad", cls.__name__ + "".join(exc.path) + ": " + exc.message)
    except BadRequest as exc:
        return ("bad", exc.message)


def fast(cls, data):
    try:
        return ("ok", cls.from_json(data))
    except BadRequest as exc:
        return ("bad", exc.message)


def same(a, b) -> bool:
    """Equal messages, extras and field types included."""
    if type(a) is not type(b):
        return False
    if isinstance(a, codec.Message):
        return all(same(getattr(a, f.name), getattr(b, f.name))
                   for f in dataclasses.fields(a))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    return a == b


def check(reference, cls, data):
    got, want = fast(cls, data), read(reference[cls], cls, data)
    assert got[0] == want[0], (got, want)
    if got[0] == "ok":
        assert same(got[1], want[1])
        encoded = got[1].to_json()
        assert same(encoded, reference_to_json(got[1]))
        assert same(encoded, reference_to_json(want[1]))
    else:
        assert got[1] == want[1]


@pytest.mark.parametrize(("cls", "data"), CASES, ids=[c[1]["type"] for c in CASES])
def test_real_messages_decode_the_same(reference, cls, data):
    check(reference, cls, data)
    assert fast(cls, data)[0] == "ok"
    with_extra = {**copy.deepcopy(data), "future_field": {"x": [1]}, "extra": 1, "more": None}
    check(reference, cls, with_extra)
    assert fast(cls, with_extra)[1].extra == {"future_field": {"x": [1]}, "extra": 1,
                                              "more": None}


ODD_VALUES = st.sampled_from([None, 1, 1.5, -1, "s", "", True, [], {}, {"value": ""},
                              {"value": 3}, {"value": "v"}, "LAUNCH", "TASK_RUNNING",
                              "NOT_A_NAME", "!!not base64", [{"value": "x"}], [None]])


def paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths(v, (*prefix, i))


def damage(data, choices):
    data = copy.deepcopy(data)
    for pick, op, shared_odd in choices:
        odd = copy.deepcopy(shared_odd)
        all_paths = [p for p in paths(data) if p]
        if not all_paths:
            break
        path = all_paths[pick % len(all_paths)]
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        if op == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif op == "add" and isinstance(parent, dict):
            parent["unknown_" + str(pick)] = odd
        else:
            parent[path[-1]] = odd
    return data


@settings(max_examples=300)
@given(st.sampled_from(CASES),
       st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["delete", "add", "set"]),
                          ODD_VALUES), min_size=1, max_size=3))
def test_damaged_messages_fail_or_decode_the_same(reference, case, choices):
    cls, data = case
    check(reference, cls, damage(data, choices))


def test_not_an_object(reference):
    for data in ([], "x", 1, None):
        check(reference, Call, data)


@given(st.text(alphabet="AB+/=a9 \n\u00e9-_", max_size=12)
       | st.binary(max_size=9).map(lambda b: base64.b64encode(b).decode()))
def test_base64_fields_read_as_b64decode_validate(text):
    try:
        want = ("ok", base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        want = ("bad", "not valid Base64")
    try:
        got = ("ok", codec._decode_bytes(text))
    except codec._Invalid as exc:
        got = ("bad", exc.message)
    assert got == want
    if got[0] == "ok":
        assert codec._encode_bytes(got[1]) == base64.b64encode(got[1]).decode()


@given(st.binary(min_size=40, max_size=200), st.integers(0, 63))
def test_bytes_decoded_are_encoded_back_as_base64_of_their_value(data, bits):
    """The text kept for decoded bytes is given back only where it is exactly what
    encoding them writes (not for Base64 with stray bits under its padding)."""
    text = base64.b64encode(data).decode()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    if text.endswith("="):  # the last character before the padding, with other low bits
        pads = len(text) - len(text.rstrip("="))
        i = len(text) - pads - 1
        keep = alphabet.index(text[i]) & ~(0b1111 if pads == 2 else 0b11)
        stray = keep | (bits & (0b1111 if pads == 2 else 0b11))
        text = text[:i] + alphabet[stray] + text[i + 1:]
    decoded = codec._decode_bytes(text)
    assert decoded == data
    assert codec._canonical(text) is (base64.b64encode(decoded).decode() == text)
    assert codec._encode_bytes(decoded) == base64.b64encode(decoded).decode()
    assert codec._encode_bytes(bytes(decoded)) == base64.b64encode(decoded).decode()


def test_the_text_of_decoded_bytes_is_kept_for_a_few_only():
    kept = [codec._decode_bytes(base64.b64encode(bytes([i]) * 60).decode())
            for i in range(codec._TEXTS_KEPT * 2)]
    assert len(codec._TEXTS) <= codec._TEXTS_KEPT
    for i, data in enumerate(kept):
        assert type(data) is bytes
        assert codec._encode_bytes(data) == base64.b64encode(bytes([i]) * 60).decode()


@pytest.mark.parametrize(("cls", "data"), CASES)
def test_copy_of_is_what_dataclasses_replace_makes(cls, data):
    msg = cls.from_json(copy.deepcopy(data))
    msg.extra["kept"] = {"x": 1}
    copied = codec.copy_of(msg)
    assert copied is not msg and same(copied, dataclasses.replace(msg))
    assert all(getattr(copied, f.name) is getattr(msg, f.name)  # shallow, as replace
               for f in dataclasses.fields(msg))


def test_the_master_update_event_is_the_event_encoded():
    from mesonb.master.book import Framework
    from mesonb.master.updates import update_event
    from mesonb.protocol.mesos import FrameworkInfo, TaskStatus
    from mesonb.protocol.scheduler import EventType, Update

    status = TaskStatus.from_json({**STATUS, "state": "TASK_UNREACHABLE", "surplus": [1]})
    for aware in (True, False):
        info = FrameworkInfo.from_json({"user": "u", "name": "n", "capabilities": [
            {"type": "PARTITION_AWARE"}] if aware else []})
        framework = Framework.__new__(Framework)
        framework.info = info
        want = Event(type=EventType.UPDATE, update=Update(
            status=dataclasses.replace(status, state=status.state if aware
                                       else type(status.state).TASK_LOST))).to_json()
        assert update_event(framework, status) == want


def test_the_master_offers_event_is_the_event_encoded():
    from mesonb.master.updates import offers_event
    from mesonb.protocol.scheduler import EventType, Offers

    offers = [{"id": {"value": "O1"}, "agent_id": {"value": "S1"}, "hostname": "h",
               "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0}}]}]
    assert offers_event(offers) == Event(type=EventType.OFFERS,
                                         offers=Offers(offers=offers)).to_json()
