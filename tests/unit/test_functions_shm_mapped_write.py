"""The client writes a value into a pool file it reuses through a mapping kept from the
last time: what a reader loads is exactly the new value (never an earlier one's bytes,
whatever size each had or whoever wrote into the file in between), and a kept mapping
goes once its file leaves the pool for good."""

from __future__ import annotations

import os

import pytest

from mesonb.frameworks.functions import shm, shm_pool

np = pytest.importorskip("numpy")
MB = 1 << 20


# `directory`: tests/unit/conftest.py


def kept_inodes() -> set[int]:
    return {ino for _, ino in shm_pool._writable}


def round_trip(value, directory):
    """Dump ``value``, load it back (a copy), remove it (into the pool); the file's inode."""
    inband, stored = shm.dump(value, directory)
    assert stored is not None
    inode = os.stat(stored.path).st_ino
    back = stored.load(inband)
    copied = {k: np.array(v) for k, v in back.items()} if isinstance(back, dict) \
        else np.array(back)
    del back
    stored.remove()
    return copied, inode


def test_values_written_through_a_kept_mapping_read_back_exactly(directory):
    first, inode = round_trip(np.arange(4 * MB // 8, dtype=np.float64), directory)
    assert np.array_equal(first, np.arange(4 * MB // 8, dtype=np.float64))
    assert inode not in kept_inodes()  # a new file: written, not mapped
    values = [np.full(4 * MB // 8, 7.0),  # the same size: the mapping is made
              np.arange(3 * MB // 8, dtype=np.int64) * -1,  # smaller: through it, cut
              {"a": np.full(MB, 3, np.uint8), "b": np.arange(MB // 8) + 0.5},  # two buffers
              np.full(4 * MB // 8, 9.0)]  # back to the mapping's size
    for value in values:
        back, again = round_trip(value, directory)
        assert again == inode and inode in kept_inodes()
        if isinstance(value, dict):
            assert all(np.array_equal(back[k], v) for k, v in value.items())
        else:
            assert back.dtype == value.dtype and np.array_equal(back, value)


def test_a_file_another_process_cut_and_wrote_in_between_reads_back_the_new_value(
        directory):
    """A worker takes the same pool file for its (smaller) result, writes it with pwrite
    and the file comes back to the pool; the client's kept mapping of it then writes the
    client's next value, grown or not, exactly."""
    round_trip(np.zeros(4 * MB // 8), directory)
    _, inode = round_trip(np.ones(4 * MB // 8), directory)  # mapped now
    assert inode in kept_inodes()
    path, fd = shm_pool.claim(directory, MB, grow=False)  # as a worker's result does
    assert fd is not None and os.fstat(fd).st_ino == inode
    os.pwrite(fd, b"\xff" * MB, 0)
    os.close(fd)
    shm.Shm(path, [MB]).remove()  # back into the pool, 1 MB now
    grown = np.arange(4 * MB // 8, dtype=np.float64)  # grown: holes, not through the map
    back, again = round_trip(grown, directory)
    assert again == inode and np.array_equal(back, grown)
    value = np.full(2 * MB // 8, -2.0)  # through the mapping kept
    back, again = round_trip(value, directory)
    assert again == inode and np.array_equal(back, value)


def test_a_kept_mapping_goes_with_its_file(directory, monkeypatch):
    round_trip(np.zeros(2 * MB // 8), directory)
    _, inode = round_trip(np.ones(2 * MB // 8), directory)
    assert inode in kept_inodes()
    monkeypatch.setattr(shm_pool, "POOL_IDLE", 0.0)
    assert shm_pool._trim_idle(directory + ".pool") == 0  # idle files freed, as a trim does
    assert inode not in kept_inodes()
    round_trip(np.zeros(2 * MB // 8), directory)
    _, inode = round_trip(np.ones(2 * MB // 8), directory)
    assert inode in kept_inodes()
    shm.remove_dir(directory)  # the cluster closes
    assert inode not in kept_inodes()


def test_a_workers_results_through_its_kept_mapping_read_back_exactly(directory, monkeypatch):
    """A worker (a process that does not own ``directory``) takes the client's pool file
    for its result and writes it through a mapping it keeps: each result reads back
    exactly, a smaller one cut to its size."""
    _, inode = round_trip(np.zeros(4 * MB // 8), directory)  # the client's pool file
    monkeypatch.delitem(shm._held, directory)  # from here on, as a worker
    for value in (np.arange(4 * MB // 8, dtype=np.float64),  # mapped now
                  np.full(3 * MB // 8, -5, dtype=np.int64),  # through it, cut
                  np.arange(2 * MB // 8, dtype=np.float64)[::-1].copy()):
        back, again = round_trip(value, directory)
        assert again == inode and inode in kept_inodes()
        assert back.dtype == value.dtype and np.array_equal(back, value)
    back, other = round_trip(np.ones(3 * MB // 8), directory)  # none fits (a worker
    assert other != inode and np.array_equal(back, np.ones(3 * MB // 8))  # grows none)


def test_kept_mappings_are_not_counted_as_the_processs_memory(directory):
    """What a worker's memory checks leave out: its kept mappings' pages (the client's),
    not an argument it maps copy-on-write and reads."""
    inband, stored = shm.dump(np.ones(2 * MB // 8), directory)  # a new file
    assert stored is not None
    loaded = stored.load(inband)
    assert float(loaded.sum()) == 2 * MB // 8  # read: its pages resident, but private
    before = shm_pool.kept_rss(os.getpid())
    assert before < 2 * MB
    round_trip(np.zeros(4 * MB // 8), directory)
    round_trip(np.ones(4 * MB // 8), directory)  # a mapping of 4 MB kept, populated
    assert shm_pool.kept_rss(os.getpid()) - before >= 4 * MB
    assert float(loaded.sum()) == 2 * MB // 8


def test_a_forked_child_lets_go_of_the_kept_mappings_and_writes_its_own(directory):
    round_trip(np.zeros(2 * MB // 8), directory)
    _, inode = round_trip(np.ones(2 * MB // 8), directory)
    assert inode in kept_inodes()
    pid = os.fork()
    if pid == 0:  # the child: nothing kept, and a value it writes reads back
        code = 1
        try:
            kept = kept_inodes()
            value = np.arange(2 * MB // 8, dtype=np.float64)
            inband, stored = shm.dump(value, directory)
            code = 0 if stored is not None and not kept and np.array_equal(
                stored.load(inband), value) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert inode in kept_inodes()  # the parent's stay
