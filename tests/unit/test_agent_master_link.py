"""Pure pieces of the agent's master connection, and the agent's safety check."""

from __future__ import annotations

import pytest

from mesonb.agent.agent import UnsafeConfiguration, check_safety, is_loopback
from mesonb.agent.master_link import Backoff, follow_redirect, parse_master
from mesonb.agent.paths import is_safe_id
from mesonb.config import AgentConfig


def test_backoff_doubles_from_the_factor_to_the_cap_and_resets() -> None:
    b = Backoff(1.0, 10.0, rng=lambda: 1.0)
    assert [b.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    b.reset()
    assert b.next() == 1.0
    half = Backoff(2.0, 60.0, rng=lambda: 0.5)
    assert [half.next() for _ in range(3)] == [1.0, 2.0, 4.0]
    assert Backoff(0.0, 1.0, rng=lambda: 1.0).next() == 0.0


@pytest.mark.parametrize(("spec", "expected"), [
    ("127.0.0.1:5050", "127.0.0.1:5050"),
    ("master.example.com", "master.example.com:5050"),
    ("http://h:1234/", "h:1234"),
    ("[::1]:5050", "[::1]:5050"),
    ("[::1]", "[::1]:5050"),
    ("zk://z1:2181,z2:2181/mesos", "zk://z1:2181,z2:2181/mesos"),  # resolved per connection
])
def test_parse_master(spec: str, expected: str) -> None:
    assert parse_master(spec) == expected


@pytest.mark.parametrize("spec", ["", "h:notaport", "h:0", "zk://z:2181", "zk://z:x/m",
                                  "h:5050/path",
                                  "::1:5050", "user@h:5050"])
def test_parse_master_refuses(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_master(spec)


def test_follow_redirect() -> None:
    url = "ws://old:5050/mesonb/v1/agent"
    assert follow_redirect(url, "//new:5051/mesonb/v1/agent") == "ws://new:5051/mesonb/v1/agent"
    assert follow_redirect(url, "http://new:5051/mesonb/v1/agent") == (
        "ws://new:5051/mesonb/v1/agent")
    assert follow_redirect(url, "/elsewhere") == "ws://old:5050/elsewhere"
    assert follow_redirect(url, "new:5051") == "ws://new:5051/mesonb/v1/agent"


def test_safety() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")
    check_safety(AgentConfig(ip="127.0.0.1"))
    check_safety(AgentConfig(ip="0.0.0.0", secret="s"))
    with pytest.raises(UnsafeConfiguration, match="without a secret"):
        check_safety(AgentConfig(ip="0.0.0.0"))


def test_ids_usable_as_path_components() -> None:
    assert is_safe_id("task-1.2_x")
    for bad in ("", ".", "..", "a/b", "a\0b"):
        assert not is_safe_id(bad)
