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
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mesonb.frameworks.functions.protocol import LogSlice

    from .cluster import Cluster


@dataclass
class Logs:
    """A task's stdout and stderr text."""

    stdout: str
    stderr: str

    def __str__(self) -> str:
        return self.stdout + (f"\n--- stderr ---\n{self.stderr}" if self.stderr else "")


@dataclass
class CommandResult:
    """What ``cluster.run(...)`` yields: like :class:`subprocess.CompletedProcess`."""

    returncode: int
    stdout: str
    stderr: str


class FutureInCall(TypeError):
    """A future was met while pickling a call: it is no argument placeholder."""


class Future(concurrent.futures.Future):
    """One task's future. ``cancel()`` KILLs a launched task; ``await fut`` works.

    ``task_id`` is the current Mesos task id (it changes when ``retries`` relaunch).
    """

    def __init__(self, cluster: Cluster, key: str, name: str, command: bool = False) -> None:
        super().__init__()
        self._cluster = cluster
        self.key = key
        self.name = name
        self.task_id: str | None = None
        self.attempts = 0
        self._command = command  # a cluster.run shell command, not a function call
        self._ref: Any = None  # protocol.Ref of the result, for dependent tasks
        self._logs: tuple[LogSlice | None, LogSlice | None] | None = None  # what it printed
        self._running_logs: tuple[LogSlice | None, LogSlice | None] | None = None  # starts
        self._agent_url: str | None = None

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise FutureInCall("a mesonb Future cannot be pickled: pass it as an argument of "
                           "submit (or inside one list, tuple, set or dict), or pass its "
                           "value, fut.result()")

    def __repr__(self) -> str:
        state = self._state.lower()
        return f"<mesonb.Future {self.name} {self.task_id or self.key} {state}>"

    def _repr_html_(self) -> str:
        from mesonb.widgets.templates import future_html

        return future_html(self)

    def explain(self, timeout: float = 30.0) -> Any:
        """Why is this call still pending? Which resources no agent had free, which
        agents came closest (:class:`mesonb.widgets.explain.Explanation`)."""
        from mesonb.widgets.explain import explain_future

        return explain_future(self, timeout)

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

    def _settle(self, value: Any = None, exc: BaseException | None = None) -> None:
        """Set the outcome unless it was cancelled meanwhile."""
        try:
            if exc is not None:
                self.set_exception(exc)
            else:
                self.set_result(value)
        except concurrent.futures.InvalidStateError:
            pass


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
