"""run_call in a worker: a large result goes to the client's shared-memory directory when
that is on this host (looked up once per directory), and stays in band once it is gone."""

from __future__ import annotations

import pickle
from pathlib import Path

import cloudpickle
import numpy as np

from mesonb.frameworks.functions import failures
from mesonb.frameworks.functions.protocol import Call


def big(n: int) -> np.ndarray:
    return np.ones(n, dtype=np.uint8)


def call_in(shm_dir: str | None) -> bytes:
    return Call(call=cloudpickle.dumps((big, (2 << 20,), {})), shm_dir=shm_dir).encode()


def test_large_result_uses_shared_memory_only_while_the_directory_is_there(
        tmp_path: Path) -> None:
    shm_dir = tmp_path / "client"
    shm_dir.mkdir()
    outcome = failures.run_call(call_in(str(shm_dir)), str(tmp_path / "r.pkl"))
    assert outcome.ok and outcome.shm is not None
    assert (outcome.shm.load(outcome.value) == big(2 << 20)).all()
    outcome.shm.remove()
    assert str(shm_dir) in failures._SHM_DIRS  # not looked up again

    shm_dir.rmdir()  # its client closed: in band (out of band in the sandbox), no error
    gone = failures.run_call(call_in(str(shm_dir)), str(tmp_path / "r2.pkl"))
    assert gone.ok and gone.shm is None and gone.path == str(tmp_path / "r2.pkl")
    assert (pickle.loads(Path(gone.path).read_bytes()) == big(2 << 20)).all()


def test_a_directory_not_on_this_host_is_not_remembered(tmp_path: Path) -> None:
    elsewhere = str(tmp_path / "not-here")
    outcome = failures.run_call(call_in(elsewhere), str(tmp_path / "r.pkl"))
    assert outcome.ok and outcome.shm is None
    assert elsewhere not in failures._SHM_DIRS
    assert not failures._on_this_host(None)


def test_an_atomic_result_is_pickled_as_shm_dump_pickles_it(tmp_path: Path) -> None:
    from mesonb.frameworks.functions import shm

    shm_dir = tmp_path / "client"
    shm_dir.mkdir()
    values = [None, True, 0, -7, 2**100, 1.5, float("inf"), "", "héllo" * 1000, b"",
              b"x" * (3 << 20)]
    for directory in (None, str(shm_dir)):
        for value in values:
            fast = failures.dump_result(value, directory)
            assert fast == shm.dump(value, directory)  # (the same bytes; no shared memory)
            assert pickle.loads(fast[0]) == value
    assert list(shm_dir.iterdir()) == []
