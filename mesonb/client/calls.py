"""What a function call carries: futures among its arguments.

A future passed as an argument (top level, or inside one list, tuple, set or dict)
becomes a :class:`~mesonb.frameworks.functions.protocol.Dep` placeholder that the worker
replaces with the future's value. What comes back is the functions framework's
(:mod:`mesonb.frameworks.functions.results`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterable
from typing import Any

from mesonb.frameworks.functions.protocol import Dep

from .futures import Future


def placehold(value: Any, deps: list[Future]) -> Any:
    def one(x: Any) -> Any:
        if isinstance(x, Future):
            deps.append(x)
            return Dep(len(deps) - 1)
        return x

    if isinstance(value, Future):
        return one(value)
    if type(value) in (list, tuple, set, frozenset):
        return type(value)(one(x) for x in value)
    if type(value) is dict:
        return {k: one(v) for k, v in value.items()}
    return value


_ATOMS = frozenset({int, float, complex, str, bytes, bool, type(None)})


def plain_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Are a call's arguments plain data (numbers, strings, bytes, None, and tuples,
    lists and dicts of them, two levels deep)? Then :func:`pickle.dumps` writes exactly
    the bytes cloudpickle would, with no pickler of cloudpickle's to set up (a
    microsecond or three a call): no function, class, buffer or future is inside."""
    return all(_plain(a, 2) for a in args) and all(
        type(k) is str and _plain(v, 2) for k, v in kwargs.items())


def _plain(value: Any, depth: int) -> bool:
    kind = type(value)
    if kind in _ATOMS:
        return True
    if not depth:
        return False
    if kind is tuple or kind is list:
        return all(_plain(x, depth - 1) for x in value)
    if kind is dict:
        return all(type(k) in _ATOMS and _plain(v, depth - 1) for k, v in value.items())
    return False


def nested_future(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """Where a future too deep for a placeholder is, in words (None if not found in
    plain containers). Only a refused call pays for the search."""
    places = [(f"argument {i}", a) for i, a in enumerate(args)]
    places += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    for where, value in places:
        depth = _future_depth(value, 0, set())
        if depth is not None:
            return (f"futures may be passed as arguments, or inside one list, tuple, set or "
                    f"dict; {where} has one at depth {depth}: pass its value "
                    f"(fut.result()) or move it up")
    return None


def _future_depth(value: Any, depth: int, seen: set[int]) -> int | None:
    if isinstance(value, Future):
        return depth
    if depth >= 50 or id(value) in seen:
        return None
    if type(value) in (list, tuple, set, frozenset):
        items: Iterable[Any] = value
    elif type(value) is dict:
        items = value.values()
    else:
        return None
    seen.add(id(value))
    for item in items:
        found = _future_depth(item, depth + 1, seen)
        if found is not None:
            return found
    return None


def this_host() -> set[str]:
    """The names an agent on this host may go by."""
    import socket

    names = {"localhost", "127.0.0.1", os.uname().nodename, socket.gethostname()}
    with contextlib.suppress(OSError):
        names.add(socket.gethostbyname(socket.gethostname()))
    return names


@functools.lru_cache(maxsize=256)  # a loop of submits names the same function each time
def slug(name: str) -> str:
    """``name`` as part of a task id: alphanumerics, ``-_.``, at most 40 characters
    (kept for the names met last: a loop of submits names the same function)."""
    kept = _SLUGS.get(name)
    if kept is None:
        if len(_SLUGS) >= 256:
            _SLUGS.clear()
        kept = _SLUGS[name] = _slug(name)
    return kept


_SLUGS: dict[str, str] = {}


def _slug(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:40]
    return safe.strip("-.") or "call"


def executor_env() -> dict[str, str]:
    """The executor imports what the client can (functions pickled by reference)."""
    paths = [os.getcwd() if p == "" else p for p in sys.path]
    paths = [p for p in dict.fromkeys(paths) if os.path.isdir(p)]
    return {"PYTHONPATH": os.pathsep.join(paths)}
