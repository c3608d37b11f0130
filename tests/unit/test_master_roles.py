"""Role names: one rule (Mesos's) for the scheduler API and the operator API."""

from __future__ import annotations

import pytest

from mesonb.protocol.errors import BadRequest
from mesonb.protocol.roles import check_roles, validate_role
from mesonb.testing.harness import MasterHarness


@pytest.mark.parametrize("role", ["*", "web", "eng/analytics", "a.b", ".hidden", "x-y", "ä"])
def test_mesos_accepts(role):
    assert validate_role(role) is None
    check_roles([role])


@pytest.mark.parametrize("role", ["", "/a", "a/", "a//b", ".", "a/..", "-a", "a/-b", "a b",
                                  "a/*", "tab\there", "del\x7f"])
def test_mesos_refuses_with_a_reason(role):
    assert validate_role(role)
    with pytest.raises(BadRequest, match="Invalid role"):
        check_roles(["ok", role])


@pytest.mark.parametrize("role", [".hidden", "team/.cache"])
def test_subscribe_takes_what_the_operator_api_takes(role):
    """The old SUBSCRIBE regex refused components starting with '.', which Mesos allows."""
    h = MasterHarness()
    fw = h.subscribe(roles=[role], capabilities=("MULTI_ROLE",))
    assert fw.record.roles == (role,)


def test_subscribe_with_an_invalid_role_is_a_bad_request():
    h = MasterHarness()
    with pytest.raises(BadRequest, match=r"'a b'.*whitespace"):
        h.subscribe(roles=["a b"], capabilities=("MULTI_ROLE",))
    assert not h.master.book.frameworks
