"""Ports: PORT0.../PORTS in a task's environment, network/ports isolation, and launches
naming ports outside their offer refused with TASK_ERROR by a real master."""

from __future__ import annotations

import asyncio
import getpass
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_containerizer_limits import Harness, reach, task

from mesonb.agent.isolation import ContainerizerConfig
from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.resources import Resources
from mesonb.protocol.states import Reason, Source, TaskState
from mesonb.testing.processes import ProcessCluster

pytestmark = pytest.mark.slow


def with_ports(t: Any, *ranges: tuple[int, int]) -> Any:
    t.resources.append({"name": "ports", "type": "RANGES", "ranges": {
        "range": [{"begin": b, "end": e} for b, e in ranges]}})
    return t


def run(body: Any, work_dir: Path, config: ContainerizerConfig) -> None:
    async def main() -> None:
        async with Harness(work_dir, config) as harness:
            await asyncio.wait_for(body(harness), 90)

    asyncio.run(main())


def listen(*ports: int) -> str:
    code = ("import socket, time\n"
            "socks = []\n"
            f"for p in {list(ports)}:\n"
            "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "    s.bind(('127.0.0.1', p)); s.listen(); socks.append(s)\n"
            "open('listening', 'w').write(repr(time.time()))\n"
            "time.sleep(60)\n")
    return f"{sys.executable} -c \"{code}\""


def test_ports_in_the_environment_and_network_ports_isolation(tmp_path: Path) -> None:
    async def body(h: Any) -> None:
        m = h.master
        m.run_task(with_ports(task("env", 'echo "$PORT0 $PORT1 $PORT2 $PORT $PORTS"'),
                              (31010, 31011), (31020, 31020)))
        assert (await m.terminal("env")).status.state is TaskState.TASK_FINISHED
        assert (h.executor("env").directory / "stdout").read_text().strip() == (
            "31010 31011 31020 31010 31010,31011,31020")

        m.run_task(with_ports(task("good", listen(31030)), (31030, 31030)))
        m.run_task(with_ports(task("bad", listen(31040, 31041)), (31040, 31040)))
        await reach(m, "good", TaskState.TASK_RUNNING)
        failed = await m.terminal("bad")
        seen = time.time()
        status = failed.status
        assert status.state is TaskState.TASK_FAILED
        assert status.source is Source.SOURCE_AGENT
        assert status.reason is Reason.REASON_CONTAINER_LIMITATION
        assert "listening on port 31041" in status.message
        started = float((h.executor("bad").directory / "listening").read_text())
        assert seen - started < 1.0 + 0.5  # checked every 0.5 s
        assert m.states("good")[-1] is TaskState.TASK_RUNNING
        m.kill("good")
        await m.terminal("good")

    run(body, tmp_path, ContainerizerConfig(isolation="network/ports,disk/du"))


class OneLaunch:
    def __init__(self, task: dict[str, Any]) -> None:
        self.task = task
        self.driver: SchedulerDriver | None = None
        self.statuses: list[dict[str, Any]] = []
        self.done = asyncio.Event()

    async def on_offers(self, offers: list[dict[str, Any]]) -> None:
        assert self.driver is not None
        if self.task is None:
            await self.driver.decline([o["id"]["value"] for o in offers], 3600)
            return
        task, self.task = self.task, None
        task["agent_id"] = offers[0]["agent_id"]
        await self.driver.launch([offers[0]["id"]["value"]], [task])

    def on_update(self, status: dict[str, Any]) -> None:
        self.statuses.append(status)
        self.done.set()


async def test_ports_outside_the_offer_are_a_task_error(tmp_path: Path) -> None:
    cluster = ProcessCluster(tmp_path, agents=1).start()
    resources = Resources.parse("cpus:0.1;mem:32;ports:[40000-40000]").to_json()
    launcher = OneLaunch({"name": "p", "task_id": {"value": "p"}, "resources": resources,
                          "command": {"value": "true"}})
    driver = SchedulerDriver(cluster.address, {"user": getpass.getuser(), "name": "ports"},
                             launcher)
    launcher.driver = driver
    try:
        await driver.start()
        await asyncio.wait_for(launcher.done.wait(), 30)
        assert launcher.statuses[0]["state"] == "TASK_ERROR"
    finally:
        await driver.stop(teardown=True)
        cluster.stop()
