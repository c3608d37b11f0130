"""The pickles of the functions executor's Outcome and LogSlice: their fields in order (a
worker's two log paths as one base) decode to the same objects as the dataclasses' own
pickles, which still decode too (an executor of an earlier version)."""

from __future__ import annotations

import pickle

import pytest

from mesonb.frameworks.functions.protocol import LogSlice, Outcome, Running

BASE = "/var/lib/mesonb/slaves/S0/frameworks/F0/executors/functions/runs/C0/logs/worker-42-1"
OUTCOMES = [
    Outcome(ok=True, value=pickle.dumps(None), size=4, duration=1.5e-5,
            stdout=LogSlice(BASE + ".stdout", 120, 0), stderr=LogSlice(BASE + ".stderr", 7, 3)),
    Outcome(ok=False, value=b"exc", traceback="Traceback ...", exc_type="ValueError: x",
            exc_parts=b"parts", frames=[("f.py", 3, "f")], duration=0.25,
            stdout=LogSlice(BASE + ".stdout", 0, 10), stderr=LogSlice(BASE + ".stderr", 0, 0)),
    Outcome(ok=True, path="/sandbox/results/t.pkl", size=10**8),  # no slices
    Outcome(ok=False, died=True, stdout=LogSlice(BASE + ".stdout", 5, 6), stderr=None),
    Outcome(ok=True, value=b"v",  # slices of files not named as a worker's pair
            stdout=LogSlice("/a/x.stdout", 1, 2), stderr=LogSlice("/b/x.stderr", 3, 4)),
    Outcome(ok=True, value=b"v", stdout=LogSlice("/a/x.log", 1, 2),
            stderr=LogSlice("/a/x.log", 3, 4)),
]


def dataclass_pickle(obj: object, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The pickle the dataclass makes without a __reduce__ of its own (field names and
    values), as executors before this one sent it."""
    with monkeypatch.context() as m:
        m.delattr(Outcome, "__reduce__")
        m.delattr(LogSlice, "__reduce__")
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_an_outcome_decodes_to_what_the_dataclass_pickle_decodes_to(
        outcome: Outcome, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = dataclass_pickle(outcome, monkeypatch)
    fast = outcome.encode()
    assert Outcome.decode(fast) == Outcome.decode(slow) == outcome
    assert len(fast) < len(slow)
    assert type(Outcome.decode(fast).stdout) is type(outcome.stdout)


def test_a_workers_log_paths_are_pickled_once() -> None:
    data = OUTCOMES[0].encode()
    assert data.count(BASE.encode()) == 1
    assert len(data) < 200 + len(BASE)


def test_running_and_log_slices_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    running = Running(LogSlice(BASE + ".stdout", 1, 2), LogSlice(BASE + ".stderr", 3, 4))
    assert Running.decode(running.encode()) == running
    assert Running.decode(dataclass_pickle(running, monkeypatch)) == running
    assert pickle.loads(pickle.dumps(running.stdout)) == running.stdout
