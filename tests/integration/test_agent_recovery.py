"""Agent recovery with real processes: kill -9 the agent, restart it on the same work dir.

Mesos's semantics (docs/agent-recovery.md): executors of frameworks with checkpoint=true
keep running and re-subscribe to the restarted agent, which re-registers with the master
reporting their tasks; an update the executor could not deliver while the agent was down
arrives after the restart; an executor that died meanwhile has its tasks failed; one that
does not re-subscribe in time is killed; executors of other frameworks die with the agent;
a status update the framework has not acknowledged is sent again from the checkpoint.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import time
from pathlib import Path

import psutil
import pytest

from mesonb.agent import checkpoint, paths
from mesonb.agent.containerizer import is_alive, kill_session
from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.resources import Resources
from mesonb.testing.processes import Daemon, ProcessCluster, get_json

pytestmark = pytest.mark.slow


class Tracker:
    """Launches the tasks it is given on the first offer and records every status."""

    def __init__(self, tasks: list[dict]) -> None:
        self.to_launch = list(tasks)
        self.statuses: list[dict] = []
        self.driver: SchedulerDriver | None = None

    async def on_offers(self, offers: list[dict]) -> None:
        assert self.driver is not None
        for offer in offers:
            if not self.to_launch:
                await self.driver.decline([offer["id"]["value"]], 3600)
                continue
            tasks, self.to_launch = self.to_launch, []
            for task in tasks:
                task["agent_id"] = offer["agent_id"]
            await self.driver.launch([offer["id"]["value"]], tasks)

    def on_update(self, status: dict) -> None:
        self.statuses.append(status)

    def states(self, task_id: str) -> list[str]:
        return [s["state"] for s in self.statuses if s["task_id"]["value"] == task_id]

    def last(self, task_id: str) -> dict:
        return [s for s in self.statuses if s["task_id"]["value"] == task_id][-1]


def task(task_id: str, command: str) -> dict:
    return {"name": task_id, "task_id": {"value": task_id}, "command": {"value": command},
            "resources": Resources.parse("cpus:0.1;mem:32").to_json()}


async def until(condition, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def executors_by_task(agent: Daemon) -> dict[str, dict]:
    """The agent's /state executors, keyed by the id of each one's (single) task."""
    state = get_json(agent.url + "/state")
    out = {}
    for framework in state["frameworks"]:
        for executor in framework["executors"]:
            for t in executor["tasks"]:
                out[t["id"]] = executor
    return out


def session_leader(directory: str) -> int | None:
    """The executor process working in ``directory`` (it leads its own session)."""
    for proc in psutil.process_iter(["pid", "cwd"]):
        if proc.info.get("cwd") == directory and os.getsid(proc.pid) == proc.pid:
            return proc.pid
    return None


def processes_in(directory: str) -> list[int]:
    return [p.pid for p in psutil.process_iter(["pid", "cwd"])
            if (p.info.get("cwd") or "").startswith(directory)]


async def test_agent_restart_recovers_checkpointed_executors(tmp_path: Path) -> None:
    port = free_port()
    agent_args = ["--port", str(port), "--executor-reregistration-timeout", "3"]
    cluster = ProcessCluster(tmp_path, agents=1, agent_args=agent_args)
    cluster.start()
    go = tmp_path / "go"
    ckpt = Tracker([
        task("long", "sleep 300"),
        task("short", f"while [ ! -f {go} ]; do sleep 0.05; done"),  # ends while agent down
        task("doomed", "sleep 300"),  # its executor is killed while the agent is down
        task("frozen", "sleep 300"),  # its executor cannot re-subscribe in time
    ])
    plain = Tracker([task("plain", "sleep 300")])
    ckpt_driver = SchedulerDriver(cluster.address, {
        "user": "tester", "name": "ckpt", "checkpoint": True, "failover_timeout": 60}, ckpt)
    plain_driver = SchedulerDriver(cluster.address, {
        "user": "tester", "name": "plain", "failover_timeout": 60}, plain)
    ckpt.driver, plain.driver = ckpt_driver, plain_driver
    frozen_pid = None
    try:
        await ckpt_driver.start()
        await plain_driver.start()
        everything = ["long", "short", "doomed", "frozen"]
        await until(lambda: all("TASK_RUNNING" in ckpt.states(t) for t in everything), 30,
                    "checkpointed tasks running")
        await until(lambda: "TASK_RUNNING" in plain.states("plain"), 20, "plain task running")
        agent = cluster.agents[0]
        executors = await asyncio.to_thread(executors_by_task, agent)
        pids = {t: session_leader(e["directory"]) for t, e in executors.items()}
        assert all(pids.values()), pids
        work_dir = tmp_path / "agent0"
        agent_id = (work_dir / "meta/slaves/latest").readlink().name

        agent.kill()  # kill -9: no goodbye, executors in their own sessions survive

        # The executor of the framework without checkpointing exits, and its task with it.
        plain_dir = executors["plain"]["directory"]
        await until(lambda: not processes_in(plain_dir), 20, "the plain executor to exit")
        for t in everything:
            assert is_alive(pids[t]), f"executor of {t} died with the agent"
        go.touch()  # "short" finishes while the agent is down
        kill_session(pids["doomed"], signal.SIGKILL)
        await until(lambda: not is_alive(pids["doomed"]), 10, "the doomed executor to die")
        frozen_pid = pids["frozen"]
        os.kill(frozen_pid, signal.SIGSTOP)  # cannot re-subscribe

        restarted = cluster.start_agent(0)
        await asyncio.to_thread(cluster.wait_agents, 1, 30)
        assert (work_dir / "meta/slaves/latest").readlink().name == agent_id
        assert (work_dir / "meta/boot_id").exists()

        # The update sent while the agent was down reaches the framework after the restart.
        await until(lambda: "TASK_FINISHED" in ckpt.states("short"), 30, "short FINISHED")
        # The executor that died meanwhile: its task fails.
        await until(lambda: "TASK_FAILED" in ckpt.states("doomed"), 30, "doomed FAILED")
        doomed = ckpt.last("doomed")
        assert doomed["reason"] == "REASON_EXECUTOR_TERMINATED"
        assert doomed["source"] == "SOURCE_AGENT"
        # The executor that did not re-subscribe in time is killed; its task fails.
        await until(lambda: "TASK_FAILED" in ckpt.states("frozen"), 30, "frozen FAILED")
        assert ckpt.last("frozen")["reason"] == "REASON_EXECUTOR_REREGISTRATION_TIMEOUT"
        await until(lambda: not is_alive(frozen_pid), 10, "the frozen executor killed")
        # The task of the framework without checkpointing is gone.
        await until(lambda: plain.states("plain")[-1] in ("TASK_LOST", "TASK_DROPPED"), 30,
                    "plain LOST")

        # "long" runs on in the same executor process, which the new agent can still drive.
        assert is_alive(pids["long"])
        assert ckpt.states("long")[-1] == "TASK_RUNNING"
        # The other executors leave /state once the framework's acknowledgements of their
        # tasks' terminal updates reach the agent (the framework saw the updates already).
        await until(lambda: set(executors_by_task(restarted)) == {"long"}, 20,
                    "the acknowledged executors to leave /state")
        now = await asyncio.to_thread(executors_by_task, restarted)
        assert set(now) == {"long"}
        assert session_leader(now["long"]["directory"]) == pids["long"]
        before = len(ckpt.statuses)
        await ckpt_driver.reconcile([("long", None)])
        await until(lambda: len(ckpt.statuses) > before, 10, "reconciliation")
        assert ckpt.last("long")["state"] == "TASK_RUNNING"
        await ckpt_driver.kill("long")
        await until(lambda: "TASK_KILLED" in ckpt.states("long"), 20, "long KILLED")
        await until(lambda: not is_alive(pids["long"]), 20, "long's executor to exit")
        # Nothing was launched twice: one run directory per executor.
        runs = [p for p in (work_dir / "slaves").glob("*/frameworks/*/executors/*/runs/*")
                if p.name != paths.LATEST]
        assert len(runs) == 5
    finally:
        if frozen_pid is not None:
            with_cont = psutil.pid_exists(frozen_pid)
            if with_cont:
                os.kill(frozen_pid, signal.SIGCONT)
        await ckpt_driver.stop(teardown=True)
        await plain_driver.stop(teardown=True)
        cluster.stop()


async def test_recover_cleanup_kills_old_executors_and_exits(tmp_path: Path) -> None:
    port = free_port()
    cluster = ProcessCluster(tmp_path, agents=1, agent_args=["--port", str(port)])
    cluster.start()
    tracker = Tracker([task("old", "sleep 300")])
    driver = SchedulerDriver(cluster.address, {
        "user": "tester", "name": "ckpt", "checkpoint": True, "failover_timeout": 60}, tracker)
    tracker.driver = driver
    try:
        await driver.start()
        await until(lambda: "TASK_RUNNING" in tracker.states("old"), 30, "task running")
        executors = await asyncio.to_thread(executors_by_task, cluster.agents[0])
        pid = session_leader(executors["old"]["directory"])
        assert pid is not None
        cluster.agents[0].kill()
        assert is_alive(pid)
        cluster.agent_args = ["--port", str(port), "--recover", "cleanup"]
        cleanup = cluster.start_agent(0)
        assert await asyncio.to_thread(cleanup.proc.wait, 30) == 0
        assert not is_alive(pid)
        assert "TASK_FAILED" not in tracker.states("old")  # it never registered
        cluster.agent_args = ["--port", str(port)]
        cluster.start_agent(0)  # the next normal start reports the task's end
        await until(lambda: "TASK_FAILED" in tracker.states("old"), 30, "old FAILED")
        assert tracker.last("old")["reason"] == "REASON_EXECUTOR_TERMINATED"
    finally:
        await driver.stop(teardown=True)
        cluster.stop()


def uuid_of(status: dict) -> bytes:
    return base64.b64decode(status["uuid"])


def acknowledged_in_journal(work_dir: Path, task_id: str) -> set[bytes]:
    """The uuids the agent recorded as acknowledged in the task's ``task.updates``."""
    acks: set[bytes] = set()
    pattern = f"meta/slaves/*/frameworks/*/executors/*/runs/*/tasks/{task_id}/task.updates"
    for path in work_dir.glob(pattern):
        acks |= {base64.b64decode(r["uuid"]) for r in checkpoint.read_json_lines(path)
                 if isinstance(r, dict) and r.get("type") == "ACK"}
    return acks


async def test_unacknowledged_update_is_resent_from_checkpoint_after_agent_restart(
        tmp_path: Path) -> None:
    port = free_port()
    cluster = ProcessCluster(tmp_path, agents=1, agent_args=["--port", str(port)])
    cluster.start()
    tracker = Tracker([task("acked", "sleep 300"), task("never", "sleep 300")])
    driver = SchedulerDriver(cluster.address, {
        "user": "tester", "name": "no-acks", "checkpoint": True, "failover_timeout": 60},
        tracker, implicit_acknowledgements=False)
    tracker.driver = driver
    work_dir = tmp_path / "agent0"

    def deliveries(uuid: bytes) -> int:
        return sum(1 for s in tracker.statuses if s.get("uuid") and uuid_of(s) == uuid)

    async def restart_agent() -> None:
        cluster.agents[-1].kill()  # kill -9; the executors live on
        cluster.start_agent(0)
        await asyncio.to_thread(cluster.wait_agents, 1, 30)

    try:
        await driver.start()
        await until(lambda: tracker.states("acked") and tracker.states("never"), 30,
                    "a first update of each task")
        # Only the head of each task's stream is in flight until it is acknowledged.
        acked = next(s for s in tracker.statuses if s["task_id"]["value"] == "acked")
        never = next(s for s in tracker.statuses if s["task_id"]["value"] == "never")
        uuid, barrier = uuid_of(acked), uuid_of(never)

        await restart_agent()
        await until(lambda: deliveries(uuid) >= 2 and deliveries(barrier) >= 2, 30,
                    "the unacknowledged updates sent again after the restart")
        again = [s for s in tracker.statuses if s.get("uuid") and uuid_of(s) == uuid]
        assert {(s["state"], s["task_id"]["value"]) for s in again} == {
            (acked["state"], "acked")}

        await driver.acknowledge(again[-1])
        await until(lambda: uuid in acknowledged_in_journal(work_dir, "acked"), 20,
                    "the agent to checkpoint the acknowledgement")
        seen, seen_barrier = deliveries(uuid), deliveries(barrier)

        await restart_agent()
        # The agent re-sends every unacknowledged head at once when it registers, the
        # other task's with it: once that one is here, the acknowledged one is not coming.
        await until(lambda: deliveries(barrier) > seen_barrier, 30,
                    "the still unacknowledged update sent again")
        assert deliveries(uuid) == seen
    finally:
        await driver.stop(teardown=True)
        cluster.stop()
