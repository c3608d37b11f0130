"""Large values through shared memory (pickle protocol 5 out-of-band buffers): what is
written is what is read back, whether one thread or several wrote the file."""

from __future__ import annotations

import os
import pickle

import pytest

from mesonb.frameworks.functions import shm

np = pytest.importorskip("numpy")


# `directory`: tests/unit/conftest.py


def test_a_large_value_of_several_buffers_is_written_in_parallel_and_read_back(
        directory, monkeypatch):
    writers = []
    real = shm._write_all

    def spied(fd, views):
        total = sum(v.nbytes for v in views)
        writers.append(min(shm.WRITERS, os.cpu_count() or 1, total // shm.PARALLEL_SLICE))
        return real(fd, views)

    monkeypatch.setattr(shm, "_write_all", spied)
    value = {"a": np.arange(5_000_000, dtype=np.float64),  # 40 MB
             "b": np.arange(3_000_000, dtype=np.int8),  # 3 MB, not a slice boundary
             "c": np.full(2_500_000, 7.5)}  # 20 MB
    inband, stored = shm.dump(value, directory)
    assert stored is not None and len(inband) < 10_000  # the arrays are out of band
    assert os.path.getsize(stored.path) == sum(stored.sizes) == 63_000_000
    if (os.cpu_count() or 1) >= 2:
        assert writers == [min(shm.WRITERS, os.cpu_count() or 1, 3)]  # in parallel
    back = stored.load(inband)
    for key, array in value.items():
        assert np.array_equal(back[key], array) and back[key].dtype == array.dtype
    back["a"][0] = -1.0  # writable, copy-on-write: the file keeps the value
    assert stored.load(inband)["a"][0] == 0.0
    stored.remove()
    assert os.listdir(directory) == []


def test_a_small_value_stays_in_band(directory):
    inband, stored = shm.dump(np.arange(10), directory)
    assert stored is None and os.listdir(directory) == []
    assert list(pickle.loads(inband)) == list(range(10))
