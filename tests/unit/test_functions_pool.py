"""The functions executor's worker pool, with real forked workers (no agent, no master)."""

from __future__ import annotations

import asyncio
import os
import pickle
import time
from pathlib import Path

import cloudpickle
import pytest

from mesonb.frameworks.functions import worker as worker_mod
from mesonb.frameworks.functions.protocol import Call, Outcome
from mesonb.frameworks.functions.worker import Pool, WorkerDied


def call(fn, *args) -> bytes:
    return Call(call=cloudpickle.dumps((fn, args, {}))).encode()


def read(part) -> str:
    with open(part.path, "rb") as f:
        f.seek(part.offset)
        return f.read(part.length).decode()


@pytest.fixture
async def pool(tmp_path: Path):
    pool = Pool.prefork(2, str(tmp_path))
    yield pool
    pool.close()


async def test_calls_run_and_return_their_output_slices(pool: Pool):
    first = await pool.run("t1", call(print, "one"))
    second = await pool.run("t2", call(print, "two"))
    assert first.ok and second.ok
    assert read(first.stdout) == "one\n" and read(second.stdout) == "two\n"
    # the most recently used worker serves the next call: one log file for both
    assert first.stdout.path == second.stdout.path
    assert len(list((Path(pool.sandbox) / "logs").iterdir())) == 2  # its stdout and stderr


def talk(out: str, err: str) -> int:
    import sys

    print(out)
    print(err, file=sys.stderr)
    return 7


async def test_the_outcome_a_worker_sends_is_what_the_parent_reads_of_its_logs(pool: Pool):
    # The worker measures the call's log slices itself and the parent passes its encoded
    # outcome on as it is: the slices are those the parent would measure (its
    # Worker.log_slices, as for TASK_RUNNING), and the bytes decode to the same outcome.
    for i, (out, err) in enumerate([("one", "e1"), ("", ""), ("three" * 50, "e3")]):
        finished = await pool.submit(f"t{i}", call(talk, out, err))
        outcome = finished.outcome()
        worker = pool.idle[-1]  # the one that ran it; its log_starts are the call's
        assert (outcome.stdout, outcome.stderr) == worker.log_slices()
        assert read(outcome.stdout) == out + "\n" and read(outcome.stderr) == err + "\n"
        assert finished.ok and outcome.ok and pickle.loads(outcome.value) == 7
        assert Outcome.decode(outcome.encode()) == outcome
    failed = await pool.submit("raises", call(int, "x"))
    assert not failed.ok and "ValueError" in failed.outcome().exc_type
    assert (failed.outcome().stdout, failed.outcome().stderr) == pool.idle[-1].log_slices()


async def test_a_burst_of_short_calls_does_not_fork_a_worker_per_call(pool: Pool):
    pids = {w.pid for w in pool.idle}
    outcomes = await asyncio.gather(*(pool.run(f"t{i}", call(abs, -i)) for i in range(200)))
    assert all(o.ok for o in outcomes)
    workers = {w.pid for w in pool.idle}
    # The calls waited for the two workers, which kept coming free: no fork per call
    # (a few at most, should a worker be slow to start on a loaded machine).
    assert len(workers) <= 6
    assert pids <= workers


async def test_blocking_calls_get_workers_of_their_own(pool: Pool):
    started = time.monotonic()
    outcomes = await asyncio.gather(*(pool.run(f"s{i}", call(time.sleep, 0.5))
                                      for i in range(6)))
    assert all(o.ok for o in outcomes)
    assert time.monotonic() - started < 1.4  # side by side, not two at a time (1.5 s)
    assert len(pool.idle) >= 6


async def test_killing_a_waiting_call_fails_only_that_call(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(worker_mod, "GROW_AFTER", 5.0)  # keep the third call waiting
    pool = Pool.prefork(2, str(tmp_path))
    try:
        running = [asyncio.ensure_future(pool.run(f"r{i}", call(time.sleep, 0.3)))
                   for i in range(2)]
        waiting = asyncio.ensure_future(pool.run("w", call(abs, -1)))
        await asyncio.sleep(0)
        assert "w" in pool.waiting
        assert pool.kill("w", "Killed by the framework")
        with pytest.raises(WorkerDied, match="Killed by the framework") as info:
            await waiting
        assert info.value.stdout is None  # it never started
        assert all(o.ok for o in await asyncio.gather(*running))
    finally:
        pool.close()


async def test_a_killed_worker_reports_its_output_and_is_replaced(pool: Pool):
    def talk_then_hang():
        print("before the kill", flush=True)
        time.sleep(30)

    run = asyncio.ensure_future(pool.run("k", call(talk_then_hang)))
    deadline = time.monotonic() + 10
    while "k" not in pool.busy or not os.path.exists(pool.busy["k"].logs[0]) or \
            os.path.getsize(pool.busy["k"].logs[0]) == 0:
        assert time.monotonic() < deadline, "the call never printed"
        await asyncio.sleep(0.01)
    pool.kill("k", "Memory limit exceeded", "REASON_CONTAINER_LIMITATION_MEMORY")
    with pytest.raises(WorkerDied) as info:
        await run
    assert info.value.reason == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert read(info.value.stdout) == "before the kill\n"
    assert (await pool.run("after", call(abs, -7))).ok


async def test_log_files_rotate_when_big(pool: Pool, monkeypatch):
    monkeypatch.setattr(worker_mod, "LOG_ROTATE", 10)
    first = await pool.run("a", call(print, "x" * 20))
    second = await pool.run("b", call(print, "y"))
    assert first.stdout.path != second.stdout.path
    assert read(second.stdout) == "y\n" and second.stdout.offset == 0


def keep_80_mb():
    import builtins

    builtins._mesonb_test_kept = b"k" * (80 * 2**20)  # what a call leaves: a cache, imports
    return os.getpid()


def pid_of(outcome) -> int:
    assert outcome.ok
    return pickle.loads(outcome.value)


async def test_a_worker_grown_by_earlier_calls_is_not_handed_a_small_call(pool: Pool,
                                                                         monkeypatch):
    # limits above a fresh worker's size (forks of pytest, which may be big)
    base = min(w.rss() for w in pool.idle) / 2**20
    bloated = pid_of(await pool.run("keep", call(keep_80_mb), mem_mb=base + 1024))
    # a call with room for the leftovers keeps the warm worker
    assert pid_of(await pool.run("big", call(os.getpid), mem_mb=base + 1024)) == bloated
    # one that would be charged 80 MB more than a fresh worker, with 64 MB to spare above
    # that, gets another worker; the bloated one retires
    small = await pool.run("small", call(os.getpid), mem_mb=base + 64)
    assert pid_of(small) != bloated
    deadline = time.monotonic() + 10
    while any(w.pid == bloated for w in [*pool.idle, *pool.busy.values()]) or \
            _alive(bloated):
        assert time.monotonic() < deadline, "the bloated worker was not retired"
        await asyncio.sleep(0.01)
    # with no idle worker that fits, a new one is forked for the call
    old = {w.pid for w in pool.idle}
    for worker in pool.idle:
        worker.calls = max(worker.calls, 1)
    monkeypatch.setattr(pool, "_fits", lambda worker, mem_mb: not worker.calls)
    assert pid_of(await pool.run("fresh", call(os.getpid), mem_mb=64)) not in old


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"


def spawn_hog(pid_file: str) -> None:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c",
                              "import time; b = b'x' * (300 * 2**20); time.sleep(60)"])
    with open(pid_file, "w") as f:
        f.write(str(child.pid))
    child.wait()


async def test_memory_of_a_call_counts_its_child_processes(pool: Pool, tmp_path: Path):
    pid_file = tmp_path / "child.pid"
    limit = max(w.rss() for w in pool.idle) / 2**20 + 100  # 100 MB above the worker's size
    with pytest.raises(WorkerDied) as info:
        await asyncio.wait_for(pool.run("hog", call(spawn_hog, str(pid_file)), mem_mb=limit),
                               30)
    assert info.value.reason == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert "child process" in str(info.value)
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, "the call's child outlived the kill"
        await asyncio.sleep(0.01)


def shout(i: int) -> int:
    import sys

    print(f"out {i}")
    print(f"err {i}", file=sys.stderr)
    return i


async def test_calls_offered_to_busy_workers_run_as_calls_handed_to_free_ones(
        tmp_path: Path, monkeypatch):
    # A burst: most calls are offered to busy workers (taken straight after their call).
    # Each outcome, log slices included, is what the same call gives when every call
    # waits for a free worker (no offers): its own output, and the parent's slices.
    offers = []
    offer = Pool._offer
    monkeypatch.setattr(Pool, "_offer", lambda pool, *a: (offers.append(a[1]),
                                                          offer(pool, *a))[1])
    seen = {}
    for depth in (worker_mod.OFFERS, 0):
        monkeypatch.setattr(worker_mod, "OFFERS", depth)
        pool = Pool.prefork(2, str(tmp_path / f"d{depth}"))
        try:
            outcomes = await asyncio.gather(*(pool.run(f"t{i}", call(shout, i))
                                              for i in range(60)))
        finally:
            pool.close()
        seen[depth] = [(pickle.loads(o.value), read(o.stdout), read(o.stderr))
                       for o in outcomes]
    assert offers  # (only with OFFERS > 0)
    assert seen[worker_mod.OFFERS] == seen[0] == [
        (i, f"out {i}\n", f"err {i}\n") for i in range(60)]


async def test_an_offered_call_is_taken_back_by_a_worker_that_comes_free(
        pool: Pool, monkeypatch):
    monkeypatch.setattr(worker_mod, "GROW_AFTER", 5.0)  # no new worker: only the two
    slow = asyncio.ensure_future(pool.run("slow", call(time.sleep, 3)))
    await asyncio.sleep(0.05)
    short = asyncio.ensure_future(pool.run("short", call(time.sleep, 0.2)))
    await asyncio.sleep(0)
    queued = asyncio.ensure_future(pool.run("queued", call(abs, -3)))
    await asyncio.sleep(0)
    assert "queued" in pool.waiting and pool.waiting["queued"].offered_to is not None
    started = time.monotonic()
    assert pickle.loads((await queued).value) == 3
    assert time.monotonic() - started < 2  # not behind the slow call, whichever had it
    assert not slow.done()
    await short
    pool.kill("slow")
    with pytest.raises(WorkerDied):
        await slow


def touch(path: str) -> None:
    Path(path).touch()


async def test_a_killed_offered_call_never_runs(pool: Pool, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(worker_mod, "GROW_AFTER", 5.0)
    running = [asyncio.ensure_future(pool.run(f"r{i}", call(time.sleep, 0.3)))
               for i in range(2)]
    await asyncio.sleep(0)
    marker = tmp_path / "ran"
    offered = asyncio.ensure_future(pool.run("o", call(touch, str(marker))))
    await asyncio.sleep(0)
    assert pool.waiting["o"].offered_to is not None
    assert pool.kill("o", "Killed by the framework")
    with pytest.raises(WorkerDied, match="Killed by the framework"):
        await offered
    assert all(o.ok for o in await asyncio.gather(*running))
    assert (await pool.run("after", call(abs, -1))).ok  # the workers read past its frame
    assert not marker.exists()


async def test_calls_offered_to_a_worker_that_dies_run_on_another(pool: Pool, monkeypatch):
    monkeypatch.setattr(worker_mod, "GROW_AFTER", 5.0)
    dying = asyncio.ensure_future(pool.run("dies", call(os._exit, 3)))
    busy = asyncio.ensure_future(pool.run("busy", call(time.sleep, 0.3)))
    rest = [asyncio.ensure_future(pool.run(f"n{i}", call(abs, -i))) for i in range(6)]
    with pytest.raises(WorkerDied, match="exit status 3"):
        await dying
    assert [pickle.loads(o.value) for o in await asyncio.gather(*rest)] == list(range(6))
    assert (await busy).ok


def keep_80_mb_slowly() -> int:
    time.sleep(0.3)  # (the next call is offered to this worker meanwhile)
    return keep_80_mb()


async def test_a_worker_that_grows_while_a_call_is_offered_to_it_declines_the_call(
        pool: Pool, monkeypatch):
    # As a free worker is not handed a call its leftovers would not fit (the test above),
    # an offered call is not run by a worker that grew meanwhile: the worker retires and
    # the call, never started, runs on another.
    monkeypatch.setattr(worker_mod, "GROW_AFTER", 5.0)
    base = min(w.rss() for w in pool.idle) / 2**20
    grows = asyncio.ensure_future(pool.run("grows", call(keep_80_mb_slowly),
                                           mem_mb=base + 1024))
    await asyncio.sleep(0)
    other = asyncio.ensure_future(pool.run("other", call(time.sleep, 1.0)))
    await asyncio.sleep(0.05)
    bloated = pool.busy["grows"].pid
    small = asyncio.ensure_future(pool.run("small", call(os.getpid), mem_mb=base + 64))
    await asyncio.sleep(0)
    assert pool.waiting["small"].offered_to is pool.busy["grows"]
    assert pid_of(await grows) == bloated
    ran_on = pid_of(await small)
    assert ran_on != bloated  # not on the grown worker: it declined
    assert not other.done()  # nor behind the other call: on a new worker, at once
    deadline = time.monotonic() + 10
    while _alive(bloated):
        assert time.monotonic() < deadline, "the grown worker was not retired"
        await asyncio.sleep(0.01)
    assert (await other).ok


async def test_killing_an_offered_call_its_worker_took_already_kills_it_there(
        tmp_path: Path, monkeypatch):
    monkeypatch.setattr(worker_mod, "GROW_AFTER", 1.0)  # (longer than the loop is held)
    pool = Pool.prefork(1, str(tmp_path))
    try:
        first = asyncio.ensure_future(pool.run("first", call(time.sleep, 0.1)))
        await asyncio.sleep(0)
        taken = asyncio.ensure_future(pool.run("taken", call(time.sleep, 30)))
        await asyncio.sleep(0)
        offered = pool.waiting["taken"]
        assert offered.offered_to is not None and offered.offered_to.claim is not None
        # This loop reads nothing meanwhile: the worker answers the first call and takes
        # the offer (seen in the claim both processes share).
        deadline = time.monotonic() + 10
        while not offered.offered_to.claim.started(offered.offer):
            assert time.monotonic() < deadline, "the worker did not take the offered call"
            time.sleep(0.01)
        assert pool.kill("taken", "Killed by the framework")  # it runs: its worker goes
        assert (await first).ok
        with pytest.raises(WorkerDied, match="Killed by the framework"):
            await taken
        assert (await pool.run("after", call(abs, -2))).ok  # (on a new worker)
    finally:
        pool.close()
