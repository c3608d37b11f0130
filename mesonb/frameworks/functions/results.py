"""What a function call or command task gives back: outcomes, errors, retries.

The functions framework's result handling, on the client's loop: a task's terminal
status (and the :class:`~.protocol.Outcome` in its ``data``) becomes a value or an
exception for the caller (:class:`Results`), a call that may be retried is launched
again, and a remote exception is rebuilt as its own type with the user's frames of the
remote traceback as its cause (:func:`remote_exception`). The types users meet here
(:class:`CommandResult`, :class:`Logs`, :class:`TaskError`, :class:`RemoteError`) are
re-exported by :mod:`mesonb.client`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import pickle
import weakref
from binascii import a2b_base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import quote

from mesonb.tasks import spawn

from .protocol import LogSlice, Outcome, Ref, Running

log = logging.getLogger(__name__)
NO_RETRY_STATES = frozenset({"TASK_ERROR", "TASK_KILLED"})
TERMINAL = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR",
                      "TASK_LOST", "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR",
                      "TASK_UNREACHABLE", "TASK_UNKNOWN"})
SHOWN = 2000  # characters of a stream an HTML repr shows before "… N more"


# -- what users meet -------------------------------------------------------------------
class TaskError(RuntimeError):
    """A task ended without a result: killed for a limit, lost with its agent, refused.

    ``state`` and ``reason`` are Mesos's names (``TASK_FAILED``,
    ``REASON_CONTAINER_LIMITATION_MEMORY``); ``message`` is the status message.
    """

    def __init__(self, task_id: str, state: str, reason: str | None, message: str | None):
        self.task_id, self.state, self.reason, self.message = task_id, state, reason, message
        why = f" ({reason})" if reason else ""
        super().__init__(f"task {task_id}: {state}{why}" + (f": {message}" if message else ""))


class RemoteTraceback(Exception):
    """Carries the remote traceback text; set as ``__cause__`` of a re-raised exception."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class RemoteError(Exception):
    """A remote exception that could not be pickled back: its type name and message."""


@dataclass
class Logs:
    """A task's stdout and stderr text. ``print(logs)`` or a notebook cell shows them as
    text; ``str(logs)`` is stdout, then stderr under a ``--- stderr ---`` line."""

    stdout: str
    stderr: str

    def __str__(self) -> str:
        return self.stdout + (f"\n--- stderr ---\n{self.stderr}" if self.stderr else "")

    def __repr__(self) -> str:
        return _streams("Logs", None, self.stdout, self.stderr)

    def _repr_html_(self) -> str:
        return _streams_html("logs", None, self.stdout, self.stderr)


@dataclass
class CommandResult:
    """What ``cluster.run(...)`` yields: like :class:`subprocess.CompletedProcess`."""

    returncode: int
    stdout: str
    stderr: str

    def __repr__(self) -> str:
        return _streams("CommandResult", self.returncode, self.stdout, self.stderr)

    def _repr_html_(self) -> str:
        return _streams_html("command", self.returncode, self.stdout, self.stderr)


def _size(text: str) -> str:
    n = len(text.encode("utf-8", "replace"))
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:g} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _streams(kind: str, returncode: int | None, out: str, err: str) -> str:
    head = f"{kind}(returncode={returncode})" if returncode is not None else kind
    parts = [f"{head}: stdout {_size(out)}, stderr {_size(err)}"]
    for name, text in (("stdout", out), ("stderr", err)):
        if text:
            parts.append(f"--- {name} ---\n{text.rstrip(chr(10))}")
    return "\n".join(parts)


def _streams_html(kind: str, returncode: int | None, out: str, err: str) -> str:
    code = "" if returncode is None else (
        f" <span style='color:{'green' if returncode == 0 else 'crimson'}'>"
        f"exit {returncode}</span>")
    blocks = [f"<div><b>{kind}</b>{code} <small>stdout {_size(out)}, "
              f"stderr {_size(err)}</small></div>"]
    for name, text, colour in (("stdout", out, "inherit"), ("stderr", err, "crimson")):
        if not text:
            continue
        more = f"\n… {len(text) - SHOWN} more characters" if len(text) > SHOWN else ""
        blocks.append(f"<pre title='{name}' style='margin:2px 0;color:{colour};"
                      f"max-height:20em;overflow:auto'>{escape(text[:SHOWN])}{more}</pre>")
    return "<div class='mesonb-output'>" + "".join(blocks) + "</div>"


# -- one call's results ----------------------------------------------------------------
@dataclass
class CallRecord:
    """What the framework knows of one call's current attempt: where it runs, what it
    printed (slices of its worker's log files), where its result is (``ref``)."""

    command: bool = False  # a shell command task, not a function call
    task_id: str | None = None
    attempts: int = 0
    agent_url: str | None = None
    logs: tuple[LogSlice | None, LogSlice | None] | None = None
    running_logs: tuple[LogSlice | None, LogSlice | None] | None = None
    ref: Ref | None = None


class Job(Protocol):
    """A call as :class:`Results` sees it (the client's bookkeeping holds more)."""

    command: str | None
    retries: int

    @property
    def record(self) -> CallRecord:
        """The current attempt."""

    def over(self) -> bool:
        """The caller no longer waits (the future is done or cancelled, or closed)."""


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


def remote_exception(outcome: Outcome) -> BaseException:
    """The call's exception, of its own type where it unpickles here: whole, or rebuilt
    from its type, ``args`` and ``__dict__`` (an ``__init__`` that wants other arguments
    than its ``args``); else a :class:`RemoteError`. The remote traceback (the user's
    frames) is its cause."""
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
    frames = getattr(outcome, "frames", None)
    chained = any(words in (outcome.traceback or "") for words in (
        "The above exception was the direct cause", "During handling of the above"))
    remote = _traceback_of(frames) if frames and not chained else None
    if remote is None:  # a chained error, or frames that cannot be shown: the whole text
        exc.__cause__ = RemoteTraceback(outcome.traceback or "")
    exc.__suppress_context__ = True
    exc.__traceback__ = remote
    with contextlib.suppress(AttributeError):  # Future.result raises it with these frames
        exc._mesonb_remote_traceback = remote
    return exc


def _traceback_of(frames: list[tuple[str, int, str]]) -> TracebackType | None:
    """A traceback whose frames read as the remote ones (file, line, function), so the
    exception shows as if raised here, as Dask does with tblib; None if it cannot be."""
    tb: TracebackType | None = None
    try:
        for filename, lineno, name in reversed(frames):
            code = compile("\n" * (max(lineno, 1) - 1) + "raise __exc", filename, "exec")
            code = code.replace(co_name=name)
            try:
                exec(code, {"__exc": _Marker, "__name__": "remote"})
            except _Marker as marker:
                assert marker.__traceback__ is not None and \
                    marker.__traceback__.tb_next is not None
                frame = marker.__traceback__.tb_next.tb_frame
            tb = TracebackType(tb, frame, -1, max(lineno, 1))
    except Exception:
        return None
    return tb


class _Marker(Exception):
    pass


def command_concluded(status: dict[str, Any]) -> bool:
    """The command ran to its end (any exit status), so its output is the result."""
    return status["state"] == "TASK_FINISHED" or (
        status["state"] == "TASK_FAILED" and status.get("message", "").startswith(
            ("Command exited", "Command terminated")))


class Results:
    """Settles calls from their status updates (see the module docstring).

    ``finish(job, value, exc)`` settles the caller's future; ``relaunch(job)`` launches
    it again (a retry). Both run on the loop, as does :meth:`on_status`.
    """

    def __init__(self, sandboxes: Any, headers: Mapping[str, str], *,
                 finish: Callable[..., None], relaunch: Callable[[Any], None]) -> None:
        self.sandboxes = sandboxes
        self.headers = dict(headers)
        self.finish = finish
        self.relaunch = relaunch
        self._background: set[asyncio.Future[Any]] = set()

    def on_status(self, job: Job, agent_url: str | None, status: dict[str, Any]) -> None:
        record = job.record
        state = status["state"]
        record.agent_url = agent_url
        if state not in TERMINAL:
            if state == "TASK_RUNNING" and status.get("data") and job.command is None:
                try:  # where the running call's output starts (only calls past 0.2 s)
                    running = Running.decode(base64.b64decode(status["data"]))
                    record.running_logs = (running.stdout, running.stderr)
                except Exception:
                    log.debug("TASK_RUNNING of %s: data is not a Running", record.task_id)
            return
        if job.over():
            self.finish(job, settle=False)
            return
        data = a2b_base64(status["data"]) if status.get("data") else None  # b64decode's core
        if job.command is None:
            try:
                outcome = Outcome.decode(data) if data is not None else None
            except Exception as exc:  # not an outcome of ours
                self.finish(job, exc=exc)
                return
            if outcome is None or outcome.path is None or not outcome.ok:
                self._conclude_call(job, status, outcome)  # all here: at once
                return
        spawn(self._conclude(job, status, data), self._background, "concluding a call",
              logger=log)

    async def _conclude(self, job: Job, status: dict[str, Any], data: bytes | None) -> None:
        """What needs the agent first: a command's output, a result stored out of band."""
        record, state = job.record, status["state"]
        try:
            if job.command is None:
                assert data is not None
                outcome = Outcome.decode(data)
                raw = await self.sandboxes.download(record.agent_url or "", outcome.path or "")
                self._conclude_call(job, status, outcome, raw)
                return
            if command_concluded(status):
                out, err = await self.sandboxes.command_logs(record.agent_url or "",
                                                             record.task_id or "")
                self.finish(job, CommandResult(returncode(status), out, err))
                return
            if not self.retry(job, state):
                self.finish(job, exc=TaskError(record.task_id or "", state,
                                               status.get("reason"), status.get("message")))
        except Exception as exc:  # a lost agent, a result gone
            self.finish(job, exc=exc)

    def _conclude_call(self, job: Job, status: dict[str, Any], outcome: Outcome | None,
                       raw: bytes | None = None) -> None:
        """Settle a function call from its terminal status and outcome (``raw``: the
        result's bytes when they were stored out of band)."""
        record, state = job.record, status["state"]
        try:
            if outcome is not None:
                record.logs = (outcome.stdout, outcome.stderr)
                if outcome.ok and outcome.shm is not None:  # buffers in shared memory
                    record.ref = Ref(data=outcome.value, shm=outcome.shm)
                    # the file goes with the future (a dependent call may still read it)
                    weakref.finalize(record, outcome.shm.remove)
                    self.finish(job, outcome.shm.load(outcome.value or b""))
                    return
                if outcome.ok:
                    record.ref = Ref(data=outcome.value) if outcome.path is None else Ref(
                        url=f"{record.agent_url}/files/download?path={quote(outcome.path)}",
                        headers=self.headers or None)
                    self.finish(job, pickle.loads(outcome.value or b"" if raw is None else raw))
                    return
                if self.retry(job, state):
                    return
                if not outcome.died:
                    self.finish(job, exc=remote_exception(outcome))
                    return
            if self.retry(job, state):
                return
            self.finish(job, exc=TaskError(record.task_id or "", state, status.get("reason"),
                                           status.get("message")))
        except Exception as exc:  # a result that does not unpickle here
            self.finish(job, exc=exc)

    def retry(self, job: Job, state: str) -> bool:
        """Launch ``job`` again if it has retries left and ``state`` may be retried."""
        if job.retries <= 0 or state in NO_RETRY_STATES or job.over():
            return False
        job.retries -= 1
        log.info("retrying %s (%s); %d retries left", job.record.task_id, state, job.retries)
        self.relaunch(job)
        return True
