"""App definitions: Marathon's defaults, its 400/422 answers, what the JSON may hold."""

from __future__ import annotations

import inspect

import pytest

from mesonb.frameworks.marathon.model import (
    InvalidJSON,
    InvalidObject,
    merge_update,
    normalize_path,
    parse_app,
)

marathon_models = pytest.importorskip("marathon.models")


def errors(body: dict) -> dict[str, list[str]]:
    with pytest.raises(InvalidObject) as info:
        parse_app(body)
    assert info.value.body()["message"] == "Object is not valid"
    return {d["path"]: d["errors"] for d in info.value.details}


def test_marathons_defaults() -> None:
    app = parse_app({"id": "web", "cmd": "sleep 1"})
    assert (app.id, app.cpus, app.mem, app.disk, app.gpus, app.instances) == \
        ("/web", 1.0, 128.0, 0.0, 0, 1)
    assert (app.backoff_seconds, app.backoff_factor, app.max_launch_delay_seconds) == \
        (1.0, 1.15, 300.0)
    assert (app.minimum_health_capacity, app.maximum_over_capacity) == (1.0, 1.0)
    assert app.kill_selection == "YOUNGEST_FIRST"
    assert app.ports == [{"port": 0, "protocol": "tcp"}]


def test_out_of_range_values_get_422_with_paths() -> None:
    found = errors({"id": "/a", "cmd": "x", "cpus": 0, "mem": -1, "instances": -2,
                    "upgradeStrategy": {"minimumHealthCapacity": 1.5},
                    "constraints": [["hostname", "BOGUS"]], "killSelection": "RANDOM"})
    assert set(found) == {"/cpus", "/mem", "/instances", "/upgradeStrategy/minimumHealthCapacity",
                          "/constraints(0)", "/killSelection"}
    assert found["/upgradeStrategy/minimumHealthCapacity"] == ["is greater than 1"]


def test_ids_follow_marathons_path_rule() -> None:
    assert "/id" in errors({"id": "/Bad_Name", "cmd": "x"})
    assert "/id" in errors({"id": "/group/tasks", "cmd": "x"})
    assert "/id" in errors({"cmd": "x"})
    assert normalize_path("//a//b/") == "/a/b"
    assert normalize_path("web", "/group") == "/group/web"


def test_cmd_or_args_but_not_both() -> None:
    assert "/" in errors({"id": "/a"})
    assert "/" in errors({"id": "/a", "cmd": "x", "args": ["y"]})


def test_wrong_json_types_are_400() -> None:
    with pytest.raises(InvalidJSON) as info:
        parse_app({"id": "/a", "cmd": "x", "cpus": "lots", "env": []})
    assert {d["path"] for d in info.value.details} == {"/cpus", "/env"}
    assert info.value.body()["message"] == "Invalid JSON"
    with pytest.raises(InvalidJSON):
        parse_app([1, 2])


@pytest.mark.parametrize("constraint", [
    ["hostname", "UNIQUE", "x"], ["rack", "CLUSTER"], ["h", "LIKE", "("], ["h", "MAX_PER", "z"],
    ["hostname"], "hostname:UNIQUE"])
def test_bad_constraints(constraint: object) -> None:
    assert "/constraints(0)" in errors({"id": "/a", "cmd": "x", "constraints": [constraint]})


def test_health_check_port_index_must_exist() -> None:
    found = errors({"id": "/a", "cmd": "x", "portDefinitions": [],
                    "healthChecks": [{"protocol": "HTTP", "portIndex": 0}]})
    assert "/healthChecks(0)/portIndex" in found


def test_the_deploy_timeout_label_must_be_a_number() -> None:
    assert "/labels/MESONB_DEPLOY_TIMEOUT" in errors(
        {"id": "/a", "cmd": "x", "labels": {"MESONB_DEPLOY_TIMEOUT": "soon"}})
    app = parse_app({"id": "/a", "cmd": "x", "labels": {"MESONB_DEPLOY_TIMEOUT": "2.5"}})
    assert app.deploy_timeout == 2.5


def test_the_json_holds_only_fields_marathon_python_knows() -> None:
    app = parse_app({"id": "/a", "cmd": "x", "tty": True, "resourceLimits": {},
                     "healthChecks": [{"protocol": "TCP"}],
                     "readinessChecks": [{"portName": "http"}],
                     "portDefinitions": [{"port": 0, "name": "http"}],
                     "upgradeStrategy": {"minimumHealthCapacity": 0.5}})
    body = app.to_json()
    known = set(inspect.signature(marathon_models.MarathonApp.__init__).parameters)
    from marathon.util import to_snake_case

    assert {to_snake_case(k) for k in body} <= known
    parsed = marathon_models.MarathonApp.from_json(body)
    assert parsed.health_checks[0].grace_period_seconds == 300
    assert parsed.upgrade_strategy.minimum_health_capacity == 0.5


def test_an_update_merges_into_the_current_definition() -> None:
    app = parse_app({"id": "/a", "cmd": "x", "instances": 2, "mem": 64})
    merged = merge_update(app, {"instances": 5, "id": "/other"})
    assert merged["instances"] == 5 and merged["mem"] == 64 and merged["id"] == "/a"
    assert parse_app(merged).same_config(app)
    changed = parse_app(merge_update(app, {"cmd": "y"}))
    assert not changed.same_config(app)


def test_unreachable_strategy_defaults_disabled_and_validation() -> None:
    app = parse_app({"id": "/a", "cmd": "x"})
    assert app.unreachable == (0.0, 0.0)  # Marathon's default: replaced at once
    assert app.to_json()["unreachableStrategy"] == {"inactiveAfterSeconds": 0,
                                                    "expungeAfterSeconds": 0}
    timed = parse_app({"id": "/a", "cmd": "x", "unreachableStrategy": {
        "inactiveAfterSeconds": 60, "expungeAfterSeconds": 120}})
    assert timed.unreachable == (60.0, 120.0)
    disabled = parse_app({"id": "/a", "cmd": "x", "unreachableStrategy": "disabled"})
    assert disabled.unreachable is None
    # marathon-python reads all three back (its model turns "disabled" into the string)
    for one in (app, timed, disabled):
        parsed = marathon_models.MarathonApp.from_json(one.to_json())
        assert parsed.unreachable_strategy is not None
    assert marathon_models.MarathonApp.from_json(disabled.to_json()).unreachable_strategy \
        == "disabled"
    assert errors({"id": "/a", "cmd": "x", "unreachableStrategy": {
        "inactiveAfterSeconds": 100, "expungeAfterSeconds": 10}}) == {
        "/unreachableStrategy/inactiveAfterSeconds": [
            "inactiveAfterSeconds (100) must be less or equal to expungeAfterSeconds, "
            "which is 10"]}
    assert set(errors({"id": "/a", "cmd": "x", "unreachableStrategy": {
        "inactiveAfterSeconds": -1, "bogus": 1}})) == {
        "/unreachableStrategy/inactiveAfterSeconds", "/unreachableStrategy/bogus"}
    assert errors({"id": "/a", "cmd": "x", "unreachableStrategy": "sometimes"}) == {
        "/unreachableStrategy": ["must be an object or 'disabled'"]}
    with pytest.raises(InvalidJSON):
        parse_app({"id": "/a", "cmd": "x", "unreachableStrategy": 5})
