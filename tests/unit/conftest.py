"""Fixtures shared by unit test files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mesonb.frameworks.functions import shm


@pytest.fixture
def directory() -> Iterator[str]:
    """A client's shared-memory directory (as ``Cluster`` makes one), removed with its pool
    afterwards; the test skips where /dev/shm is not writable."""
    path = shm.client_dir()
    if path is None:
        pytest.skip("no writable /dev/shm here")
    yield path
    shm.remove_dir(path)
