"""mesonb.tasks.spawn: background work is kept until done and its failures are logged."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from mesonb.tasks import spawn


async def test_a_spawned_task_is_kept_until_it_ends_and_its_result_is_there() -> None:
    keep: set[asyncio.Future[Any]] = set()
    gate = asyncio.Event()

    async def work() -> int:
        await gate.wait()
        return 7

    fut = spawn(work(), keep)
    assert keep == {fut}
    gate.set()
    assert await fut == 7
    await asyncio.sleep(0)  # the done callback runs on the next turn
    assert not keep


async def test_a_failure_is_logged_naming_the_work_and_a_cancel_is_not(
        caplog: pytest.LogCaptureFixture) -> None:
    keep: set[asyncio.Future[Any]] = set()

    async def broken() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.WARNING, logger="mesonb.tasks"):
        fut = spawn(broken(), keep, "acknowledgement")
        await asyncio.gather(fut, return_exceptions=True)
        await asyncio.sleep(0)
        cancelled = spawn(asyncio.sleep(10), keep, "sleeper")
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        await asyncio.sleep(0)
    assert not keep
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["acknowledgement failed: boom"]
