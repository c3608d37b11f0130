"""One call in a worker (:func:`run_call`), and what a failed call sends back: its
exception, pickled (or its parts), and its traceback with the user's frames only
(mesonb's own, the worker's, left out)."""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import time
import traceback
from typing import Any

import cloudpickle

from . import shm
from .protocol import INLINE_MAX, Call, Outcome, substitute

_PACKAGE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def user_traceback(exc: BaseException) -> tuple[str, list[tuple[str, int, str]]]:
    """The traceback of a call's exception as the user wants it: their frames (mesonb's
    own, the worker's, left out) and the error, chained exceptions included; and the
    frames of the exception itself as ``(file, line, function)``."""
    tb = traceback.TracebackException.from_exception(exc)
    for one in _chain(tb):
        frames = [f for f in one.stack if not (f.filename or "").startswith(_PACKAGE)]
        one.stack = traceback.StackSummary.from_list(frames)
    own = [(f.filename, f.lineno or 0, f.name) for f in tb.stack]
    return "".join(tb.format()), own


def _chain(tb: traceback.TracebackException) -> list[traceback.TracebackException]:
    out, seen = [], set()
    todo: list[traceback.TracebackException | None] = [tb]
    while todo:
        one = todo.pop()
        if one is None or id(one) in seen:
            continue
        seen.add(id(one))
        out.append(one)
        todo += [one.__cause__, one.__context__]
    return out


def pickle_exception(exc: BaseException) -> tuple[bytes | None, bytes | None]:
    """``(value, None)``: the exception, pickled and checked to unpickle; else ``(None,
    parts)``: its ``(type, args, __dict__)`` (``__dict__`` left out if it does not pickle),
    for the client to rebuild it with ``type.__new__``; ``(None, None)`` when neither works.
    Only a failed call pays for this."""
    try:
        value = cloudpickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(value)
        return value, None
    except Exception:
        pass
    for state in (getattr(exc, "__dict__", {}), {}):
        try:
            return None, cloudpickle.dumps((type(exc), exc.args, state),
                                           protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            pass
    return None, None


def exception_text(exc: BaseException) -> str:
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    try:
        return f"{name}: {exc}"
    except Exception:  # a __str__ that fails
        return name


_FUNCTIONS: dict[bytes, Any] = {}  # a worker's functions, by their pickle
FUNCTIONS_KEPT = 64


def function(pickled: bytes) -> Any:
    """The function of these bytes, unpickled once per worker (the last 64 kept)."""
    fn = _FUNCTIONS.get(pickled)
    if fn is None:
        fn = cloudpickle.loads(pickled)
        if len(_FUNCTIONS) >= FUNCTIONS_KEPT:
            _FUNCTIONS.pop(next(iter(_FUNCTIONS)))
        _FUNCTIONS[pickled] = fn
    return fn


_SHM_DIRS: set[str] = set()  # clients' shared-memory directories seen on this host


def _on_this_host(shm_dir: str | None) -> bool:
    """Is ``shm_dir`` (a client's shared-memory directory) on this host? Looked up once
    per directory found: a directory gone since (its client closed) makes
    :func:`shm.dump` keep the value in band, as a missing one does."""
    if shm_dir is None:
        return False
    if shm_dir in _SHM_DIRS:
        return True
    if not os.path.isdir(shm_dir):
        return False
    _SHM_DIRS.add(shm_dir)
    return True


# Values that pickle alone, with no buffers out of band: pickle's bytes are cloudpickle's.
_ATOMIC = frozenset({type(None), bool, int, float, str, bytes})


def dump_result(result: Any, shm_dir: str | None) -> tuple[bytes, shm.Shm | None]:
    """A call's result pickled as :func:`shm.dump` does it (in shared memory when the
    client shares this host and its buffers are big); an atomic value (None, a number, a
    string, bytes) with plain pickle, which writes the same bytes without building a
    cloudpickle pickler."""
    if type(result) in _ATOMIC:
        return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL), None
    return shm.dump(result, shm_dir if _on_this_host(shm_dir) else None)


def run_call(payload: bytes, result_path: str) -> Outcome:
    start = time.perf_counter()
    try:
        call = Call.decode(payload)
        data = call.call if call.call is not None else call.call_url.fetch()  # type: ignore
        parts = call.shm.load(data) if call.shm is not None else cloudpickle.loads(data)
        if call.fn is not None:
            fn, (args, kwargs) = function(call.fn), parts
        else:
            fn, args, kwargs = parts
        if call.deps:
            values = [ref.load() for ref in call.deps]
            args = tuple(substitute(a, values) for a in args)
            kwargs = {k: substitute(v, values) for k, v in kwargs.items()}
        result = fn(*args, **kwargs)
        value, shared = dump_result(result, call.shm_dir)
        outcome = Outcome(ok=True, size=len(value) + sum(shared.sizes if shared else ()),
                          shm=shared)
        if len(value) > INLINE_MAX:
            with open(result_path, "wb") as f:
                f.write(value)
            outcome.path = result_path
        else:
            outcome.value = value
    except BaseException as exc:
        text, frames = user_traceback(exc)
        pickled, parts = pickle_exception(exc)
        outcome = Outcome(ok=False, value=pickled, exc_parts=parts, traceback=text,
                          exc_type=exception_text(exc), frames=frames)
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    outcome.duration = time.perf_counter() - start
    return outcome
