"""Numbers the protocol refuses while decoding: non-finite floats (named by their field)
and resource scalars that are not finite, are negative or are too large."""

from __future__ import annotations

import math

import pytest

from mesonb.protocol.agent import load_call
from mesonb.protocol.errors import BadRequest
from mesonb.protocol.mesos import Attribute, TaskInfo
from mesonb.protocol.operator import Call as OperatorCall
from mesonb.protocol.resources import MAX_SCALAR, Resources
from mesonb.protocol.scheduler import Call
from mesonb.testing.harness import MasterHarness, command_task

NOT_FINITE = ["Infinity", "-Infinity", "NaN", "inf", 10**400]


def accept(resources: list[dict]) -> dict:
    task = {"name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
            "command": {"value": "true"}, "resources": resources}
    return {"type": "ACCEPT", "framework_id": {"value": "f"}, "accept": {
        "offer_ids": [{"value": "o"}],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}}


def cpus(value: object) -> list[dict]:
    return [{"name": "cpus", "type": "SCALAR", "scalar": {"value": value}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]


@pytest.mark.parametrize("value", NOT_FINITE)
def test_non_finite_floats_are_refused_naming_the_field(value):
    subscribe = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {
        "user": "u", "name": "n", "failover_timeout": value}}}
    with pytest.raises(BadRequest, match=r"^Call\.subscribe\.framework_info\.failover_timeout:"
                                         r" expected a finite number"):
        Call.parse(subscribe)
    decline = {"type": "DECLINE", "framework_id": {"value": "f"}, "decline": {
        "offer_ids": [{"value": "o"}], "filters": {"refuse_seconds": value}}}
    with pytest.raises(BadRequest, match=r"Call\.decline\.filters\.refuse_seconds"):
        Call.parse(decline)
    weights = {"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [
        {"role": "r", "weight": value}]}}
    with pytest.raises(BadRequest, match=r"weight_infos\[0\]\.weight: expected a finite"):
        OperatorCall.from_json(weights, "Call")


def test_finite_floats_still_parse_from_numbers_and_numeric_strings():
    for value, expected in ((60, 60.0), (1.5, 1.5), ("2.5", 2.5), ("1e3", 1000.0)):
        call = Call.parse({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "u", "name": "n", "failover_timeout": value}}})
        assert call.subscribe.framework_info.failover_timeout == expected


@pytest.mark.parametrize(("value", "problem"), [
    ("Infinity", "'Infinity' is not a finite number"),
    ("NaN", "'NaN' is not a finite number"),
    (10**400, "out of range"),
    (-1, "-1 is negative"),
    (1e300, "more than the largest scalar"),
])
def test_bad_scalars_in_an_accept_fail_the_whole_call_while_parsing(value, problem):
    with pytest.raises(BadRequest) as info:
        Call.parse(accept(cpus(value)))
    assert info.value.message.startswith(
        "Call.accept.operations[0].launch.task_infos[0].resources[0].scalar.value:"
        " invalid scalar resource 'cpus': ")
    assert problem in info.value.message


def test_bad_scalars_are_refused_in_executors_and_agent_registrations():
    executor = {"executor_id": {"value": "e"}, "command": {"value": "x"},
                "resources": cpus("Infinity")}
    with pytest.raises(BadRequest, match=r"executor\.resources\[0\]\.scalar\.value"):
        TaskInfo.from_json({"name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
                            "executor": executor})
    register = {"type": "REGISTER", "register": {"version": "1", "agent_info": {
        "hostname": "h", "resources": cpus(-2)}}}
    with pytest.raises(BadRequest, match=r"agent_info\.resources\[0\]\.scalar\.value.*negative"):
        load_call(str(register).replace("'", '"'))


def test_malformed_resources_other_than_bad_scalars_are_left_to_task_validation():
    call = Call.parse(accept([{"name": "cpus", "type": "SCALAR", "scalar": {"value": "lots"}}]))
    task = call.accept.operations[0].launch.task_infos[0]
    with pytest.raises(BadRequest, match="malformed SCALAR resource 'cpus'"):
        Resources.from_json(task.resources)


@pytest.mark.parametrize("text", ["cpus:inf", "cpus:nan", "cpus:-1", "mem:1e300",
                                  "cpus:1;mem:Infinity"])
def test_the_agent_flag_refuses_scalars_it_cannot_hold(text):
    with pytest.raises(ValueError, match=r"bad scalar '\w+:[-\w.]+': "):
        Resources.parse(text)


def test_resources_from_json_refuses_non_finite_values_with_bad_request():
    for value in (math.inf, math.nan, "Infinity", 10**400, MAX_SCALAR * 2):
        with pytest.raises(BadRequest, match="finite, non-negative"):
            Resources.from_json(cpus(value))
    assert Resources.from_json(cpus(MAX_SCALAR)).get("cpus") == MAX_SCALAR


def test_attributes_that_are_not_finite_numbers_stay_text():
    attrs = {a.name: a for a in Attribute.parse("zone:1;x:inf;y:nan")}
    assert attrs["zone"].type == "SCALAR" and attrs["zone"].value() == 1.0
    assert (attrs["x"].type, attrs["x"].value()) == ("TEXT", "inf")
    assert (attrs["y"].type, attrs["y"].value()) == ("TEXT", "nan")


def test_a_refused_accept_leaves_the_offer_to_be_used():
    h = MasterHarness()
    agent = h.add_agent("cpus:2;mem:1024")
    fw = h.subscribe()
    h.settle()
    (offer,) = fw.offers()
    bad = command_task("t", agent.agent_id)
    bad["resources"][0]["scalar"]["value"] = "Infinity"
    with pytest.raises(BadRequest, match="not a finite number"):
        fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
            {"type": "LAUNCH", "launch": {"task_infos": [bad]}}]})
    assert offer["id"]["value"] in h.master.book.offers
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [command_task("t", agent.agent_id)]}}]})
    (run,) = agent.commands("RUN_TASK")
    assert run["run_task"]["task"]["task_id"]["value"] == "t"
