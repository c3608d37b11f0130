"""Fast launches: a command task costs no Python interpreter of its own (the agent plays
its command executor), and no spawn in the agent's launch path uses ``preexec_fn``."""

from __future__ import annotations

import ast
import asyncio
import os
from pathlib import Path

import psutil
import pytest
from test_containerizer_limits import Harness, reach, task

import mesonb
from mesonb.agent.containerizer import session_members
from mesonb.agent.isolation import ContainerizerConfig
from mesonb.protocol.states import TaskState

pytestmark = pytest.mark.slow


def test_a_command_task_is_only_its_command(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        m = h.master
        m.run_task(task("plain", "sleep 30"))
        await reach(m, "plain", TaskState.TASK_RUNNING)
        container = h.executor("plain").container
        names = {psutil.Process(pid).name() for pid in session_members(container.pid)}
        assert names <= {"sleep", "sh"}, names  # no executor interpreter
        assert psutil.Process(container.pid).ppid() == os.getpid()  # the agent's child
        m.kill("plain")
        assert (await m.terminal("plain")).status.state is TaskState.TASK_KILLED

    async def main() -> None:
        async with Harness(tmp_path, ContainerizerConfig()) as harness:
            await asyncio.wait_for(body(harness), 60)

    asyncio.run(main())


def test_no_preexec_fn_in_the_agent() -> None:
    """``preexec_fn`` costs ~2 ms a spawn here (and is unsafe with threads)."""
    root = Path(mesonb.__file__).parent
    found = [f"{path.relative_to(root)}:{node.lineno}"
             for directory in ("agent", "executor") for path in (root / directory).rglob("*.py")
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.keyword) and node.arg == "preexec_fn"]
    assert found == []
