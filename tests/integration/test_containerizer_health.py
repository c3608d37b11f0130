"""Health checks and checks of command tasks, run by the agent itself (frameworks that do
not checkpoint) and by the command executor process (frameworks that do)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from agent_peer import framework_info
from test_containerizer_limits import Harness, task

from mesonb.agent.isolation import ContainerizerConfig
from mesonb.protocol.states import Reason, TaskState

pytestmark = pytest.mark.slow

FAST = {"delay_seconds": 0, "interval_seconds": 0.2, "timeout_seconds": 1,
        "grace_period_seconds": 0}


def serve(port: int) -> str:
    code = ("import socket, time\n"
            "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('127.0.0.1', {port})); s.listen()\n"
            "while True:\n"
            "    c, _ = s.accept(); c.recv(1024)\n"
            "    c.sendall(b'HTTP/1.0 204 No Content\\r\\n\\r\\n'); c.close()\n")
    return f"{sys.executable} -c \"{code}\""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ended(updates: list[Any]) -> bool:
    return bool(updates) and updates[-1].status.state.terminal


async def acked_updates(m: Any, task_id: str, predicate: Any, acked: set[bytes]) -> list[Any]:
    def step() -> list[Any] | None:
        updates = m.updates(task_id)
        for u in updates:
            if u.status.uuid not in acked:
                acked.add(u.status.uuid)
                m.ack(u)
        return updates if predicate(updates) else None

    return await m.until(step, 30)


@pytest.mark.parametrize("checkpoint", [False, True], ids=["in-agent", "executor"])
def test_health_checks_and_checks(tmp_path: Path, checkpoint: bool) -> None:
    framework = framework_info(checkpoint=checkpoint)

    async def body(h: Any) -> None:
        m = h.master
        port = free_port()
        healthy = task("healthy", serve(port))
        healthy.extra["health_check"] = {  # failures while it starts: in the grace period
            "type": "HTTP", "http": {"port": port, "path": "/"}, **FAST,
            "grace_period_seconds": 20}
        healthy.extra["check"] = {"type": "TCP", "tcp": {"port": port}, **FAST}
        m.run_task(healthy, framework)
        acked: set[bytes] = set()
        updates = await acked_updates(m, "healthy", lambda us: any(
            u.status.healthy is True for u in us) and any(
            u.status.extra.get("check_status", {}).get("tcp") == {"succeeded": True}
            for u in us), acked)
        health = [u.status for u in updates if u.status.healthy is not None]
        assert health[0].healthy is True and health[0].state is TaskState.TASK_RUNNING
        assert health[0].reason is Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
        checks = [u.status for u in updates if "check_status" in u.status.extra]
        assert checks[-1].extra["check_status"] == {"type": "TCP", "tcp": {"succeeded": True}}
        check = checks[-1]
        assert check.reason is Reason.REASON_TASK_CHECK_STATUS_UPDATED

        doomed = task("doomed", "sleep 60")
        doomed.extra["health_check"] = {"type": "TCP", "tcp": {"port": free_port()},
                                        "consecutive_failures": 2, **FAST}
        m.run_task(doomed, framework)
        updates = await acked_updates(m, "doomed", ended, set())
        unhealthy = [u.status for u in updates if u.status.healthy is False
                     and u.status.state is TaskState.TASK_RUNNING]
        assert len(unhealthy) >= 2
        final = updates[-1].status
        assert final.state is TaskState.TASK_KILLED and final.healthy is False
        m.kill("healthy")
        await acked_updates(m, "healthy", ended, acked)

    async def main() -> None:
        async with Harness(tmp_path, ContainerizerConfig()) as harness:
            await asyncio.wait_for(body(harness), 90)

    asyncio.run(main())


def test_an_unhealthy_task_of_a_group_is_killed_with_its_group(tmp_path: Path) -> None:
    from mesonb.protocol.mesos import ExecutorInfo

    async def body(h: Any) -> None:
        m = h.master
        sick, other = task("sick", "sleep 60"), task("other", "sleep 60")
        sick.extra["health_check"] = {"type": "COMMAND", "command": {"value": "exit 1"},
                                      "consecutive_failures": 2, **FAST}
        m.run_group([sick, other], ExecutorInfo.from_json(
            {"executor_id": {"value": "pod"}, "type": "DEFAULT"}))
        updates = await acked_updates(m, "sick", ended, set())
        assert sum(u.status.healthy is False for u in updates) >= 2
        assert updates[-1].status.state is TaskState.TASK_KILLED
        assert updates[-1].status.healthy is False
        others = await acked_updates(m, "other", ended, set())
        assert others[-1].status.state is TaskState.TASK_KILLED

    async def main() -> None:
        async with Harness(tmp_path, ContainerizerConfig()) as harness:
            await asyncio.wait_for(body(harness), 90)

    asyncio.run(main())


def test_a_malformed_health_check_is_task_error(tmp_path: Path) -> None:
    async def body(h: Any) -> None:
        m = h.master
        bad = task("bad-check", "sleep 60")
        bad.extra["health_check"] = {"type": "HTTP", "http": {"port": 0}}
        m.run_task(bad, framework_info())
        update = await m.terminal("bad-check")
        assert update.status.state is TaskState.TASK_ERROR
        assert update.status.reason is Reason.REASON_TASK_INVALID
        assert update.status.message == ("Task's health check is invalid: health_check.http.port:"
                                         " must be a port number (1-65535), not 0")

    async def main() -> None:
        async with Harness(tmp_path, ContainerizerConfig()) as harness:
            await asyncio.wait_for(body(harness), 60)

    asyncio.run(main())


# -- functions calls: the functions executor runs the call's checks ----------------------
def listen_for(port: int, seconds: float) -> str:
    """A call that serves ``port`` for a while (what a health check probes)."""
    import socket
    import time

    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        time.sleep(seconds)
    return "served"


def sleep_for(seconds: float) -> str:
    import time

    time.sleep(seconds)
    return "slept"


def call_statuses(cluster: Any, name: str) -> list[dict[str, Any]]:
    """Every status the master recorded for the calls named ``name``."""
    state = cluster._lt.run(cluster._get_json("/master/state"), 10)
    return [s for f in state["frameworks"] for t in f["tasks"] + f["completed_tasks"]
            if t["name"] == name for s in t.get("statuses", ())]


def test_a_call_with_a_health_check_reports_healthy_and_an_unhealthy_one_is_killed() -> None:
    from mesonb import Cluster
    from mesonb.client import TaskError
    from mesonb.protocol.checks import HealthCheck

    port, dead_port = free_port(), free_port()
    with Cluster.local(agents=1, resources="cpus:2;mem:2048;disk:1024") as cluster:
        with pytest.raises(ValueError, match=r"health_check.tcp.port: must be a port"):
            cluster.submit(sleep_for, 1, health_check={"type": "TCP", "tcp": {}})
        check = HealthCheck.tcp(port, delay_seconds=0, interval_seconds=0.2,
                                timeout_seconds=1, grace_period_seconds=20)
        healthy = cluster.submit(listen_for, port, 2.5, name="served", cpus=0.1,
                                 mem="64MiB", health_check=check)
        sick = cluster.submit(sleep_for, 60, name="sick", cpus=0.1, mem="64MiB",
                              health_check={"type": "TCP", "tcp": {"port": dead_port},
                                            "consecutive_failures": 2, **FAST})
        assert healthy.result(60) == "served"
        with pytest.raises(TaskError) as failed:
            sick.result(60)
        assert failed.value.state == "TASK_KILLED"
        assert failed.value.message == (f"health check TCP port {dead_port} failed 2 times "
                                        "in a row")
        served = call_statuses(cluster, "served")
        marked = [s for s in served if "healthy" in s]
        assert marked and marked[0]["healthy"] is True and marked[0]["state"] == "TASK_RUNNING"
        assert served[-1]["state"] == "TASK_FINISHED"
        unhealthy = [s for s in call_statuses(cluster, "sick") if s.get("healthy") is False]
        assert [s["state"] for s in unhealthy][-1] == "TASK_KILLED"
        assert sum(s["state"] == "TASK_RUNNING" for s in unhealthy) >= 1


def test_the_functions_executor_sends_health_and_check_updates(tmp_path: Path) -> None:
    """What the client cannot show: the updates themselves, as the agent forwards them."""
    import cloudpickle

    from mesonb.client.calls import executor_env
    from mesonb.frameworks.functions.protocol import Call
    from mesonb.frameworks.functions.scheduler import FunctionsScheduler
    from mesonb.protocol.mesos import ExecutorInfo

    async def body(h: Any) -> None:
        m = h.master
        port = free_port()
        info = FunctionsScheduler(executor_env()).executor_info()
        executor = ExecutorInfo.from_json({**info, "executor_id": {"value": "functions-1"}})
        call = task("call", "unused", mem=256)  # a worker holds its interpreter
        call.command = None
        call.data = Call(call=cloudpickle.dumps((listen_for, (port, 2.0), {}))).encode()
        call.extra["health_check"] = {"type": "TCP", "tcp": {"port": port}, **FAST,
                                      "grace_period_seconds": 20}
        call.extra["check"] = {"type": "TCP", "tcp": {"port": port}, **FAST}
        m.run_task(call, framework_info(), executor)
        updates = [u.status for u in await acked_updates(m, "call", ended, set())]
        assert updates[-1].state is TaskState.TASK_FINISHED
        health = [s for s in updates if s.healthy is not None]
        assert health[0].healthy is True and health[0].state is TaskState.TASK_RUNNING
        assert health[0].reason is Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
        checks = [s for s in updates if "check_status" in s.extra]
        assert {"type": "TCP", "tcp": {"succeeded": True}} in [
            s.extra["check_status"] for s in checks]
        assert all(s.reason is Reason.REASON_TASK_CHECK_STATUS_UPDATED for s in checks)
        assert updates.index(checks[-1]) < len(updates) - 1  # none after the terminal one

    async def main() -> None:
        async with Harness(tmp_path, ContainerizerConfig()) as harness:
            await asyncio.wait_for(body(harness), 60)

    asyncio.run(main())
