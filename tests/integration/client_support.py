"""Helpers the client tests share: polling with a deadline, the master's view of a task,
running a function on the client's loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mesonb.testing.processes import wait_for as _wait_for

SMALL = {"cpus": 0.1, "mem": "64MiB"}


def wait_for(condition: Callable[[], Any], what: str = "", timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it is truthy (its value); TimeoutError at the deadline."""
    return _wait_for(condition, timeout=timeout, what=what)


def task_state(cluster: Any, task_id: str) -> str | None:
    """The task's state as the master lists it (``cluster.tasks()``)."""
    return cluster.tasks().set_index("task_id")["state"].get(task_id)


def on_loop(cluster: Any, fn: Callable[[], Any]) -> Any:
    """``fn()`` on the client's loop, where its bookkeeping (and an embedded master)
    lives."""
    async def call() -> Any:
        return fn()

    return cluster._lt.run(call(), 10)
