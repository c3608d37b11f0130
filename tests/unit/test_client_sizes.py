"""Sizes ("1GB", "512MiB", numbers of MB) and the call placeholders of the functions protocol."""

import pytest

from mesonb.client.sizes import (
    call_resources,
    could_hold,
    format_mb,
    parse_size,
    resource_scalars,
)
from mesonb.frameworks.functions.protocol import Call, Dep, Outcome, Ref, substitute
from mesonb.protocol.resources import Resources


@pytest.mark.parametrize(("text", "mb"), [
    ("1GB", 1024.0), ("512MiB", 512.0), ("1.5 GiB", 1536.0), ("64", 64.0), (64, 64.0),
    (0.5, 0.5), ("2g", 2048.0), ("1TB", 1024.0**2), ("1024KB", 1.0), ("1048576B", 1.0),
    (" 3 mb ", 3.0),
])
def test_sizes(text, mb):
    assert parse_size(text) == mb


@pytest.mark.parametrize("bad", ["", "lots", "1XB", "GB", "-1GB", "1 iB", -5, None, True, [1]])
def test_bad_sizes_raise_clear_errors(bad):
    with pytest.raises(ValueError, match="mem"):
        parse_size(bad, "mem")


def test_format_mb():
    assert format_mb(1536) == "1.5 GiB"
    assert format_mb(64) == "64 MiB"


def test_substitute_replaces_placeholders_one_level_deep():
    values = ["a", "b"]
    assert substitute(Dep(1), values) == "b"
    assert substitute([Dep(0), 3], values) == ["a", 3]
    assert substitute((Dep(0),), values) == ("a",)
    assert substitute({"k": Dep(1)}, values) == {"k": "b"}
    assert substitute([[Dep(0)]], values) == [[Dep(0)]]


def test_call_and_outcome_round_trip():
    call = Call(call=b"x", deps=[Ref(data=b"y"), Ref(url="http://h/p")])
    assert Call.decode(call.encode()) == call
    outcome = Outcome(ok=True, value=b"v", size=1)
    assert Outcome.decode(outcome.encode()) == outcome
    with pytest.raises(ValueError):
        Call.decode(outcome.encode())


def test_call_resources_are_parsed_once_per_distinct_arguments() -> None:
    """A loop of submits with the same keywords parses and checks them once; the answer
    is the same immutable Resources, and bad arguments still fail with their name."""
    first = call_resources(0.2, "1GB", None, None)
    assert call_resources(0.2, "1GB", None, None) is first
    assert first == Resources(resource_scalars(0.2, "1GB", None, None))
    assert call_resources(0.2, 512, None, None).scalars["mem"] == 512.0
    assert call_resources(1, "1GB", None, None).scalars["cpus"] == 1.0
    with pytest.raises(ValueError, match="cpus"):
        call_resources(-1, "1GB", None, None)
    with pytest.raises(ValueError, match="cpus"):  # errors are not kept: raised again
        call_resources(-1, "1GB", None, None)
    with pytest.raises(ValueError, match="mem"):  # unhashable: checked all the same
        call_resources(0.2, ["1GB"], None, None)


def test_could_hold_answers_for_the_agents_given_not_those_it_kept() -> None:
    small = [{"resources": {"cpus": 1.0, "mem": 1024.0}}]
    big = [{"resources": {"cpus": 1.0, "mem": 1024.0}}, {"resources": {"cpus": 4.0,
                                                                      "mem": 8192.0}}]
    need = call_resources(2, "2GiB", None, None)
    assert not could_hold(small, need)
    assert could_hold(small, need) is False  # kept: the same answer
    assert could_hold(big, need)  # a refresh is a new list: asked again
    assert not could_hold([], need)
    fits = call_resources(0.5, "512MiB", None, None)
    assert could_hold(small, fits) and could_hold(small, call_resources(1, 1024, None, None))
    assert not could_hold(small, call_resources(1, 1025, None, None))
