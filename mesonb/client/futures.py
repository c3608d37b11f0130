"""Futures for calls on the cluster: :class:`concurrent.futures.Future`, awaitable too.

Example::

    fut = cluster.submit(pow, 2, 10)
    fut.result(timeout=30)        # 1024
    await fut                     # in asyncio code (a notebook cell)
    fut.logs().stdout             # what the call printed

:func:`as_completed` and :func:`wait` are :mod:`concurrent.futures`'s, so they mix with
any other futures.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any

from mesonb.frameworks.functions.results import CallRecord, CommandResult, Logs

if TYPE_CHECKING:
    from mesonb.frameworks.functions.protocol import LogSlice, Ref


__all__ = ["CommandResult", "Future", "FutureInCall", "Logs", "as_completed", "wait"]
_FINISHED = concurrent.futures._base.FINISHED
_UNSET = (concurrent.futures._base.PENDING, concurrent.futures._base.RUNNING)
_DONE = frozenset({concurrent.futures._base.CANCELLED,
                   concurrent.futures._base.CANCELLED_AND_NOTIFIED, _FINISHED})


class FutureInCall(TypeError):
    """A future was met while pickling a call: it is no argument placeholder."""


class Future(concurrent.futures.Future):
    """One task's future. ``cancel()`` KILLs a launched task; ``await fut`` works.

    ``task_id`` is the current Mesos task id (it changes when ``retries`` relaunch).
    """

    def __init__(self, cluster: Any, key: str, name: str, command: bool = False) -> None:
        """``cluster``: the :class:`~.cluster.Cluster` whose call this is."""
        super().__init__()
        self._cluster = cluster
        self.key = key
        self.name = name
        self.record = CallRecord(command=command)  # the current attempt, as the framework sees it
        self.submitted = time.time()
        self.launched: float | None = None  # when its task was sent to an agent
        self.started: float | None = None  # when its task was last seen running
        # set by _settle_quiet until _announce: the wait()/as_completed waiters to tell
        self._untold: tuple[Any, ...] | None = None

    # the current attempt (retries relaunch under a new task id)
    task_id = property(lambda self: self.record.task_id)
    attempts = property(lambda self: self.record.attempts)

    @property
    def _command(self) -> bool:
        return self.record.command

    @property
    def _ref(self) -> Ref | None:
        return self.record.ref

    @property
    def _logs(self) -> tuple[LogSlice | None, LogSlice | None] | None:
        return self.record.logs

    @property
    def _running_logs(self) -> tuple[LogSlice | None, LogSlice | None] | None:
        return self.record.running_logs

    @property
    def _agent_url(self) -> str | None:
        return self.record.agent_url

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise FutureInCall("a mesonb Future cannot be pickled: pass it as an argument of "
                           "submit (or inside one list, tuple, set or dict), or pass its "
                           "value, fut.result()")

    @property
    def phase(self) -> str:
        """``"pending"``, ``"running"`` (sent to an agent), ``"finished"``, ``"error"`` or
        ``"cancelled"``."""
        if self.cancelled():
            return "cancelled"
        if self.done():
            return "error" if self.exception() is not None else "finished"
        return "running" if self.launched is not None else "pending"

    def __repr__(self) -> str:
        return f"<mesonb.Future {self.name} {self.key} {self.phase}>"

    def _repr_html_(self) -> str:
        from .reprs import future_html

        return future_html(self)

    def status(self, timeout: float = 5.0) -> str:
        """What the call is doing, in words: ``"pending: <reason>"`` (waiting for its
        dependencies, for resources — and which — or for an offer), ``"running on
        host:port for 2.0 s"`` (since it was sent there), ``"done"``,
        ``"failed: <error>"``, ``"refused: <why>"`` or ``"cancelled"``."""
        return self._cluster._status(self, timeout)

    def explain(self, timeout: float = 30.0) -> Any:
        """Why is this call still pending? Which resources no agent had free, which
        agents came closest (:class:`mesonb.client.explain.Explanation`)."""
        from .explain import explain_future

        return explain_future(self, timeout)

    def done(self) -> bool:
        """True once finished or cancelled (as :meth:`concurrent.futures.Future.done`,
        without its lock: the state is one attribute, read whole, that never goes back)."""
        return self._state in _DONE

    def result(self, timeout: float | None = None) -> Any:
        """The call's value, or its exception raised here (a remote one with the user's
        frames of the remote traceback as its cause). :class:`TimeoutError` after
        ``timeout`` seconds names what the call is doing (``pending: <reason>``)."""
        if self._state == _FINISHED and self._exception is None:
            return self._result  # set for good: no lock round trip (as the slow path gives)
        try:
            return super().result(timeout)
        except BaseException as exc:
            raise self._shown(exc, timeout)  # noqa: B904 - _shown decides the context

    def _result_within(self, wait: float | None, timeout: float | None) -> Any:
        """:meth:`result`, waiting at most ``wait`` seconds; a TimeoutError names ``timeout``
        (the caller's, of which ``wait`` is what is left)."""
        if self._state == _FINISHED and self._exception is None:
            return self._result  # as in result()
        try:
            return super().result(wait)
        except BaseException as exc:
            raise self._shown(exc, timeout)  # noqa: B904 - _shown decides the context

    def _shown(self, exc: BaseException, timeout: float | None) -> BaseException:
        """What :meth:`result` raises for ``exc`` (returned, not raised, so that no frame
        of its own shows in the user's traceback): a TimeoutError that names the call and
        what it is doing, without the chain; a cancellation as it is; the call's own error
        with the remote frames (the user's) in place of concurrent.futures' plumbing."""
        if isinstance(exc, TimeoutError) and not self.done():
            shown = TimeoutError(f"{self.name} ({self.key}) did not finish within "
                                 f"{timeout:g} s; {self.status()}")
            shown.__suppress_context__ = True
            return shown
        if isinstance(exc, concurrent.futures.CancelledError):
            return exc
        remote = getattr(exc, "_mesonb_remote_traceback", None)
        return exc.with_traceback(remote)

    def cancel(self) -> bool:
        """Cancel a queued call, or KILL its running task; False once finished.

        The future is done at once (``wait``, ``as_completed`` and executor shutdowns see
        it); the call's bookkeeping and out-of-band data are freed, and a launched task is
        KILLed, on the client's loop."""
        if not super().cancel():  # False once finished (these futures never run "RUNNING")
            return False
        with self._condition:  # waiters are told once, by the first cancel() to get here
            first = self._state == concurrent.futures._base.CANCELLED
            if first:
                self.set_running_or_notify_cancel()
        if first:
            self._cluster._cancel(self)
        return True

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self).__await__()

    def logs(self, timeout: float = 30.0) -> Logs:
        """The task's stdout and stderr so far (read from its agent's sandbox)."""
        return self._cluster._logs(self, timeout)

    def exec(self, command: str | list[str], timeout: float | None = None) -> CommandResult:
        """Run ``command`` inside this running call's container and return its
        :class:`CommandResult` (returncode, stdout, stderr), as ``mesonb task exec`` does:
        a shell line (``"ls -l logs"``) or an argv list, in the executor's sandbox, under
        the container's limits. RuntimeError when the call is not running; TimeoutError
        (the command killed) after ``timeout`` seconds.

        >>> fut.exec("ls").stdout  # doctest: +SKIP
        'logs\nresults\n'
        """
        from .exec_call import exec_in_call

        return exec_in_call(self, command, timeout)

    def _settle(self, value: Any = None, exc: BaseException | None = None) -> None:
        """Set the outcome unless it was cancelled meanwhile."""
        try:
            if exc is not None:
                self.set_exception(exc)
            else:
                self.set_result(value)
        except concurrent.futures.InvalidStateError:
            pass

    def _settle_quiet(self, value: Any = None, exc: BaseException | None = None) -> bool:
        """:meth:`_settle`, but nobody is woken yet: ``done()`` is true at once, and
        ``result()``, ``cancel()``, ``wait()`` and ``as_completed`` called from now on see
        the outcome, while the threads already blocked on it and the done callbacks are
        told by :meth:`_announce` (the client calls it once for the outcomes of a loop
        turn, so a caller waiting on several futures wakes once for all of them). False
        (nothing set, nothing to announce) when cancelled or settled before."""
        with self._condition:
            if self._state not in _UNSET:
                return False
            if exc is not None:
                self._exception = exc
            else:
                self._result = value
            self._state = _FINISHED
            # The waiters installed from now on see it finished and must not be told again
            # (as_completed would yield it twice): tell only those there now.
            self._untold = tuple(self._waiters)  # () when none: no allocation
        return True

    def _announce(self) -> None:
        """Wake what waits on an outcome set by :meth:`_settle_quiet`: what
        ``set_result``/``set_exception`` do after setting it (waiters, blocked threads,
        done callbacks), once."""
        untold = self._untold
        if untold is None:  # announced already (or never set quietly)
            return
        callbacks = self._done_callbacks  # type: ignore[attr-defined]
        blocked = self._condition._waiters  # type: ignore[attr-defined]
        if not untold and not blocked and not callbacks:
            # Nobody to wake: since it was set, no thread, waiter or callback can join
            # (they see it done), so these stay empty. No lock, no notify.
            self._untold = None
            return
        with self._condition:
            untold, self._untold = self._untold, None
            if untold is None:
                return
            failed = self._exception is not None
            for waiter in untold:
                if failed:
                    waiter.add_exception(self)
                else:
                    waiter.add_result(self)
            self._condition.notify_all()
        self._invoke_callbacks()  # type: ignore[attr-defined]


def results(futures: list[concurrent.futures.Future], timeout: float | None = None) -> list[Any]:
    """``[f.result(timeout) for f in futures]``: the same values, or the same exception (that
    of the first future, in order, that failed, was cancelled or was not done ``timeout``
    seconds after the one before it was), but the waiting thread is woken once when all
    are done (or one fails) instead of once for each future it caught up with: each wake
    costs both threads a switch and the GIL."""
    finishing: _Finishing | None = None
    values = []
    reached = time.monotonic()  # when the loop above would have come to this future
    for fut in futures:
        if not fut.done():
            if finishing is None:
                finishing = _Finishing(futures)
            finishing.wait(None if timeout is None else
                           max(0.0, reached + timeout - time.monotonic()))
        # done, or another failed or this one's time is up: as result(timeout) from here
        left = None if timeout is None else max(0.0, reached + timeout - time.monotonic())
        values.append(fut._result_within(left, timeout) if isinstance(fut, Future)
                      else fut.result(left))
        reached = time.monotonic()
    return values


class _Finishing:
    """Set once all of ``futures`` are done, or one of them failed or was cancelled."""

    def __init__(self, futures: list[concurrent.futures.Future]) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._left = len(futures)
        for fut in futures:
            fut.add_done_callback(self._done)

    def _done(self, fut: concurrent.futures.Future) -> None:
        # Cancelled or failed (fut.cancelled() or fut.exception(), without their locks:
        # a done future's state and exception are set for good).
        if fut._state != _FINISHED or fut._exception is not None:
            self._event.set()
            return
        with self._lock:
            self._left -= 1
            if self._left:
                return
        self._event.set()

    def wait(self, timeout: float | None) -> None:
        self._event.wait(timeout)


def as_completed(futures: Iterable[concurrent.futures.Future],
                 timeout: float | None = None) -> Iterable[concurrent.futures.Future]:
    """Yield futures as they finish (``concurrent.futures.as_completed``).

    >>> for fut in mesonb.as_completed(cluster.map(square, range(4))):  # doctest: +SKIP
    ...     print(fut.result())
    """
    return concurrent.futures.as_completed(list(futures), timeout)


def wait(futures: Iterable[concurrent.futures.Future], timeout: float | None = None,
         return_when: str = concurrent.futures.ALL_COMPLETED) -> Any:
    """``(done, not_done)`` sets, as :func:`concurrent.futures.wait`."""
    return concurrent.futures.wait(list(futures), timeout, return_when)
