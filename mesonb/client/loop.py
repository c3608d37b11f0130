"""The client's event loop, in a background thread of its own.

The client's async core (driver, scheduler, an embedded cluster) lives on this loop, so
the sync API works the same in a plain script and in a Jupyter kernel whose own loop is
already running: sync methods hand coroutines over with
:func:`asyncio.run_coroutine_threadsafe` and wait on the result, never on the caller's
loop.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from mesonb.tasks import spawn

__all__ = ["spawn"]  # for views, which reach mesonb only through the client

T = TypeVar("T")


class LoopThread:
    """An event loop running forever in a daemon thread.

    >>> lt = LoopThread("example")
    >>> async def two(): return 2
    >>> lt.run(two())
    2
    >>> lt.stop()
    """

    def __init__(self, name: str = "mesonb-client") -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self.thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (not from the loop's thread)."""
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError("a blocking mesonb call was made on the client's own event "
                               "loop (inside a callback); use the async form or a thread")
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer within {timeout:g}s") from None

    def call_soon(self, fn: Any, *args: Any) -> None:
        if self.in_loop_thread():
            fn(*args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        """Cancel what still runs on the loop, let it finish, then stop the loop."""
        if self.loop.is_closed():
            return
        if self.in_loop_thread():
            self.loop.stop()
            return
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(_cancel_all(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def _cancel_all() -> None:
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def at_exit(fn: Callable[[], None], remove: bool = False) -> None:
    """Run ``fn`` when the interpreter exits, before thread pools shut down.

    ``atexit`` hooks run after :mod:`concurrent.futures` has refused new work (its own
    hook runs first, from :mod:`threading`), and stopping a cluster needs threads (the
    registry, ZooKeeper); ``threading``'s exit hooks run before that one. Falls back to
    :mod:`atexit` where that private hook is missing."""
    hooks = getattr(threading, "_threading_atexits", None)
    register = getattr(threading, "_register_atexit", None)
    if remove:
        if hooks is not None and fn in hooks:
            hooks.remove(fn)
        atexit.unregister(fn)
    elif register is not None and hooks is not None:
        try:
            register(fn)
            return
        except RuntimeError:  # already shutting down
            pass
        atexit.register(fn)
    else:
        atexit.register(fn)
