"""Background work on an asyncio loop, kept alive and never silently lost.

``asyncio`` holds only a weak reference to a task, so a task nobody keeps may be
collected mid-flight, and an exception nobody reads surfaces only as "Task exception was
never retrieved" at collection time. :func:`spawn` is mesonb's one helper for
fire-and-forget work: it keeps the task in the owner's set until it ends and logs a
failure (a cancellation is not one)::

    self._background: set[asyncio.Future[Any]] = set()
    spawn(self.acknowledge(status), self._background, "acknowledgement")
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def spawn(
    work: Awaitable[T],
    keep: set[asyncio.Future[Any]],
    what: str = "background work",
    *,
    logger: logging.Logger | None = None,
    level: int = logging.WARNING,
) -> asyncio.Future[T]:
    """Run ``work`` in the background; ``keep`` holds it until it is done.

    A failure is logged to ``logger`` (this module's by default) at ``level``, naming
    ``what`` failed; the future is returned for callers that want to wait on it or cancel it.
    """
    future = asyncio.ensure_future(work)
    keep.add(future)

    def done(fut: asyncio.Future[Any]) -> None:
        keep.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            (logger or log).log(level, "%s failed: %s", what, fut.exception(),
                                exc_info=fut.exception() if level >= logging.ERROR else None)

    future.add_done_callback(done)
    return future
