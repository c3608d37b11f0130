"""The master's agent machine on a bare object and a fake clock: every row of its table,
then the sequences that matter (missed pings, a failed unreachable write, draining)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mesonb.master.agent_fsm import (
    ADMITTED,
    REACHABLE,
    TRANSITIONS,
    Action,
    AdmissionFailed,
    Admit,
    Admitted,
    AgentLifecycle,
    AgentState,
    CloseLink,
    Drain,
    Event,
    Forget,
    KillTasks,
    LinkClosed,
    MarkUnreachable,
    Ping,
    PingRound,
    Pong,
    Reactivate,
    Register,
    Remove,
    RemoveAgent,
    Reoffer,
    RescindOffers,
    TellUnreachable,
    UnreachableWritten,
    WriteUnreachable,
)
from mesonb.protocol.states import Reason, TaskState
from mesonb.testing.clock import FakeClock

S = AgentState
LIMIT = 5
GONE_BY_OPERATOR = Remove("marked gone", TaskState.TASK_GONE_BY_OPERATOR,
                          Reason.REASON_AGENT_REMOVED_BY_OPERATOR)


def miss_pings(fsm: AgentLifecycle, clock: FakeClock, rounds: int) -> list[list[Action]]:
    """Ping rounds 15 s apart with no PONG in between."""
    out = []
    for _ in range(rounds):
        since = clock.monotonic()
        out.append(fsm.handle(PingRound(clock.advance(15), since, LIMIT)))
    return out


def machine_in(state: AgentState | None, clock: FakeClock) -> AgentLifecycle:
    """A machine brought to ``state`` by events alone (None: a REGISTER just arrived)."""
    fsm = AgentLifecycle("A1", clock.monotonic())
    if state is None or state is S.REGISTERING:
        return fsm
    fsm.handle(Register(clock.monotonic(), written=True))
    if state is S.DISCONNECTED:
        fsm.handle(LinkClosed())
    elif state is S.UNREACHABLE:
        miss_pings(fsm, clock, LIMIT + 1)  # the first round after registering counts none
    elif state is S.DRAINING:
        fsm.handle(Drain())
    elif state is S.GONE:
        fsm.handle(GONE_BY_OPERATOR)
    assert fsm.state is state
    return fsm


Step = Callable[[AgentLifecycle, FakeClock], list[Action]]


def register(written: bool, draining: bool = False) -> Step:
    def step(fsm: AgentLifecycle, clock: FakeClock) -> list[Action]:
        if draining:
            fsm.draining = True  # set by an earlier Drain: see test_draining_*
        return fsm.handle(Register(clock.monotonic(), written))
    return step


def event(e: Event) -> Step:
    return lambda fsm, clock: fsm.handle(e)


def unreachable(fsm: AgentLifecycle, clock: FakeClock) -> list[Action]:
    return [a for round_ in miss_pings(fsm, clock, LIMIT + 1) for a in round_
            if not isinstance(a, Ping)]


def registering_expected(frm: AgentState | None) -> list[Action]:
    return [CloseLink(), RescindOffers()] if frm in ADMITTED else [CloseLink()]


def expected_for(frm: AgentState | None, to: AgentState) -> tuple[Step, list[Action]]:
    """The event that takes a machine in ``frm`` to ``to``, and its actions."""
    if frm is None:
        return (lambda fsm, clock: []), []
    if to is S.REGISTERING:
        return register(False), registering_expected(frm)
    if to is S.REGISTERED and frm is S.REGISTERING:
        return event(Admitted()), [Admit()]
    if to is S.REGISTERED and frm is S.DRAINING:
        return event(Reactivate()), [Reoffer()]
    if to is S.REGISTERED:
        return register(True), [CloseLink(), Admit()]
    if to is S.DRAINING and frm is S.REGISTERED:
        return event(Drain()), [RescindOffers(), KillTasks()]
    if to is S.DRAINING:
        return register(True, draining=True), [CloseLink(), Admit()]
    if to is S.DISCONNECTED and frm is S.REGISTERING:
        return event(LinkClosed()), []
    if to is S.DISCONNECTED:
        return event(LinkClosed()), [RescindOffers()]
    if to is S.UNREACHABLE:
        return unreachable, [RescindOffers(), MarkUnreachable(), CloseLink(), WriteUnreachable()]
    assert to is S.GONE
    return event(GONE_BY_OPERATOR), [RescindOffers(), RemoveAgent(
        "marked gone", TaskState.TASK_GONE_BY_OPERATOR, Reason.REASON_AGENT_REMOVED_BY_OPERATOR,
        was_unreachable=frm is S.UNREACHABLE)]


@pytest.mark.parametrize("row", list(TRANSITIONS), ids=lambda r: f"{r[0]}->{r[1]}")
def test_every_row_of_the_table(row):
    frm, to = row
    clock = FakeClock()
    fsm = machine_in(frm, clock)
    step, expected = expected_for(frm, to)
    assert step(fsm, clock) == expected
    assert fsm.state is to


def test_the_table_covers_every_state():
    assert {to for _, to in TRANSITIONS} == set(S)
    assert {frm for frm, _ in TRANSITIONS} == {None, *S} - {S.GONE}


@pytest.mark.parametrize("state", [None, *S])
def test_events_that_change_nothing(state):
    clock = FakeClock()
    fsm = machine_in(state, clock)
    if state is not S.REGISTERING and state is not None:
        assert fsm.handle(Admitted()) == []
        assert fsm.handle(AdmissionFailed(new=True)) == []
    if state in (S.DISCONNECTED, S.UNREACHABLE, S.GONE):
        assert fsm.handle(LinkClosed()) == []
    assert fsm.handle(Pong(clock.monotonic())) == []
    assert fsm.handle(UnreachableWritten(True)) == ([TellUnreachable()]
                                                    if state is S.UNREACHABLE else [])
    assert fsm.state is (S.REGISTERING if state is None else state)
    if state is S.GONE:
        for e in (Register(0, True), Drain(), Reactivate(), GONE_BY_OPERATOR,
                  PingRound(10**6, 0, 1)):
            assert fsm.handle(e) == []
        assert fsm.state is S.GONE


def test_a_failed_admission_disconnects_and_forgets_a_new_agent():
    clock = FakeClock()
    fsm = machine_in(S.REGISTERING, clock)
    fsm.handle(Register(clock.monotonic(), written=False))
    assert fsm.handle(AdmissionFailed(new=True)) == [CloseLink(), Forget()]
    assert fsm.state is S.DISCONNECTED
    known = machine_in(S.DISCONNECTED, clock)
    known.handle(Register(clock.monotonic(), written=False))
    assert known.handle(AdmissionFailed(new=False)) == [CloseLink()]


@pytest.mark.parametrize("state", sorted(REACHABLE))
def test_pongs_keep_an_agent_reachable_and_silence_does_not(state):
    clock = FakeClock()
    fsm = machine_in(state, clock)
    for _ in range(3 * LIMIT):
        since = clock.monotonic()
        clock.advance(7)
        fsm.handle(Pong(clock.monotonic()))
        actions = fsm.handle(PingRound(clock.advance(8), since, LIMIT))
        assert actions == ([Ping()] if state in ADMITTED else [])
    assert fsm.state is state
    rounds = miss_pings(fsm, clock, LIMIT)
    assert fsm.state is S.UNREACHABLE
    assert all(r in ([Ping()], []) for r in rounds[:-1])
    assert MarkUnreachable() in rounds[-1]


def test_an_unreachable_mark_that_failed_to_write_is_written_at_the_next_round():
    clock = FakeClock()
    fsm = machine_in(S.UNREACHABLE, clock)
    assert miss_pings(fsm, clock, 1) == [[]]  # the write is still under way: no second one
    assert fsm.handle(UnreachableWritten(False)) == []
    assert miss_pings(fsm, clock, 1) == [[WriteUnreachable()]]
    assert miss_pings(fsm, clock, 1) == [[]]
    assert fsm.handle(UnreachableWritten(True)) == [TellUnreachable()]
    assert fsm.handle(UnreachableWritten(True)) == []  # told once
    assert miss_pings(fsm, clock, 3) == [[], [], []]


def test_recovered_unreachable_agents_need_no_write():
    fsm = AgentLifecycle.unreachable("A1")
    assert fsm.state is S.UNREACHABLE
    assert fsm.handle(PingRound(100, 0, 1)) == []
    assert fsm.handle(UnreachableWritten(True)) == []


def test_draining_survives_a_re_registration_until_reactivated():
    clock = FakeClock()
    fsm = machine_in(S.DRAINING, clock)
    assert fsm.handle(LinkClosed()) == [RescindOffers()]
    fsm.handle(Register(clock.monotonic(), written=False))
    assert fsm.handle(Admitted()) == [Admit()]
    assert fsm.state is S.DRAINING
    assert fsm.handle(Reactivate()) == [Reoffer()]
    assert fsm.state is S.REGISTERED and not fsm.draining
    # A drain asked of a disconnected agent holds once it is back.
    fsm.handle(LinkClosed())
    assert fsm.handle(Drain()) == []
    assert fsm.handle(Register(clock.monotonic(), written=True)) == [CloseLink(), Admit()]
    assert fsm.state is S.DRAINING


def test_registering_resets_the_missed_pings():
    clock = FakeClock()
    fsm = machine_in(S.REGISTERED, clock)
    miss_pings(fsm, clock, LIMIT - 1)
    fsm.handle(Register(clock.monotonic(), written=True))
    assert fsm.pings_missed == 0
    miss_pings(fsm, clock, LIMIT - 1)
    assert fsm.state is S.REGISTERED


def test_unknown_events_fail_fast():
    with pytest.raises(TypeError):
        AgentLifecycle("A1").handle("PONG")  # type: ignore[arg-type]
