"""The view filters on bare JSON: operator events a principal may not view are dropped,
answers keep their shape, and without view rules nothing is filtered (nor copied)."""

from __future__ import annotations

from typing import Any

import pytest

from mesonb import tls
from mesonb.security.acls import Acls
from mesonb.security.views import Viewer

ACLS = Acls.parse({
    "permissive": False,
    "view_frameworks": [{"principals": {"values": ["alice"]}, "users": {"values": ["root"]}}],
    "view_tasks": [{"principals": {"values": ["alice"]}, "users": {"values": ["root"]}}],
})
USERS = {"fw-root": "root", "fw-nobody": "nobody"}


def viewer(principal: str | None, **kwargs: Any) -> Viewer:
    return Viewer(ACLS, principal, user_of=USERS.get, **kwargs)


def task_added(framework: str, user: str | None = None) -> dict[str, Any]:
    task: dict[str, Any] = {"task_id": {"value": "t"}, "framework_id": {"value": framework}}
    if user:
        task["user"] = user
    return {"type": "TASK_ADDED", "task_added": {"task": task}}


@pytest.mark.parametrize(("principal", "event", "shown"), [
    ("alice", task_added("fw-root"), True),
    ("alice", task_added("fw-nobody"), False),
    ("alice", task_added("fw-root", user="nobody"), False),  # the task's own user decides
    ("bob", task_added("fw-root"), False),
    ("alice", {"type": "TASK_UPDATED", "task_updated": {"framework_id": {"value": "fw-root"},
                                                        "status": {}}}, True),
    ("alice", {"type": "TASK_UPDATED", "task_updated": {
        "framework_id": {"value": "fw-nobody"}, "status": {}}}, False),
    ("alice", {"type": "FRAMEWORK_ADDED", "framework_added": {
        "framework": {"framework_info": {"user": "root"}}}}, True),
    ("alice", {"type": "FRAMEWORK_UPDATED", "framework_updated": {
        "framework": {"framework_info": {"user": "nobody"}}}}, False),
    ("alice", {"type": "FRAMEWORK_REMOVED", "framework_removed": {
        "framework_info": {"user": "nobody"}}}, False),
    ("bob", {"type": "AGENT_ADDED", "agent_added": {"agent": {}}}, True),
    ("bob", {"type": "HEARTBEAT"}, True),
])
def test_operator_events_a_principal_may_not_view_are_dropped(principal: str,
                                                              event: dict[str, Any],
                                                              shown: bool) -> None:
    assert viewer(principal).event(event) is shown
    assert viewer(principal, everything=True).event(event)  # the cluster's operator


def test_answers_keep_their_shape_and_lose_only_what_is_hidden() -> None:
    state = {"frameworks": [
        {"id": "fw-root", "user": "root", "tasks": [{"id": "a"}, {"id": "b", "user": "nobody"}],
         "executors": [{"id": "e", "tasks": [{"id": "a"}]}]},
        {"id": "fw-nobody", "user": "nobody", "tasks": [{"id": "c"}]}],
        "completed_frameworks": [], "slaves": [{"id": "s"}], "orphan_tasks": [
            {"id": "o", "framework_id": "fw-nobody"}]}
    shown = viewer("alice").v0_frameworks(state)
    assert [f["id"] for f in shown["frameworks"]] == ["fw-root"]
    assert [t["id"] for t in shown["frameworks"][0]["tasks"]] == ["a"]
    assert shown["slaves"] == state["slaves"] and shown["orphan_tasks"] == []
    assert [t["id"] for t in state["frameworks"][0]["tasks"]] == ["a", "b"]  # not mutated
    assert viewer("bob").v0_frameworks(state)["frameworks"] == []
    open_acls = Viewer(Acls(), "anyone")
    assert not open_acls.active and open_acls.v0_frameworks(state) is state
    assert open_acls.sees_everything() and not viewer("alice").sees_everything()


def test_urls_follow_the_process_tls_setting(tmp_path: Any) -> None:
    previous = tls.configure(tls.TlsSettings(), environ={})
    try:
        assert tls.url("127.0.0.1", 5050, "/state") == "http://127.0.0.1:5050/state"
        assert tls.url("::1", 5050) == "http://[::1]:5050"
        assert not tls.wants_tls("127.0.0.1:5050") and tls.wants_tls("https://h:1")
        tls.configure(tls.TlsSettings(enabled=True), environ={})
        assert tls.url("127.0.0.1", 5050) == "https://127.0.0.1:5050"
        assert tls.ws_scheme() == "wss" and tls.wants_tls("127.0.0.1:5050")
        assert not tls.wants_tls("http://127.0.0.1:5050")  # an explicit scheme wins
        with pytest.raises(tls.TlsError, match="no certificate"):
            tls.server_context()
    finally:
        tls.configure(previous, environ={})
