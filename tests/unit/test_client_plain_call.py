"""Plain arguments are pickled with pickle: the bytes must be those cloudpickle (through
shm.dump, as every other call's) writes, with or without a shared-memory directory."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mesonb.client.calls import plain_call
from mesonb.frameworks.functions import shm
from mesonb.frameworks.functions.protocol import Dep

SHARED = [1, "two"]
PLAIN: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {}),
    ((1, 2.5, -3, 2**80, 1 + 2j, True, None), {}),
    (("é ünïcode", b"\x00bytes" * 1000, ""), {"x": 1, "y": None}),
    (([1, 2, [3, 4]], (5, (6,)), {"a": [1], 2: "b"}), {"k": {"nested": (1, 2)}}),
    ((SHARED, SHARED, [SHARED]), {"again": SHARED}),  # shared references, memoised alike
    (([], (), {}), {}),
    ((b"x" * (2 << 20),), {}),  # bytes stay in band
]
NOT_PLAIN: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((len,), {}),
    ((lambda: 1,), {}),
    ((np.arange(3),), {}),
    ((bytearray(b"ab"),), {}),
    ((Dep(0),), {}),
    (([[[1]]],), {}),  # deeper than two levels
    (({1, 2},), {}),  # sets are left to cloudpickle
    ((1,), {"f": print}),
    ((type("Int", (int,), {})(3),), {}),  # a subclass of a plain type
    (({(1, 2): [Dep(0)]},), {}),
]


@pytest.mark.parametrize(("args", "kwargs"), PLAIN)
def test_plain_arguments_pickle_to_the_same_bytes(args: tuple[Any, ...], kwargs: dict[str, Any],
                                                  tmp_path: Path) -> None:
    assert plain_call(args, kwargs)
    value = (args, kwargs)
    whole, none = shm.dump(value, None)
    assert none is None and pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL) == whole
    inband, shared = shm.dump(value, str(tmp_path))
    assert shared is None and pickle.dumps(value, protocol=5) == inband
    assert pickle.loads(whole) == value


@pytest.mark.parametrize(("args", "kwargs"), NOT_PLAIN)
def test_anything_else_goes_through_cloudpickle(args: tuple[Any, ...],
                                                kwargs: dict[str, Any]) -> None:
    assert not plain_call(args, kwargs)
