"""A client future settled quietly (done at once, waiters told when the loop's turn
ends) and its result fast path behave as a future set the plain way."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from mesonb.client.calls import _slug, slug
from mesonb.client.futures import Future, results
from mesonb.testing.processes import wait_for


class _NoCluster:
    def _cancel(self, fut: Future) -> None:
        pass

    def _status(self, fut: Future, timeout: float) -> str:
        return "pending: in a test"


def _pair() -> tuple[Future, Future]:
    """Two fresh futures: one to settle the plain way, one quietly."""
    return Future(_NoCluster(), "k-1", "f"), Future(_NoCluster(), "k-2", "f")


OUTCOMES = [(3, None), (None, None), ([1, 2], None), (None, ValueError("bad")),
            (None, KeyError("k"))]


@pytest.mark.parametrize(("value", "exc"), OUTCOMES)
def test_quiet_then_announced_reads_as_set_the_plain_way(value, exc):
    plain, quiet = _pair()
    plain._settle(value, exc)
    assert quiet._settle_quiet(value, exc)
    quiet._announce()
    for fut in (plain, quiet):
        assert fut.done() and not fut.cancelled() and not fut.cancel()
        assert fut.phase == plain.phase
    assert quiet.exception() is plain.exception()
    if exc is None:
        assert quiet.result() == plain.result() == value  # the fast path: no lock
        assert quiet.result(0) is plain.result(0)
    else:
        with pytest.raises(type(exc)) as slow:
            plain.result()
        with pytest.raises(type(exc)) as fast:
            quiet.result()
        assert fast.value is slow.value is exc


def test_the_fast_path_is_not_taken_before_an_outcome_or_after_a_cancel():
    fut, _ = _pair()
    with pytest.raises(TimeoutError):
        fut.result(0)
    assert fut.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        fut.result()
    assert not fut._settle_quiet(1)  # cancelled: nothing set, nothing to announce
    assert fut.cancelled()


def test_quiet_is_done_at_once_and_wakes_nobody_until_announced():
    fut, _ = _pair()
    called: list[Future] = []
    fut.add_done_callback(called.append)
    got: list[object] = []
    blocked = threading.Event()

    def waiter() -> None:
        blocked.set()
        got.append(fut.result(60))

    thread = threading.Thread(target=waiter)
    thread.start()
    blocked.wait(10)
    # the thread is blocked in result() (or about to block: it finds the value set)
    assert fut._settle_quiet(7)
    assert fut.done() and fut.result() == 7 and not fut.cancel()
    assert called == []  # callbacks wait for the announcement
    fut._announce()
    thread.join(10)
    assert got == [7] and called == [fut]
    fut._announce()  # a second announcement tells nobody again
    assert called == [fut]
    late: list[Future] = []
    fut.add_done_callback(late.append)  # after it: at once, as for any done future
    assert late == [fut]


def test_a_callback_added_between_setting_and_announcing_runs_once():
    fut, _ = _pair()
    calls: list[Future] = []
    assert fut._settle_quiet(1)
    fut.add_done_callback(calls.append)  # done: run at once
    assert calls == [fut]
    fut._announce()
    assert calls == [fut]


def test_as_completed_and_wait_met_between_setting_and_announcing():
    """A waiter installed after the quiet set sees the future done and is not told
    again (as_completed would yield it twice); one installed before is told."""
    early, late = _pair()
    seen: list[Future] = []
    thread = threading.Thread(target=lambda: (seen.extend(
        concurrent.futures.as_completed([early, late], timeout=30))))
    thread.start()
    wait_for(lambda: early._waiters and late._waiters, what="as_completed's waiter")
    assert early._settle_quiet("e")
    # a second as_completed over both, begun now, sees `early` done already
    second = concurrent.futures.as_completed([early, late], timeout=30)
    assert next(second) is early
    assert late._settle_quiet("l")
    early._announce()
    late._announce()
    assert list(second) == [late]
    thread.join(30)
    assert sorted(f.result() for f in seen) == ["e", "l"] and len(seen) == 2
    done, not_done = concurrent.futures.wait([early, late], timeout=0)
    assert done == {early, late} and not not_done


def test_wait_for_all_is_woken_by_the_announcement():
    futs = list(_pair())
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(
        concurrent.futures.wait(futs, timeout=30)))
    thread.start()
    wait_for(lambda: all(f._waiters for f in futs), what="wait()'s waiter")
    for i, fut in enumerate(futs):
        assert not result  # not woken by the quiet set
        assert fut._settle_quiet(i)
    futs[0]._announce()
    futs[1]._announce()
    thread.join(30)
    done, not_done = result[0]  # type: ignore[misc]
    assert done == set(futs) and not not_done


def test_done_without_the_lock_answers_as_concurrent_futures_does():
    plain = concurrent.futures.Future.done
    fresh, finished = _pair()
    cancelled, failed = _pair()
    finished._settle(1)
    failed._settle(exc=ValueError("x"))
    assert cancelled.cancel()
    quiet, _ = _pair()
    assert quiet._settle_quiet(2)
    for fut in (fresh, finished, cancelled, failed, quiet):
        assert fut.done() is plain(fut)
    assert not fresh.done() and quiet.done()


def _outcome(futs: list[concurrent.futures.Future]) -> tuple[str, object]:
    try:
        return "values", results(futs, timeout=5)
    except BaseException as exc:
        return "raised", exc


def _slow(futs: list[concurrent.futures.Future]) -> tuple[str, object]:
    try:
        return "values", [f.result(5) for f in futs]
    except BaseException as exc:
        return "raised", exc


def test_results_of_quietly_settled_and_foreign_futures_are_those_of_result_each():
    """results() (gather) reads done futures without their locks: the same values, or
    the same exception, as f.result() of each in turn, for ours (set quietly, announced
    later from the loop's thread) and plain concurrent futures, failed or cancelled."""
    error = ValueError("bad")
    cases: list[list[tuple[str, object]]] = [
        [("ok", 1), ("ok", 2), ("foreign", 3)],
        [("ok", 1), ("fail", error), ("ok", 3)],
        [("ok", 1), ("foreign-cancelled", None), ("ok", 3)],
        [("cancel", None), ("ok", 2)],
    ]
    for case in cases:
        futs: list[concurrent.futures.Future] = []
        for kind, value in case:
            if kind.startswith("foreign"):
                fut: concurrent.futures.Future = concurrent.futures.Future()
                if kind == "foreign":
                    fut.set_result(value)
                else:
                    fut.cancel()
            else:
                fut = Future(_NoCluster(), f"k-{len(futs)}", "f")
                if kind == "cancel":
                    fut.cancel()
                else:
                    fut._settle_quiet(*((value, None) if kind == "ok" else (None, value)))
            futs.append(fut)
        announcer = threading.Thread(target=lambda fs=futs: [
            f._announce() for f in fs if isinstance(f, Future)])
        seen: list[tuple[str, object]] = []
        fast_pending = threading.Thread(target=lambda fs=futs, out=seen: out.append(
            _outcome(fs)))
        fast_pending.start()
        announcer.start()
        fast_pending.join(10)
        announcer.join(10)
        (fast,) = seen
        slow = _slow(futs)
        assert fast[0] == slow[0]
        if fast[0] == "values":
            assert fast[1] == slow[1]
        else:
            assert type(fast[1]) is type(slow[1]) and str(fast[1]) == str(slow[1])


def test_a_kept_slug_is_the_one_made_afresh():
    for name in ["noop", "my func", "ünïcode", "a" * 60, "--x--", "", "noop"]:
        assert slug(name) == _slug(name)
        assert slug(name) == _slug(name)  # kept
