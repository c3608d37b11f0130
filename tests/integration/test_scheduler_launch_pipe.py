"""The scheduler driver's launches on the pipelined lane (mesonb.frameworks.calls_pipe)
against a real master: launch_now's answer is the one launch gets the usual way, and a
call sent the usual way after it reaches the master after it (the pipe is drained
first); the other calls stay on the lane connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mesonb.config import MasterConfig
from mesonb.frameworks.driver import SchedulerDriver
from mesonb.http.client import HTTPError
from mesonb.http.lane import LaneConnection
from mesonb.master.daemon import MasterDaemon
from mesonb.testing.frameworks import Recorder

pytestmark = pytest.mark.slow


@pytest.fixture
async def master(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MasterDaemon]:
    monkeypatch.setenv("MESONB_INPROC", "0")  # the driver in this process goes over sockets
    credentials = tmp_path / "credentials"
    credentials.write_text("alice alice-pw\n")
    credentials.chmod(0o600)
    daemon = MasterDaemon(MasterConfig(port=0, work_dir=tmp_path, secret="s",
                                       credentials=credentials))
    await daemon.start()
    yield daemon
    await daemon.stop()


def task(name: str) -> dict[str, Any]:
    return {"name": name, "task_id": {"value": name}, "agent_id": {"value": "no-agent"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
            "command": {"shell": True, "value": "true"}}


async def test_a_pipelined_launch_answers_as_the_usual_way_and_keeps_its_place(
        master: MasterDaemon) -> None:
    driver = SchedulerDriver(master.address, {"user": "u", "name": "pipe"}, Recorder(),
                             secret="alice:alice-pw")
    await driver.start(timeout=10)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while driver._pipe is None or not driver._pipe.ready():
            assert loop.time() < deadline, "the pipe did not open"
            await asyncio.sleep(0.01)
        try:  # the usual way: an offer the master does not know
            await driver.launch(["no-such-offer"], [task("usual")])
            usual = 202
        except HTTPError as exc:
            usual = exc.status
        answer = driver.launch_now(["no-such-offer"], [task("piped")])
        assert answer is not None
        framework = master.master.book.frameworks[driver.framework_id]  # type: ignore[index]
        await driver.suppress()  # the usual way, after the pipe's launch was carried out
        assert answer.done() and answer.result().status == usual
        assert framework.suppressed_roles
        calls = driver._calls
        assert isinstance(calls, LaneConnection) and calls._writer is not None
    finally:
        await driver.stop()
