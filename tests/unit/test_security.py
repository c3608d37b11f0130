"""Authentication and authorization, pure: credentials files, Mesos's ACL semantics
(table-driven, principals x actions), executor tokens, and the Security gate."""

from __future__ import annotations

import base64
import json
import os

import pytest

from mesonb.http.base import Security
from mesonb.protocol.errors import Forbidden, Unauthorized
from mesonb.security import tokens
from mesonb.security.acls import AclError, Acls, Action, Entity, Kind, allows, matches
from mesonb.security.credentials import Credentials, CredentialsError

ACLS = {
    "permissive": False,
    "register_frameworks": [
        {"principals": {"values": ["etl"]}, "roles": {"values": ["batch", "etl"]}},
        {"principals": {"type": "ANY"}, "roles": {"values": ["dev"]}},
    ],
    "run_tasks": [
        {"principals": {"values": ["etl"]}, "users": {"type": "NONE"}},
        {"principals": {"type": "ANY"}, "users": {"values": ["nobody"]}},
    ],
    "teardown_frameworks": [
        {"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}},
    ],
    "view_frameworks": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}],
    "update_weights": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
    "access_sandboxes": [{"principals": {"values": ["etl"]}, "users": {"values": ["etl"]}}],
}

# (action, principal, object, allowed) for the ACLs above: the first matching rule decides,
# NONE denies, and with permissive false whatever no rule matches is denied.
TABLE = [
    (Action.REGISTER_FRAMEWORK, "etl", "batch", True),
    (Action.REGISTER_FRAMEWORK, "etl", "etl", True),
    (Action.REGISTER_FRAMEWORK, "etl", "prod", False),
    (Action.REGISTER_FRAMEWORK, "web", "dev", True),
    (Action.REGISTER_FRAMEWORK, None, "dev", True),  # the ANY subject matches an ANY rule
    (Action.REGISTER_FRAMEWORK, None, "batch", False),  # but no SOME rule
    (Action.REGISTER_FRAMEWORK, "web", "batch", False),
    (Action.RUN_TASK, "etl", "nobody", False),  # its first rule (NONE) matches and denies
    (Action.RUN_TASK, "web", "nobody", True),
    (Action.RUN_TASK, "web", "root", False),
    (Action.TEARDOWN_FRAMEWORK, "ops", "etl", True),
    (Action.TEARDOWN_FRAMEWORK, "etl", "etl", False),
    (Action.VIEW_FRAMEWORK, "anyone", "x", True),
    (Action.VIEW_FRAMEWORK, None, None, True),
    (Action.UPDATE_WEIGHT, "ops", "batch", True),
    (Action.UPDATE_WEIGHT, "etl", "batch", False),
    (Action.ACCESS_SANDBOX, "etl", "etl", True),
    (Action.ACCESS_SANDBOX, "etl", "root", False),
    (Action.GET_QUOTA, "ops", "batch", False),  # no rule: permissive false
]


@pytest.mark.parametrize("action, principal, obj, allowed", TABLE)
def test_acls_decide_as_mesos_local_authorizer(action, principal, obj, allowed):
    acls = Acls.parse(ACLS)
    assert acls.allowed(action, principal, obj) is allowed
    permissive = Acls.parse({**ACLS, "permissive": True})
    if action is Action.GET_QUOTA:  # no rule for it: permissive decides
        assert permissive.allowed(action, principal, obj)


SOME_A, SOME_AB = Entity.some("a"), Entity.some("a", "b")
ANY_E, NONE_E = Entity(Kind.ANY), Entity(Kind.NONE)


@pytest.mark.parametrize("request_, acl, match, allow", [
    (SOME_A, SOME_AB, True, True), (SOME_AB, SOME_A, False, False),
    (SOME_A, NONE_E, True, False), (SOME_A, ANY_E, True, True),
    (NONE_E, SOME_A, False, False), (NONE_E, NONE_E, True, True), (NONE_E, ANY_E, False, False),
    (ANY_E, SOME_A, False, False), (ANY_E, NONE_E, True, False), (ANY_E, ANY_E, True, True),
])
def test_match_and_allow_tables(request_, acl, match, allow):
    assert matches(request_, acl) is match
    assert allows(request_, acl) is allow


def test_every_documented_action_is_known_and_parses():
    data = {a.key: [{"principals": {"type": "ANY"}, a.object_field: {"type": "ANY"}}]
            for a in Action}
    acls = Acls.parse({"permissive": False, **data})
    assert all(acls.allowed(a, "p", "o") for a in Action)
    assert len(Action) >= 50


@pytest.mark.parametrize("data, words", [
    ([], "JSON object"),
    ({"permissive": "no"}, "permissive"),
    ({"launch_rockets": []}, "unknown action 'launch_rockets'"),
    ({"run_tasks": [{"principals": {"type": "ANY"}}]}, "missing 'users'"),
    ({"run_tasks": [{"principals": {"type": "SOMETIMES"}, "users": {}}]}, "SOMETIMES"),
    ({"run_tasks": [{"principals": {"values": "etl"}, "users": {}}]}, "list of strings"),
])
def test_bad_acls_are_refused_with_the_place(data, words):
    with pytest.raises(AclError, match=words):
        Acls.parse(data)


def test_acls_load_from_a_file_or_text(tmp_path):
    path = tmp_path / "acls.json"
    path.write_text(json.dumps(ACLS))
    assert not Acls.load(path).permissive
    assert not Acls.load(json.dumps(ACLS)).permissive
    with pytest.raises(AclError, match="Cannot read"):
        Acls.load(tmp_path / "missing.json")


def test_credentials_files_in_both_mesos_formats(tmp_path):
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({"credentials": [{"principal": "fw", "secret": "s1"},
                                                {"principal": "ops", "secret": "s2"}]}))
    os.chmod(path, 0o600)
    creds = Credentials.load(path)
    assert creds.check("fw", "s1") and creds.check("ops", "s2")
    assert not creds.check("fw", "s2") and not creds.check("nobody", "s1")
    text = tmp_path / "creds.txt"
    text.write_text("fw s1\n\nops s2\n")
    os.chmod(text, 0o600)
    assert Credentials.load(text).check("ops", "s2")
    os.chmod(text, 0o644)
    with pytest.raises(CredentialsError, match="chmod 600"):
        Credentials.load(text)
    with pytest.raises(CredentialsError, match="principal"):
        Credentials.parse('{"credentials": [{"secret": "x"}]}')


def _basic(principal: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{principal}:{secret}".encode()).decode()


def test_security_authenticates_basic_bearer_and_the_shared_secret():
    creds = Credentials.parse('{"credentials": [{"principal": "fw", "secret": "pw"}]}')
    security = Security(secret="cluster", credentials=creds, acls=Acls.parse(ACLS))
    assert security.authenticate(_basic("fw", "pw")) == "fw"
    assert security.authenticate("Bearer fw:pw") == "fw"
    assert security.authenticate("Bearer cluster") is None
    for bad in (None, "", _basic("fw", "nope"), "Bearer wrong", "Basic !!!", "Digest x"):
        with pytest.raises(Unauthorized):
            security.authenticate(bad)
    with pytest.raises(Forbidden, match="Principal 'fw' is not authorized to teardown"):
        security.authorize(Action.TEARDOWN_FRAMEWORK, "fw", "etl")
    security.authorize(Action.TEARDOWN_FRAMEWORK, "ops", "etl")
    assert Security().authenticate(None) is None  # an open (loopback) daemon


def test_executor_tokens_speak_for_one_container_only():
    key = tokens.new_key()
    claims = tokens.ExecutorClaims("fw-1", "exec-1", "c-1")
    token = tokens.sign(key, claims)
    assert tokens.verify(key, token) == claims
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(tokens.new_key(), token)  # another agent's key
    _, mac = token[len(tokens.PREFIX):].split(".")
    forged = tokens.PREFIX + base64.urlsafe_b64encode(json.dumps(
        {"fid": "fw-1", "eid": "exec-2", "cid": "c-2"}).encode()).decode().rstrip("=") + "." + mac
    with pytest.raises(tokens.InvalidToken, match="signature"):
        tokens.verify(key, forged)
    for junk in ("", "Bearer", tokens.PREFIX + "x", tokens.PREFIX + "a.b.c"):
        with pytest.raises(tokens.InvalidToken):
            tokens.verify(key, junk)
