"""What travels between the client and the functions executor.

``TaskInfo.data`` holds a pickled :class:`Call`; ``TaskStatus.data`` of a terminal update
holds a pickled :class:`Outcome`, that of a TASK_RUNNING update (sent for a call still
running after a moment) a pickled :class:`Running`: where the call's output starts, so the
client can show it while the call runs. All are plain pickle of these small dataclasses
(an Outcome and a LogSlice as their fields in order, with no field names: a result
crosses the agent, the master and the client, base64 in JSON at each hop, so its bytes
count); the user's function, arguments and results inside are cloudpickle bytes.

Large values go out of band, never through the master:

* a call whose pickle exceeds :data:`INLINE_MAX` is served by the client's blob server
  (``Call.call_url``) and the worker downloads it;
* a result over :data:`INLINE_MAX` is written by the worker into the executor's sandbox
  (``Outcome.path``); the client, or a dependent task's worker, downloads it through the
  agent's ``/files/download``.

A future passed as an argument is replaced by ``Dep(i)`` in the pickled call, and
``Call.deps[i]`` says where its value is (:class:`Ref`: inline bytes or a URL).
"""

from __future__ import annotations

import dataclasses
import pickle
import urllib.request
from typing import Any

from mesonb import tls

INLINE_MAX = 64 * 1024
VERSION = 1


@dataclasses.dataclass(frozen=True)
class Dep:
    """Placeholder for the value of the ``index``-th dependency."""

    index: int


@dataclasses.dataclass
class Ref:
    """A pickled value: inline ``data``, or ``url`` to GET (with ``headers``); with
    ``shm``, ``data`` is the in-band pickle and its buffers are in shared memory."""

    data: bytes | None = None
    url: str | None = None
    headers: dict[str, str] | None = None
    shm: Any = None  # shm.Shm

    def load(self) -> Any:
        """The value."""
        if self.shm is not None:
            return self.shm.load(self.data or b"")
        return pickle.loads(self.fetch())

    def fetch(self, timeout: float = 300.0) -> bytes:
        if self.data is not None:
            return self.data
        assert self.url is not None
        request = urllib.request.Request(self.url, headers=self.headers or {})
        context = tls.client_context() if self.url.startswith("https:") else None
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            return answer.read()


@dataclasses.dataclass
class Call:
    """One function call: ``call`` = cloudpickle of ``(fn, args, kwargs)`` or its URL."""

    call: bytes | None = None
    call_url: Ref | None = None
    deps: list[Ref] = dataclasses.field(default_factory=list)
    version: int = VERSION
    # the buffers of ``call`` (pickle protocol 5) in shared memory (shm.Shm), and the
    # client's shared-memory directory: a worker that sees it shares the client's host
    # and puts a large result there too
    shm: Any = None
    shm_dir: str | None = None
    # the function pickled on its own (the same bytes for every call of one function,
    # which the worker unpickles once); ``call`` then holds ``(args, kwargs)`` only
    fn: bytes | None = None

    def encode(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def decode(data: bytes) -> Call:
        call = pickle.loads(data)
        if not isinstance(call, Call):
            raise ValueError("task data is not a mesonb function call")
        return call


@dataclasses.dataclass(frozen=True)
class LogSlice:
    """``length`` bytes from ``offset`` of the log file at ``path`` (in the sandbox)."""

    path: str
    offset: int
    length: int

    def __reduce__(self) -> tuple[Any, ...]:
        return LogSlice, (self.path, self.offset, self.length)


@dataclasses.dataclass
class Running:
    """Where a running call's output starts: its worker's log files from each slice's
    ``offset`` on (``length`` is what it had written when the update was sent)."""

    stdout: LogSlice | None = None
    stderr: LogSlice | None = None

    def encode(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def decode(data: bytes) -> Running:
        running = pickle.loads(data)
        if not isinstance(running, Running):
            raise ValueError("status data is not a mesonb running call")
        return running


@dataclasses.dataclass
class Outcome:
    """How a call ended: ``ok`` with ``value`` (cloudpickle) or ``path`` to it in the
    sandbox; else ``value`` is the pickled exception and ``traceback`` its text. An
    exception that does not unpickle as a whole (its ``__init__`` wants other arguments
    than its ``args``) has ``value`` None and ``exc_parts``: cloudpickle of its
    ``(type, args, __dict__)``, from which the client rebuilds it. A call whose worker
    died has ``died`` set and neither. ``stdout``/``stderr`` are what the call printed;
    ``frames`` the user's frames of the traceback, for the client to raise the exception
    with them."""

    ok: bool
    value: bytes | None = None
    path: str | None = None
    size: int = 0
    traceback: str | None = None
    exc_type: str | None = None
    exc_parts: bytes | None = None
    stdout: LogSlice | None = None
    stderr: LogSlice | None = None
    duration: float = 0.0
    died: bool = False
    # the user's frames of the traceback, outermost first: (file, line, function)
    frames: list[tuple[str, int, str]] | None = None
    shm: Any = None  # the result's buffers in shared memory (shm.Shm); value is in band

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its fields in order; a worker's two log slices (``<base>.stdout``
        and ``<base>.stderr``) as their common base once: see :func:`_outcome`."""
        out, err, logs = self.stdout, self.stderr, None
        if out is not None and err is not None and out.path.endswith(".stdout") and \
                err.path.endswith(".stderr") and out.path[:-7] == err.path[:-7]:
            logs = (out.path[:-7], out.offset, out.length, err.offset, err.length)
            out = err = None
        return _outcome, (logs, self.ok, self.value, self.path, self.size, self.traceback,
                          self.exc_type, self.exc_parts, out, err, self.duration, self.died,
                          self.frames, self.shm)

    def encode(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def decode(data: bytes) -> Outcome:
        outcome = pickle.loads(data)
        if not isinstance(outcome, Outcome):
            raise ValueError("status data is not a mesonb function outcome")
        return outcome


def _outcome(logs: tuple[str, int, int, int, int] | None, *fields: Any) -> Outcome:
    """An :class:`Outcome` from its pickle (see :meth:`Outcome.__reduce__`)."""
    outcome = Outcome(*fields)
    if logs is not None:
        base, out_offset, out_length, err_offset, err_length = logs
        outcome.stdout = LogSlice(base + ".stdout", out_offset, out_length)
        outcome.stderr = LogSlice(base + ".stderr", err_offset, err_length)
    return outcome


def substitute(obj: Any, values: list[Any]) -> Any:
    """Replace :class:`Dep` placeholders (top level and one container level deep)."""
    if isinstance(obj, Dep):
        return values[obj.index]
    if type(obj) in (list, tuple, set, frozenset):
        if any(isinstance(x, Dep) for x in obj):
            return type(obj)(values[x.index] if isinstance(x, Dep) else x for x in obj)
        return obj
    if type(obj) is dict and any(isinstance(v, Dep) for v in obj.values()):
        return {k: values[v.index] if isinstance(v, Dep) else v for k, v in obj.items()}
    return obj
