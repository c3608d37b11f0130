"""``mesonb agent`` as a real process: listening line, SIGTERM shutdown, safety refusal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from pathlib import Path

import pytest
from agent_peer import FakeMaster, command_task, leftovers, new_id

from mesonb.agent.containerizer import kill_session
from mesonb.protocol.agent import AgentCallType
from mesonb.protocol.states import TaskState

pytestmark = pytest.mark.slow
ROOT = str(Path(__file__).resolve().parents[2])
LISTENING = re.compile(rb"agent listening on http://127\.0\.0\.1:(\d+)")


async def start_agent(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"}
    env.pop("MESONB_SECRET", None)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mesonb.agent.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True, env=env)


def test_sigterm_stops_the_agent_and_its_tasks(tmp_path: Path) -> None:
    async def main() -> None:
        master = FakeMaster()
        await master.start()
        proc = await start_agent("--master", master.address, "--port", "0",
                                 "--work-dir", str(tmp_path), "--resources", "cpus:2;mem:512",
                                 "--executor-shutdown-grace-period", "1")
        sessions: set[int] = set()
        output = b""
        try:
            while not LISTENING.search(output):
                line = await asyncio.wait_for(proc.stdout.readline(), 20)
                assert line, output.decode()
                output += line
            drain = asyncio.ensure_future(proc.stdout.read())  # keep the pipe from filling
            await master.until(lambda: master.of_type(AgentCallType.REGISTER))
            reg = master.of_type(AgentCallType.REGISTER)[0].register
            assert reg.agent_info.port == int(LISTENING.search(output)[1])
            task_id = new_id()
            master.run_task(command_task(task_id, "trap '' TERM; sleep 60"))
            await master.update(task_id, TaskState.TASK_STARTING)
            running = await master.update(task_id, TaskState.TASK_RUNNING)
            assert running.status.executor_id == task_id
            for pid in _pids_in(tmp_path):
                sessions.add(os.getsid(pid))
            assert sessions
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 20) == 0
            assert b"agent stopped" in await drain
            await master.until(lambda: master.of_type(AgentCallType.UNREGISTER))
            assert not leftovers(sessions)
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
            for sid in sessions:
                kill_session(sid)
            await master.stop()

    asyncio.run(main())


def _pids_in(work_dir: Path) -> list[int]:
    """Processes whose working directory is inside ``work_dir`` (the executors and tasks)."""
    root = str(work_dir.resolve())
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if cwd.startswith(root):
                out.append(int(entry))
    return out


def test_refuses_a_public_address_without_a_secret(tmp_path: Path) -> None:
    async def main() -> tuple[int, bytes]:
        proc = await start_agent("--master", "127.0.0.1:1", "--ip", "0.0.0.0", "--port", "0",
                                 "--work-dir", str(tmp_path))
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        return proc.returncode, out

    code, out = asyncio.run(main())
    assert code == 2
    assert b"refusing to listen on 0.0.0.0 without a secret" in out


def test_bad_flags_are_reported(tmp_path: Path) -> None:
    async def main(*args: str) -> tuple[int, bytes]:
        proc = await start_agent("--work-dir", str(tmp_path), *args)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        return proc.returncode, out

    code, out = asyncio.run(main("--master", "127.0.0.1:5050", "--resources", "cpus:lots"))
    assert code == 2
    assert b"cpus:lots" in out
    code, out = asyncio.run(main("--master", "zk://zk1:2181"))
    assert code == 2
    assert b"zk://" in out
