"""The framework machine on a bare object and a fake clock: every row of its table, then
the sequences that matter (failover in time, failover too late, recovery by a new leader)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mesonb.master.framework_fsm import (
    TRANSITIONS,
    Action,
    Announce,
    EndStream,
    FrameworkLifecycle,
    FrameworkState,
    Refuse,
    Remove,
    RescindOffers,
    StreamClosed,
    Subscribe,
    Teardown,
    Tick,
)
from mesonb.testing.clock import FakeClock

S = FrameworkState


def machine_in(state: FrameworkState | None, clock: FakeClock) -> FrameworkLifecycle:
    """A machine brought to ``state`` by events alone (None: just made)."""
    fsm = FrameworkLifecycle("F1")
    if state is None:
        return fsm
    if state is S.INACTIVE:
        return FrameworkLifecycle.recovered("F1", clock.monotonic() + 60)
    fsm.handle(Subscribe("s1"))
    if state is S.DISCONNECTED:
        fsm.handle(StreamClosed("s1", clock.monotonic(), 60))
    elif state is S.TORN_DOWN:
        fsm.handle(Teardown("test"))
    assert fsm.state is state
    return fsm


Step = Callable[[FakeClock], object]
# Each row of TRANSITIONS: the events that take it (each one alone, from that state), and
# the actions each must give.
ROWS: dict[tuple[FrameworkState | None, FrameworkState], list[tuple[Step, list[Action]]]] = {
    (None, S.SUBSCRIBED): [(lambda c: Subscribe("s1"), [])],
    (None, S.INACTIVE): [],  # FrameworkLifecycle.recovered: see test_recovered_*
    (S.SUBSCRIBED, S.SUBSCRIBED): [
        (lambda c: Subscribe("s2"), [EndStream("Framework failed over")])],
    (S.DISCONNECTED, S.SUBSCRIBED): [(lambda c: Subscribe("s2"), [])],
    (S.INACTIVE, S.SUBSCRIBED): [(lambda c: Subscribe("s2"), [])],
    (S.SUBSCRIBED, S.DISCONNECTED): [
        (lambda c: StreamClosed("s1", c.monotonic(), 5), [RescindOffers(), Announce()])],
    (S.SUBSCRIBED, S.TORN_DOWN): [
        (lambda c: StreamClosed("s1", c.monotonic(), 0),
         [RescindOffers(), Remove("disconnected with failover_timeout 0")]),
        (lambda c: Teardown("TEARDOWN"), [Remove("TEARDOWN")])],
    (S.DISCONNECTED, S.TORN_DOWN): [
        (lambda c: Tick(c.advance(60)), [Remove("failover timeout elapsed")]),
        (lambda c: Teardown("operator"), [Remove("operator")])],
    (S.INACTIVE, S.TORN_DOWN): [
        (lambda c: Tick(c.advance(60)), [Remove("failover timeout elapsed")]),
        (lambda c: Teardown("operator"), [Remove("operator")])],
    (S.TORN_DOWN, S.TORN_DOWN): [
        (lambda c: Subscribe("s9"), [Refuse("Framework F1 has been removed")])],
}

CASES = [(row, i) for row, steps in ROWS.items() for i in range(len(steps))]


def test_the_rows_here_are_the_machines_table():
    assert set(ROWS) == set(TRANSITIONS)


@pytest.mark.parametrize(("row", "i"), CASES, ids=lambda v: str(v))
def test_every_row_of_the_table(row, i):
    clock = FakeClock()
    fsm = machine_in(row[0], clock)
    make, expected = ROWS[row][i]
    assert fsm.handle(make(clock)) == expected
    assert fsm.state is row[1]
    if row[1] is S.SUBSCRIBED:
        assert fsm.deadline is None and fsm.stream_id is not None
    if row[1] is S.TORN_DOWN:
        assert fsm.deadline is None


def test_recovered_frameworks_are_inactive_with_a_deadline():
    clock = FakeClock()
    fsm = FrameworkLifecycle.recovered("F1", clock.monotonic() + 30)
    assert (fsm.state, fsm.stream_id, fsm.deadline) == (S.INACTIVE, None, 1030.0)
    assert fsm.handle(Tick(clock.advance(29.9))) == []
    assert fsm.handle(Tick(clock.advance(0.1))) == [Remove("failover timeout elapsed")]


@pytest.mark.parametrize("state", list(S))
def test_events_that_change_nothing(state):
    """The 'unchanged' rows: an older stream closing, a tick before the deadline, and
    anything but SUBSCRIBE after the teardown."""
    clock = FakeClock()
    fsm = machine_in(state, clock)
    deadline = fsm.deadline
    assert fsm.handle(StreamClosed("an-old-stream", clock.monotonic(), 5)) == []
    assert fsm.handle(Tick(clock.advance(1))) == []
    assert (fsm.state, fsm.deadline) == (state, deadline)
    if state is S.TORN_DOWN:
        assert fsm.handle(Teardown("again")) == []
        assert fsm.handle(Tick(clock.advance(10**6))) == []
        assert fsm.state is S.TORN_DOWN


def test_failing_over_in_time_keeps_the_framework():
    clock = FakeClock()
    fsm = machine_in(S.SUBSCRIBED, clock)
    fsm.handle(StreamClosed("s1", clock.monotonic(), 10))
    assert fsm.deadline == clock.monotonic() + 10
    assert fsm.handle(Tick(clock.advance(9.9))) == []
    assert fsm.handle(Subscribe("s2")) == []  # back in time: no stream to end
    assert fsm.handle(Tick(clock.advance(100))) == []
    assert (fsm.state, fsm.stream_id) == (S.SUBSCRIBED, "s2")
    # The first stream closing late (its connection lingered) changes nothing.
    assert fsm.handle(StreamClosed("s1", clock.monotonic(), 10)) == []
    assert fsm.state is S.SUBSCRIBED


def test_a_stream_taken_over_then_closed_leaves_the_new_one_alone():
    clock = FakeClock()
    fsm = machine_in(S.SUBSCRIBED, clock)
    assert fsm.handle(Subscribe("s2")) == [EndStream("Framework failed over")]
    assert fsm.handle(StreamClosed("s1", clock.monotonic(), 0)) == []
    assert fsm.state is S.SUBSCRIBED
    assert fsm.handle(StreamClosed("s2", clock.monotonic(), 0))[-1] == Remove(
        "disconnected with failover_timeout 0")


def test_unknown_events_fail_fast():
    with pytest.raises(TypeError):
        FrameworkLifecycle("F1").handle("SUBSCRIBE")  # type: ignore[arg-type]
