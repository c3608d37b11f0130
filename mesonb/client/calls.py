"""What a function call carries: futures among its arguments, and what comes back.

A future passed as an argument (top level, or inside one list, tuple, set or dict)
becomes a :class:`~mesonb.frameworks.functions.protocol.Dep` placeholder that the worker
replaces with the future's value; a call's failed outcome becomes the same exception
type in the caller, with the remote traceback as its cause.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from typing import Any

from mesonb.frameworks.functions.protocol import Dep, Outcome

from .errors import RemoteError, RemoteTraceback
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


def remote_exception(outcome: Outcome) -> BaseException:
    """The call's exception, of its own type where it unpickles here: whole, or rebuilt
    from its type, ``args`` and ``__dict__`` (an ``__init__`` that wants other arguments
    than its ``args``); else a :class:`RemoteError`. The remote traceback is its cause."""
    exc: Any = None
    if outcome.value is not None:
        try:
            exc = pickle.loads(outcome.value)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException) and getattr(outcome, "exc_parts", None):
        try:
            cls, args, state = pickle.loads(outcome.exc_parts)  # type: ignore[arg-type]
            exc = cls.__new__(cls)
            exc.args = tuple(args)
            exc.__dict__.update(state)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(outcome.exc_type or "the remote call failed")
    exc.__cause__ = RemoteTraceback(outcome.traceback or "")
    return exc


def returncode(status: dict[str, Any]) -> int:
    if status["state"] == "TASK_FINISHED":
        return 0
    message = status.get("message", "")
    words = message.split()
    try:
        if message.startswith("Command exited with status"):
            return int(words[-1])
        if message.startswith("Command terminated with signal"):
            return -int(words[4]) if words[4].isdigit() else -9
    except (ValueError, IndexError):
        pass
    return 1
