"""The contender state machine, on plain events and a fake clock (no ZooKeeper)."""

from mesonb.master.election import (
    TRANSITIONS,
    Abort,
    Contend,
    Created,
    Election,
    Follow,
    Lead,
    Membership,
    Reconnected,
    SessionLost,
    State,
    Suspended,
    Tick,
)

A, B = "json.info_0000000001", "json.info_0000000002"


def test_lowest_leads_after_created_and_membership_in_either_order():
    e = Election(10)
    assert e.handle(Created(A)) == []
    assert e.handle(Membership((B, A), None)) == [Lead()]
    assert e.state is State.LEADING
    e2 = Election(10)
    assert e2.handle(Membership((A,), None)) == []
    assert e2.handle(Created(A)) == [Lead()]


def test_standby_follows_then_leads_when_leader_leaves():
    e = Election(10)
    e.handle(Created(B))
    assert e.handle(Membership((A, B), "10.0.0.1:5050")) == [Follow("10.0.0.1:5050")]
    assert e.state is State.STANDBY
    assert e.handle(Membership((A, B, "json.info_0000000009"), "10.0.0.1:5050")) == []
    assert e.handle(Membership((B,), None)) == [Lead()]
    assert e.state is State.LEADING


def test_non_master_children_are_ignored():
    e = Election(10)
    e.handle(Created(B))
    assert e.handle(Membership(("log_replicas", "agents", B), None)) == [Lead()]


def test_leader_aborts_on_session_loss_or_vanished_znode():
    e = Election(10)
    e.handle(Created(A))
    e.handle(Membership((A,), None))
    assert e.handle(SessionLost(5.0)) == [Abort("ZooKeeper session expired")]
    assert e.state is State.ABORTED
    assert e.handle(Membership((A,), None)) == []  # terminal
    e = Election(10)
    e.handle(Created(A))
    e.handle(Membership((A,), None))
    [action] = e.handle(Membership((B,), "10.0.0.2:5050"))
    assert isinstance(action, Abort)


def test_leader_keeps_leading_while_suspended_until_the_session_timeout():
    e = Election(10)
    e.handle(Created(A))
    e.handle(Membership((A,), None))
    assert e.handle(Suspended(100.0)) == []
    assert e.handle(Tick(109.9)) == []
    assert e.handle(Reconnected(105.0)) == []  # back in time: the timer is cancelled
    assert e.handle(Tick(200.0)) == []
    e.handle(Suspended(300.0))
    [action] = e.handle(Tick(310.0))
    assert isinstance(action, Abort) and e.state is State.ABORTED


def test_standby_losing_its_session_contends_again_after_reconnecting():
    e = Election(10)
    e.handle(Created(B))
    e.handle(Membership((A, B), "10.0.0.1:5050"))
    assert e.handle(SessionLost(1.0)) == [Follow(None)]
    assert e.state is State.CONTENDING and e.node is None
    assert e.handle(Reconnected(2.0)) == [Contend()]
    assert e.handle(Reconnected(3.0)) == []
    e.handle(Membership((A, "json.info_0000000003"), "10.0.0.1:5050"))
    assert e.handle(Created("json.info_0000000003")) == []
    assert e.state is State.STANDBY and e.leader == "10.0.0.1:5050"


def test_every_transition_is_in_the_table():
    assert all(isinstance(why, str) for why in TRANSITIONS.values())
    assert (State.LEADING, State.STANDBY) not in TRANSITIONS  # leaders abort, never demote
