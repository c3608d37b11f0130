"""The agent's status update manager, driven on a fake clock (no sockets, no sleeps)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesonb.agent.status_updates import (
    Acknowledged,
    Checkpoint,
    Forward,
    StatusUpdateManager,
    StreamClosed,
    ack_record,
)
from mesonb.protocol.mesos import TaskStatus
from mesonb.protocol.states import TaskState
from mesonb.testing.clock import FakeClock

RUNNING = TaskState.TASK_RUNNING
FINISHED = TaskState.TASK_FINISHED
STARTING = TaskState.TASK_STARTING


def status(state: TaskState, task_id: str = "t1") -> TaskStatus:
    return TaskStatus(task_id=task_id, state=state, uuid=uuid.uuid4().bytes)


def kinds(actions: list) -> list[str]:
    return [type(a).__name__ for a in actions]


def forwarded(actions: list) -> list[TaskStatus]:
    return [a.status for a in actions if isinstance(a, Forward)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manager(clock: FakeClock) -> StatusUpdateManager:
    m = StatusUpdateManager(retry_min=10, retry_max=600)
    assert m.resume(clock.monotonic()) == []
    return m


def test_only_the_head_is_in_flight_and_ack_sends_the_next(
    manager: StatusUpdateManager, clock: FakeClock
) -> None:
    s1, s2, s3 = status(STARTING), status(RUNNING), status(FINISHED)
    first = manager.update("fw", s1, clock.monotonic())
    assert forwarded(first) == [s1]
    assert first[0].latest_state is STARTING
    assert manager.update("fw", s2, clock.monotonic()) == []  # queued behind the head
    assert manager.update("fw", s3, clock.monotonic()) == []
    assert manager.pending("fw", "t1") == [s1, s2, s3]

    after = manager.acknowledge("fw", "t1", s1.uuid, clock.monotonic())
    assert kinds(after) == ["Acknowledged", "Forward"]
    assert after[0].status is s1
    assert after[1].status is s2
    assert after[1].latest_state is FINISHED  # the task's latest known state
    after = manager.acknowledge("fw", "t1", s2.uuid, clock.monotonic())
    assert forwarded(after) == [s3]
    closed = manager.acknowledge("fw", "t1", s3.uuid, clock.monotonic())
    assert kinds(closed) == ["Acknowledged", "StreamClosed"]
    assert closed[-1] == StreamClosed("fw", "t1", FINISHED)
    assert not manager.has_stream("fw", "t1")
    assert manager.next_deadline() is None


def test_retries_back_off_from_min_doubling_to_max(
    manager: StatusUpdateManager, clock: FakeClock
) -> None:
    s1 = status(RUNNING)
    manager.update("fw", s1, clock.monotonic())
    start = clock.monotonic()
    sent_at = []
    while clock.monotonic() - start < 3000:
        deadline = manager.next_deadline()
        assert deadline is not None
        assert manager.tick(deadline - 0.001) == []  # nothing before the deadline
        clock.advance(deadline - clock.monotonic())
        actions = manager.tick(clock.monotonic())
        assert forwarded(actions) == [s1]
        sent_at.append(clock.monotonic() - start)
    gaps = [b - a for a, b in zip([0.0, *sent_at], sent_at, strict=False)]
    assert gaps[:7] == [10, 20, 40, 80, 160, 320, 600]
    assert set(gaps[7:]) == {600}


def test_ack_resets_the_interval_for_the_next_update(
    manager: StatusUpdateManager, clock: FakeClock
) -> None:
    s1, s2 = status(STARTING), status(RUNNING)
    manager.update("fw", s1, clock.monotonic())
    manager.update("fw", s2, clock.monotonic())
    for _ in range(3):
        clock.advance(manager.next_deadline() - clock.monotonic())
        manager.tick(clock.monotonic())
    manager.acknowledge("fw", "t1", s1.uuid, clock.monotonic())
    assert manager.next_deadline() == clock.monotonic() + 10


def test_duplicates_and_unexpected_acks_change_nothing(
    manager: StatusUpdateManager, clock: FakeClock
) -> None:
    s1, s2 = status(STARTING), status(RUNNING)
    manager.update("fw", s1, clock.monotonic())
    manager.update("fw", s2, clock.monotonic())
    dup = manager.update("fw", s1, clock.monotonic())
    assert kinds(dup) == ["Dropped"] and "duplicate" in dup[0].why
    assert manager.seen("fw", "t1", s1.uuid)
    # an ack for the queued (not head) update, for an unknown task, and a second ack
    assert kinds(manager.acknowledge("fw", "t1", s2.uuid, clock.monotonic())) == ["Dropped"]
    assert kinds(manager.acknowledge("fw", "nope", s1.uuid, clock.monotonic())) == ["Dropped"]
    assert kinds(manager.acknowledge("other", "t1", s1.uuid, clock.monotonic())) == ["Dropped"]
    assert manager.pending("fw", "t1") == [s1, s2]
    manager.acknowledge("fw", "t1", s1.uuid, clock.monotonic())
    again = manager.acknowledge("fw", "t1", s1.uuid, clock.monotonic())
    assert kinds(again) == ["Dropped"]
    assert manager.pending("fw", "t1") == [s2]


def test_paused_until_resumed_then_every_head_is_sent_at_once(clock: FakeClock) -> None:
    m = StatusUpdateManager(retry_min=10, retry_max=600)
    a, b = status(RUNNING, "a"), status(RUNNING, "b")
    assert m.update("fw", a, clock.monotonic()) == []  # not registered yet
    assert m.update("fw", b, clock.monotonic()) == []
    assert m.next_deadline() is None
    clock.advance(100)
    assert m.tick(clock.monotonic()) == []
    resumed = m.resume(clock.monotonic())
    assert {s.task_id for s in forwarded(resumed)} == {"a", "b"}
    assert m.next_deadline() == clock.monotonic() + 10
    # A disconnection pauses; the reconnection re-sends at once with the minimum interval.
    for _ in range(3):
        clock.advance(m.next_deadline() - clock.monotonic())
        m.tick(clock.monotonic())
    m.pause()
    assert m.next_deadline() is None
    clock.advance(1)
    assert len(forwarded(m.resume(clock.monotonic()))) == 2
    assert m.next_deadline() == clock.monotonic() + 10


def test_checkpointed_streams_emit_journal_records(
    manager: StatusUpdateManager, clock: FakeClock
) -> None:
    s1 = status(FINISHED)
    actions = manager.update("fw", s1, clock.monotonic(), checkpoint=True)
    assert kinds(actions) == ["Checkpoint", "Forward"]
    record = actions[0].record
    assert record["type"] == "UPDATE"
    assert record["update"]["status"]["state"] == "TASK_FINISHED"
    assert record["update"]["framework_id"] == {"value": "fw"}
    acked = manager.acknowledge("fw", "t1", s1.uuid, clock.monotonic())
    assert acked[0] == Checkpoint("fw", "t1", ack_record(s1.uuid))
    assert kinds(manager.update("fw", status(RUNNING, "t2"), clock.monotonic())) == ["Forward"]


def test_cleanup_forgets_a_framework(manager: StatusUpdateManager, clock: FakeClock) -> None:
    manager.update("fw", status(RUNNING, "a"), clock.monotonic())
    manager.update("other", status(RUNNING, "b"), clock.monotonic())
    manager.cleanup("fw")
    assert [fw for fw, _ in manager.in_flight()] == ["other"]


def test_update_needs_a_uuid(manager: StatusUpdateManager) -> None:
    with pytest.raises(ValueError):
        manager.update("fw", TaskStatus(task_id="t", state=RUNNING), 0.0)
    with pytest.raises(ValueError):
        StatusUpdateManager(retry_min=0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["update", "ack", "ack-wrong", "tick", "pause",
                                           "resume"]),
                          st.floats(min_value=0, max_value=700)), max_size=60))
def test_at_most_one_update_per_task_in_flight_and_order_kept(steps: list) -> None:
    """Whatever happens, only the head is ever forwarded and heads go out in order."""
    clock = FakeClock()
    m = StatusUpdateManager(retry_min=10, retry_max=600)
    m.resume(clock.monotonic())
    sent: list[TaskStatus] = []
    made: list[TaskStatus] = []
    for op, dt in steps:
        clock.advance(dt)
        now = clock.monotonic()
        if op == "update":
            s = status(RUNNING)
            made.append(s)
            actions = m.update("fw", s, now)
        elif op in ("ack", "ack-wrong"):
            pending = m.pending("fw", "t1")
            uuid_ = pending[0].uuid if pending and op == "ack" else b"nope"
            actions = m.acknowledge("fw", "t1", uuid_, now)
        elif op == "tick":
            actions = m.tick(now)
        elif op == "pause":
            actions = m.pause()
        else:
            actions = m.resume(now)
        for a in actions:
            if isinstance(a, Forward):
                assert a.status is m.pending("fw", "t1")[0]
                sent.append(a.status)
            if op == "update":  # a new update never acknowledges or closes anything
                assert not isinstance(a, (Acknowledged, StreamClosed))
    # forwarded statuses appear in creation order (with repeats for retries)
    order = [made.index(s) for s in sent]
    assert order == sorted(order)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["update", "ack", "tick", "pause", "resume"]),
                          st.integers(0, 4), st.floats(0, 30)), max_size=60))
def test_next_deadline_and_tick_follow_every_stream(steps):
    """The retry deadline kept in a heap is always the earliest due head, and tick re-sends
    exactly the heads that are due (checked against a scan of every stream)."""
    m = StatusUpdateManager(retry_min=1.0, retry_max=8.0)
    now = 0.0
    for kind, task, dt in steps:
        now += dt
        task_id = f"t{task}"
        if kind == "update":
            m.update("fw", status(RUNNING, task_id), now)
        elif kind == "ack" and m.pending("fw", task_id):
            m.acknowledge("fw", task_id, m.pending("fw", task_id)[0].uuid, now)
        elif kind == "tick":
            due = {k[1] for k, s in m._streams.items()
                   if s.head is not None and s.due is not None and s.due <= now}
            forwarded = {a.status.task_id for a in m.tick(now) if isinstance(a, Forward)}
            assert forwarded == (set() if m.paused else due)
        elif kind == "pause":
            m.pause()
        elif kind == "resume":
            m.resume(now)
        dues = [s.due for s in m._streams.values() if s.head is not None and s.due is not None]
        expected = None if m.paused or not dues else min(dues)
        assert m.next_deadline() == expected
