"""The pool of shared-memory files reused between calls: a reused file never shows a
value another's bytes, never changes under a live value, and a removed value's path
never finds another value."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from mesonb.frameworks.functions import shm, shm_pool
from mesonb.testing.processes import wait_for

np = pytest.importorskip("numpy")
MB = 1 << 20


# `directory`: tests/unit/conftest.py


def pooled(directory: str) -> list[str]:
    """The pool's files ready to be taken."""
    try:
        names = os.listdir(directory + ".pool")
    except FileNotFoundError:
        return []
    return sorted(n for n in names if shm_pool.BLOCK_NAME.fullmatch(n))


def test_a_removed_value_nobody_maps_is_reused_and_shows_only_the_new_value(directory):
    first = np.arange(4 * MB // 8, dtype=np.float64)  # 4 MB
    inband, stored = shm.dump(first, directory)
    assert stored is not None
    assert np.array_equal(stored.load(inband), first)  # read, then dropped
    inode = os.stat(stored.path).st_ino
    stored.remove()
    assert not os.path.exists(stored.path) and os.listdir(directory) == []
    assert len(pooled(directory)) == 1
    with pytest.raises(FileNotFoundError):  # a late reader: gone, not another's bytes
        stored.load(inband)
    second = np.full(3 * MB // 8, 7.0)  # smaller: the file is cut, nothing old is left
    inband2, reused = shm.dump(second, directory)
    assert reused is not None and pooled(directory) == []
    assert os.stat(reused.path).st_ino == inode and reused.path != stored.path
    assert os.path.getsize(reused.path) == 3 * MB
    back = reused.load(inband2)
    assert back.dtype == np.float64 and np.array_equal(back, second)
    third = np.arange(5 * MB, dtype=np.uint8)  # larger: the client grows a pooled file
    del back
    reused.remove()
    inband3, grown = shm.dump(third, directory)
    assert grown is not None and os.stat(grown.path).st_ino == inode
    assert os.path.getsize(grown.path) == 5 * MB
    assert np.array_equal(grown.load(inband3), third)


def test_a_value_still_mapped_is_never_reused_under_it(directory):
    value = np.arange(2 * MB // 8, dtype=np.int64)
    inband, stored = shm.dump(value, directory)
    assert stored is not None
    held = stored.load(inband)  # a live array backed by the file
    inode = os.stat(stored.path).st_ino
    stored.remove()
    assert not os.path.exists(stored.path) and os.listdir(directory) == []
    assert pooled(directory) == []  # still mapped: not to be taken
    other = np.full(2 * MB // 8, -1, dtype=np.int64)
    _, next_one = shm.dump(other, directory)  # a new file, not the one under ``held``
    assert next_one is not None and os.stat(next_one.path).st_ino != inode
    assert np.array_equal(held, value)
    held[0] = 99  # copy-on-write, as before
    assert held[0] == 99
    del held  # its last array: now the file may be taken
    [name] = pooled(directory)
    assert os.stat(os.path.join(directory + ".pool", name)).st_ino == inode
    inband3, reused = shm.dump(other, directory)
    assert reused is not None and os.stat(reused.path).st_ino == inode
    assert np.array_equal(reused.load(inband3), other)  # not a byte of ``value`` left


def test_a_value_mapped_by_another_process_is_not_reused(directory, tmp_path):
    value = np.arange(2 * MB // 8, dtype=np.int64)
    inband, stored = shm.dump(value, directory)
    assert stored is not None
    (tmp_path / "inband").write_bytes(inband)
    script = textwrap.dedent(f"""
        import sys, time
        from mesonb.frameworks.functions.shm import Shm
        held = Shm({stored.path!r}, {stored.sizes!r}).load(open(sys.argv[1], 'rb').read())
        print(int(held.sum()), flush=True)
        sys.stdin.read()  # until told to go
        print(int(held.sum()), flush=True)
    """)
    reader = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "inband")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdin is not None
        expected = str(int(value.sum()))
        assert reader.stdout.readline().strip() == expected
        inode = os.stat(stored.path).st_ino
        stored.remove()  # the reader still maps it: held, not to be taken
        assert pooled(directory) == [] and not os.path.exists(stored.path)
        _, after = shm.dump(np.zeros(2 * MB // 8, dtype=np.int64), directory)
        assert after is not None and os.stat(after.path).st_ino != inode  # a new file
        reader.stdin.close()
        assert reader.stdout.readline().strip() == expected  # its value did not change
        assert reader.wait(30) == 0
        value2 = np.arange(2 * MB // 8, dtype=np.int64) * 3  # its reader gone: taken
        inband2, reused = shm.dump(value2, directory)
        assert reused is not None and os.stat(reused.path).st_ino == inode
        assert np.array_equal(reused.load(inband2), value2)
    finally:
        reader.kill()
        reader.wait(30)


def test_a_workers_file_is_not_pooled_and_the_client_makes_one_of_its_size(directory):
    """A file whose pages a worker made (any process but the directory's client) leaves
    for good; the client makes a pool file of that size for the next result, which a
    worker then writes into."""
    lock = shm._held.pop(directory)  # this process, as a worker sees the directory
    try:
        _, made = shm.dump(np.ones(3 * MB // 8), directory)
    finally:
        shm._held[directory] = lock
    assert made is not None and os.path.basename(made.path).startswith(shm_pool.WORKER_PREFIX)
    made.remove()
    assert not os.path.exists(made.path)
    wait_for(lambda: len(pooled(directory)) == 1, what="the client's pool file of that size")
    [name] = pooled(directory)
    assert os.path.getsize(os.path.join(directory + ".pool", name)) == 3 * MB
    value = np.linspace(0, 1, 3 * MB // 8)
    shm._held.pop(directory)
    try:
        _, fresh = shm.dump(np.ones(4 * MB // 8), directory)  # a worker grows none: new
        inband, into_pool = shm.dump(value, directory)
    finally:
        shm._held[directory] = lock
    assert fresh is not None and os.path.basename(fresh.path).startswith(shm_pool.WORKER_PREFIX)
    assert into_pool is not None and pooled(directory) == []
    assert not os.path.basename(into_pool.path).startswith(shm_pool.WORKER_PREFIX)
    assert np.array_equal(into_pool.load(inband), value)


def test_the_pool_holds_at_most_pool_bytes(directory, monkeypatch):
    monkeypatch.setattr(shm_pool, "POOL_BYTES", 5 * MB)
    stored = [shm.dump(np.ones(2 * MB // 8) + i, directory)[1] for i in range(3)]
    for one in stored:
        assert one is not None
        one.remove()
    assert len(pooled(directory)) == 2  # 4 MB kept, the third would pass 5 MB
    assert os.listdir(directory) == []


def test_the_pool_goes_with_its_clients_directory(directory):
    _, stored = shm.dump(np.ones(MB // 8 + 1), directory)
    assert stored is not None
    stored.remove()
    assert pooled(directory)
    assert shm.sweep() == []  # a live client's pool stays
    shm.remove_dir(directory)
    assert not os.path.exists(directory) and not os.path.exists(directory + ".pool")


POOL_HOLDER = textwrap.dedent("""
    import pickle, sys, time
    from mesonb.frameworks.functions import shm, shm_pool
    shm.SHM_ROOT = sys.argv[1]
    directory = shm.client_dir()
    _, block = shm.dump(pickle.PickleBuffer(bytearray(shm.SHM_MIN)), directory)
    block.remove()  # into the pool
    print(directory, flush=True)
    time.sleep(120)
""")


def test_a_killed_clients_pool_is_swept_with_its_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(shm, "SHM_ROOT", str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", POOL_HOLDER, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        directory = proc.stdout.readline().strip()
        assert directory and len(pooled(directory)) == 1
        assert shm.sweep(str(tmp_path)) == []  # its client lives: kept
    finally:
        proc.kill()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert sorted(shm.sweep(str(tmp_path))) == [directory, directory + ".pool"]
    assert os.listdir(tmp_path) == []


def test_parallel_writers_into_a_reused_file_write_the_value(directory, monkeypatch):
    """The threaded writer (off by default: tmpfs takes one write at a time) writes each
    slice where it belongs, into a fresh file and a reused one alike."""
    monkeypatch.setattr(shm, "WRITERS", 2)
    monkeypatch.setattr(shm, "PARALLEL_SLICE", MB)
    for fill in (1, 2):
        value = {"a": np.arange(3 * MB // 8) * fill, "b": np.full(MB + 3, fill, np.int8)}
        inband, stored = shm.dump(value, directory)
        assert stored is not None and os.path.getsize(stored.path) == 4 * MB + 3
        back = stored.load(inband)
        assert all(np.array_equal(back[k], v) for k, v in value.items())
        del back
        stored.remove()
    assert len(pooled(directory)) == 1


def test_a_pool_file_left_unused_is_freed(directory, monkeypatch):
    monkeypatch.setattr(shm_pool, "POOL_IDLE", 0.2)
    _, stored = shm.dump(np.ones(MB // 8 + 1), directory)
    assert stored is not None
    stored.remove()
    assert len(pooled(directory)) == 1
    wait_for(lambda: not pooled(directory), what="the idle pool file to be freed")
    wait_for(lambda: directory + ".pool" not in shm_pool._trimmers, what="the trimmer to stop")
    _, again = shm.dump(np.ones(MB // 8 + 1), directory)  # pooled again: trimmed again
    assert again is not None
    again.remove()
    assert len(pooled(directory)) == 1
    wait_for(lambda: not pooled(directory), what="the idle pool file to be freed")


def test_a_workers_mappings_last_until_its_outcome_is_sent(directory, monkeypatch):
    """In a worker, what a call loaded is unmapped after its outcome is sent (not on the
    caller's time); until then its file is not to be reused, after that it is."""
    monkeypatch.setattr(shm, "_kept", None)
    shm.keep_until_sent()
    value = np.arange(2 * MB // 8, dtype=np.float64)
    inband, stored = shm.dump(value, directory)
    assert stored is not None
    assert float(stored.load(inband).sum()) == float(value.sum())  # the array is dropped
    inode = os.stat(stored.path).st_ino
    stored.remove()
    assert pooled(directory) == []  # still mapped, kept until sent
    shm.sent()
    [name] = pooled(directory)
    assert os.stat(os.path.join(directory + ".pool", name)).st_ino == inode
