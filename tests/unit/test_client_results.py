"""futures.results (what Cluster.gather returns) gives what ``[f.result(timeout) for f in
futures]`` gives: the values in order, or the exception of the first future in order
that failed, was cancelled or timed out, whatever order the futures finish in."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any

import pytest

from mesonb.client.futures import Future, results


class FakeCluster:
    def _status(self, fut: Any, timeout: float) -> str:
        return "pending: a test"


def later(seconds: float, fn: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), fn(*args)), daemon=True)
    thread.start()
    return thread


def test_values_in_order_whatever_order_they_finish_in() -> None:
    futs = [concurrent.futures.Future() for _ in range(50)]
    futs[0].set_result(0)  # some done before, the others from another thread, backwards
    threads = [later(0.001 * (50 - i), futs[i].set_result, i) for i in range(1, 50)]
    assert results(futs) == list(range(50))
    assert results(futs, timeout=5) == list(range(50))
    for thread in threads:
        thread.join()


def test_the_first_failure_in_order_is_raised_once_those_before_it_are_done() -> None:
    futs = [concurrent.futures.Future() for _ in range(4)]
    futs[3].set_exception(KeyError("late one"))  # fails first, but comes last
    later(0.05, futs[2].set_exception, ValueError("first in order"))
    later(0.1, futs[0].set_result, 0)
    later(0.1, futs[1].set_result, 1)
    with pytest.raises(ValueError, match="first in order"):
        results(futs)


def test_a_failure_does_not_wait_for_the_futures_after_it() -> None:
    futs = [concurrent.futures.Future() for _ in range(3)]  # the last never finishes
    later(0.05, futs[0].set_result, 0)
    later(0.05, futs[1].set_exception, RuntimeError("boom"))
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="boom"):
        results(futs)
    assert time.monotonic() - started < 5
    cancelled = [concurrent.futures.Future(), concurrent.futures.Future()]
    later(0.05, cancelled[0].cancel)
    with pytest.raises(concurrent.futures.CancelledError):
        results(cancelled)


def test_each_future_gets_the_timeout_from_when_the_one_before_it_was_done() -> None:
    futs = [concurrent.futures.Future() for _ in range(3)]
    later(0.6, futs[0].set_result, 0)  # each within 1 s of the one before: no timeout,
    later(1.2, futs[1].set_result, 1)  # though the last comes after 1.8 s
    later(1.8, futs[2].set_result, 2)
    assert results(futs, timeout=1.0) == [0, 1, 2]
    stuck = [Future(FakeCluster(), "f-1", "f"), Future(FakeCluster(), "f-2", "stuck")]
    stuck[0].set_result("a")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"stuck \(f-2\) did not finish within 0.2 s; "
                                           "pending: a test"):
        results(stuck, timeout=0.2)
    assert 0.15 < time.monotonic() - started < 5
    assert results([], timeout=1) == []
