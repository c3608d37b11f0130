"""Mesos's HealthCheck and CheckInfo: the client's dataclass, defaults and validation."""

from __future__ import annotations

import re

import pytest

from mesonb.protocol.checks import HealthCheck, describe_check, health_check_json, validate_check


def test_the_dataclass_has_mesos_defaults_and_json() -> None:
    check = HealthCheck.tcp(8080)
    assert check.to_json() == {
        "type": "TCP", "tcp": {"port": 8080}, "delay_seconds": 15.0,
        "interval_seconds": 10.0, "timeout_seconds": 20.0, "grace_period_seconds": 10.0,
        "consecutive_failures": 3}
    http = HealthCheck.http(80, "/health", statuses=(200, 204), scheme="https").to_json()
    assert http["http"] == {"scheme": "https", "port": 80, "path": "/health",
                            "statuses": [200, 204]}
    assert HealthCheck.shell("test -f ready").to_json()["command"] == {
        "shell": True, "value": "test -f ready"}
    assert check.describe() == "TCP port 8080"
    assert describe_check(http) == "HTTP GET :80/health"


@pytest.mark.parametrize(("spec", "error"), [
    ({"type": "PING"}, "health_check.type: must be one of COMMAND, HTTP, TCP, not 'PING'"),
    ({"type": "TCP"}, "health_check.tcp: a TCP check needs it"),
    ({"type": "TCP", "tcp": {"port": 70000}}, "health_check.tcp.port: must be a port number"),
    ({"type": "HTTP", "http": {"port": 80, "path": "health"}}, "http.path: must start with"),
    ({"type": "HTTP", "http": {"port": 80, "scheme": "ftp"}}, "http.scheme: must be http"),
    ({"type": "HTTP", "http": {"port": 80, "statuses": [99]}}, "statuses: must be HTTP"),
    ({"type": "COMMAND", "command": {}}, "health_check.command: a COMMAND check needs"),
    ({"type": "TCP", "tcp": {"port": 1}, "interval_seconds": -1}, "interval_seconds: must be"),
    ({"type": "TCP", "tcp": {"port": 1}, "delay_seconds": "soon"}, "delay_seconds: must be"),
    ({"type": "TCP", "tcp": {"port": 1}, "consecutive_failures": 0}, "consecutive_failures"),
    ([1], "health_check: must be an object, not list"),
])
def test_malformed_checks_are_refused_naming_the_field(spec: object, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        validate_check(spec, "health_check")


def test_a_check_info_command_wraps_its_command_info() -> None:
    validate_check({"type": "COMMAND", "command": {"command": {"value": "true"}}}, "check",
                   health=False)


def test_the_client_takes_a_dataclass_json_or_nothing() -> None:
    assert health_check_json(None) is None
    assert health_check_json(HealthCheck.tcp(1))["tcp"] == {"port": 1}  # type: ignore[index]
    assert health_check_json({"type": "TCP", "tcp": {"port": 2}}) == {
        "type": "TCP", "tcp": {"port": 2}}
    with pytest.raises(TypeError, match="health_check must be a HealthCheck"):
        health_check_json("tcp:80")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"health_check\.tcp\.port"):
        HealthCheck.tcp(0).to_json()
