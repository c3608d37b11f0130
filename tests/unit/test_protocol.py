"""The protocol package: wire shapes, lenient inputs, errors, resources and RecordIO."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesonb.protocol import recordio
from mesonb.protocol.agent import load_call, load_command
from mesonb.protocol.errors import BadRequest
from mesonb.protocol.executor import ExecutorCall
from mesonb.protocol.mesos import Attribute, TaskStatus
from mesonb.protocol.resources import Resources
from mesonb.protocol.scheduler import Call, CallType, Error, Event, EventType, Offers
from mesonb.protocol.states import Reason, TaskState, for_framework

ACCEPT = {
    "type": "ACCEPT",
    "framework_id": {"value": "f1"},
    "accept": {
        "offer_ids": [{"value": "o1"}],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [{
            "name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": "a1"},
            "command": {"value": "echo hi", "environment": {"variables": [
                {"name": "A", "value": "1"}]}},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}],
            "container": {"type": "MESOS"},
            "health_check": {"type": "COMMAND"},
        }]}}],
        "filters": {"refuse_seconds": 1.5},
    },
}


def test_accept_round_trips_and_keeps_fields_it_does_not_model():
    call = Call.parse(json.dumps(ACCEPT))
    assert call.type is CallType.ACCEPT and call.framework_id == "f1"
    task = call.accept.operations[0].launch.task_infos[0]
    assert task.task_id == "t1" and task.command.shell is True
    assert task.extra == {"container": {"type": "MESOS"}, "health_check": {"type": "COMMAND"}}
    out = call.to_json()
    out_task = out["accept"]["operations"][0]["launch"]["task_infos"][0]
    assert out_task["container"] == {"type": "MESOS"}
    assert out_task["task_id"] == {"value": "t1"}
    assert Call.parse(out) == call


def test_events_nest_their_bodies_like_the_protobuf():
    offers = Event(type=EventType.OFFERS, offers=Offers(offers=[{"id": {"value": "o"}}]))
    assert offers.to_json() == {"type": "OFFERS", "offers": {"offers": [{"id": {"value": "o"}}]}}
    error = Event(type=EventType.ERROR, error=Error(message="boom")).to_json()
    assert error == {"type": "ERROR", "error": {"message": "boom"}}


def test_status_uuid_and_data_are_base64_and_enums_are_names():
    status = TaskStatus(task_id="t", state=TaskState.TASK_FAILED, uuid=b"\x00\x01",
                        reason=Reason.REASON_CONTAINER_LIMITATION_MEMORY, data=b"hi")
    out = status.to_json()
    assert out == {"task_id": {"value": "t"}, "state": "TASK_FAILED", "uuid": "AAE=",
                   "reason": "REASON_CONTAINER_LIMITATION_MEMORY", "data": "aGk="}
    assert TaskStatus.from_json(out) == status


def test_enum_numbers_are_accepted_as_protobuf_json_allows():
    status = TaskStatus.from_json({"task_id": {"value": "t"}, "state": 1})
    assert status.state is TaskState.TASK_RUNNING


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "invalid JSON"),
        ("[]", "expected a JSON object"),
        ("{}", "missing required field 'type'"),
        ('{"type": "FLY"}', "unknown value 'FLY'"),
        ('{"type": "ACCEPT"}', "'accept' to be present"),
        ('{"type": "KILL", "kill": {"task_id": "t"}}', "Call.kill.task_id"),
        ('{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u"}}}',
         "framework_info: missing required field 'name'"),
        ('{"type": "DECLINE", "decline": {"offer_ids": [{"value": 3}]}}', "offer_ids[0]"),
        ('{"type":"ACKNOWLEDGE","acknowledge":{"agent_id":{"value":"a"},'
         '"task_id":{"value":"t"},"uuid":"%%%"}}', "not valid Base64"),
    ],
)
def test_malformed_calls_say_what_is_wrong(body, message):
    with pytest.raises(BadRequest) as info:
        Call.parse(body)
    assert message in info.value.message
    assert info.value.status == 400


def test_lenient_doc_shapes_are_normalised():
    revive = Call.parse({"type": "REVIVE", "framework_id": {"value": "f"},
                         "revive": {"role": "r1"}})
    assert revive.revive.roles == ["r1"]
    request = Call.parse({"type": "REQUEST", "framework_id": {"value": "f"},
                          "requests": [{"agent_id": {"value": "a"}}]})
    assert request.request.requests == [{"agent_id": {"value": "a"}}]


def test_executor_call_and_agent_messages_validate_their_bodies():
    with pytest.raises(BadRequest, match="'update'"):
        ExecutorCall.parse(json.dumps({"type": "UPDATE", "executor_id": {"value": "e"},
                                       "framework_id": {"value": "f"}}))
    with pytest.raises(BadRequest, match="without its 'register' body"):
        load_call('{"type": "REGISTER"}')
    assert load_command('{"type": "PING"}').type.value == "PING"


def test_partition_aware_states_become_lost_for_old_frameworks():
    assert for_framework(TaskState.TASK_UNREACHABLE, False) is TaskState.TASK_LOST
    assert for_framework(TaskState.TASK_UNREACHABLE, True) is TaskState.TASK_UNREACHABLE
    assert for_framework(TaskState.TASK_FINISHED, False) is TaskState.TASK_FINISHED
    assert TaskState.TASK_LOST.terminal and not TaskState.TASK_UNREACHABLE.terminal


# -- resources ---------------------------------------------------------------------------


def test_resources_parse_the_agent_flag_format():
    r = Resources.parse("cpus:2;mem:4096;disk:20000;ports:[31000-32000, 40000-40010];gpu_ids:{a,b}")
    assert r.scalars == {"cpus": 2.0, "mem": 4096.0, "disk": 20000.0}
    assert r.ranges["ports"] == ((31000, 32000), (40000, 40010))
    assert r.sets["gpu_ids"] == frozenset({"a", "b"})
    assert r.ports_count() == 1012
    assert r.to_flat()["ports"] == "[31000-32000, 40000-40010]"


@pytest.mark.parametrize("bad", ["cpus", "cpus:x", "cpus:-1", "ports:[5-1]", "ports:[1-2"])
def test_bad_resource_strings_are_refused(bad):
    with pytest.raises(ValueError):
        Resources.parse(bad)


def test_resource_json_round_trip_and_validation():
    r = Resources.parse("cpus:1.5;mem:100;ports:[1-10]")
    assert Resources.from_json(r.to_json()) == r
    with pytest.raises(BadRequest, match="malformed SCALAR"):
        Resources.from_json([{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}])
    with pytest.raises(BadRequest, match="expected an array"):
        Resources.from_json({"cpus": 1})


def test_resource_arithmetic_with_ranges():
    have = Resources.parse("cpus:2;ports:[100-200]")
    take = Resources.parse("cpus:0.5;ports:[150-160]")
    left = have - take
    assert left.get("cpus") == 1.5
    assert left.ranges["ports"] == ((100, 149), (161, 200))
    assert have.contains(take) and not left.contains(take)
    assert left + take == have
    assert have.shortfall(Resources.parse("cpus:3;mem:10")) == {"cpus": 1.0, "mem": 10.0}


scalar_bags = st.dictionaries(
    st.sampled_from(["cpus", "mem", "disk", "gpus"]),
    st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda v: round(v, 3)),
)
range_lists = st.lists(
    st.tuples(st.integers(1, 5000), st.integers(0, 50)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=5,
)


@given(scalar_bags, scalar_bags, range_lists, range_lists)
def test_subtracting_what_was_added_gives_back_the_original(a, b, ra, rb):
    left = Resources(a, {"ports": ra})
    right = Resources(b, {"ports": rb})
    total = left + right
    assert total.contains(left) and total.contains(right)
    rest = total - right
    for name, value in left.scalars.items():
        assert rest.get(name) == pytest.approx(value, abs=0.002)


@given(scalar_bags, scalar_bags)
def test_subtraction_never_goes_negative(a, b):
    rest = Resources(a) - Resources(b)
    assert all(v >= 0 for v in rest.scalars.values())


def test_attributes_parse_text_scalar_and_ranges():
    attrs = {a.name: a for a in Attribute.parse("rack:a;zone:1;span:[1-3]")}
    assert attrs["rack"].value() == "a" and attrs["zone"].value() == 1.0
    assert attrs["span"].value() == [(1, 3)]


# -- RecordIO ----------------------------------------------------------------------------


@given(st.lists(st.binary(min_size=1, max_size=300), max_size=8), st.integers(1, 50))
def test_recordio_survives_any_rechunking(records, chunk):
    stream = b"".join(recordio.encode(r) for r in records)
    decoder = recordio.Decoder()
    out = []
    for i in range(0, len(stream), chunk):
        out.extend(decoder.feed(stream[i : i + chunk]))
    assert out == records


def test_recordio_rejects_garbage_lengths():
    with pytest.raises(BadRequest):
        list(recordio.Decoder().feed(b"12x\n{}"))
