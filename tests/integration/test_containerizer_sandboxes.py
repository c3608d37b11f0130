"""A real agent rotates a chatty task's stdout (the files API reads the live file) and
garbage collects finished sandboxes after --gc-delay."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from test_containerizer_limits import Harness, reach, task

from mesonb.agent.isolation import ContainerizerConfig
from mesonb.protocol.states import TaskState

pytestmark = pytest.mark.slow

CHATTY = ("i=0; while [ $i -lt 40 ]; do printf '%050d\\n' $i; i=$((i+1)); sleep 0.05; done;"
          " echo LAST-LINE; touch done; sleep 30")


def test_logs_rotate_and_sandboxes_are_collected(tmp_path: Path) -> None:
    async def body(h: Any) -> None:
        m = h.master
        m.run_task(task("chatty", CHATTY))
        await reach(m, "chatty", TaskState.TASK_RUNNING)
        sandbox = h.executor("chatty").directory
        await m.until(lambda: (sandbox / "done").exists())
        await m.until(lambda: (sandbox / "stdout.1").exists())
        rotated = (sandbox / "stdout.1").read_text()
        assert rotated and len(rotated) >= 500
        path = quote("/frameworks/fw-1/executors/chatty/runs/latest/stdout")

        async def live() -> str:
            body = (await h.http(f"/files/read?path={path}&offset=0&length=100000")).body
            return str(json.loads(body)["data"])

        assert "LAST-LINE" in await live() or "LAST-LINE" in rotated
        m.kill("chatty")
        await m.terminal("chatty")
        await m.until(lambda: not sandbox.exists(), 10)  # --gc-delay 0.5 s

    async def main() -> None:
        config = ContainerizerConfig(logrotate_max_size=500, logrotate_max_files=3,
                                     gc_delay=0.5)
        async with Harness(tmp_path / "work", config) as harness:
            await asyncio.wait_for(body(harness), 60)

    asyncio.run(main())
