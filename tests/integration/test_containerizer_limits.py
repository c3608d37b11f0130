"""Limits that hold: a real agent runs command tasks under cgroups v1 (what these machines
have, as root), cgroups v2 where the machine allows, and the posix monitor when forced."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from agent_peer import MACHINE, AgentHarness, command_task, framework_info, new_id

from mesonb.agent import Agent
from mesonb.agent.isolation import ContainerizerConfig
from mesonb.config import AgentConfig
from mesonb.protocol.states import Reason, Source, TaskState

pytestmark = pytest.mark.slow


def cgroups_v1_reason() -> str | None:
    from mesonb.agent.isolation.cgroups_v1 import CgroupsV1

    try:
        probe = CgroupsV1("mesonb-probe")
    except OSError as exc:
        return str(exc)
    for base in set(probe.bases.values()):
        base.rmdir()
    return None


def cgroups_v2_reason() -> str | None:
    from mesonb.agent.isolation.cgroups_v2 import CgroupsV2

    try:
        CgroupsV2("mesonb-probe")
    except OSError as exc:
        return str(exc)
    return None


V1 = cgroups_v1_reason()
needs_v1 = pytest.mark.skipif(V1 is not None, reason=f"cgroups v1 not usable here: {V1}")


class Harness(AgentHarness):
    """The shared harness, with the agent's containerizer flags."""

    def __init__(self, work_dir: Path, containerizer: ContainerizerConfig, **kw: Any) -> None:
        super().__init__(work_dir, **kw)
        self.containerizer = containerizer

    def new_agent(self, **overrides: Any) -> Agent:
        values = {"master": self.master.address, "work_dir": self.work_dir,
                  **self.config_values, **overrides}
        self.agent = Agent(AgentConfig(**values), machine=MACHINE,
                           containerizer_config=self.containerizer)
        return self.agent


def run(body: Any, work_dir: Path, containerizer: ContainerizerConfig) -> None:
    async def main() -> None:
        async with Harness(work_dir, containerizer) as harness:
            await asyncio.wait_for(body(harness), 90)

    asyncio.run(main())


def task(task_id: str, value: str, cpus: float = 0.1, mem: float = 32, **kw: Any) -> Any:
    t = command_task(task_id, value, **kw)
    t.resources = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                   {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}}]
    return t


async def reach(m: Any, task_id: str, state: TaskState) -> Any:
    """Acknowledge every update of ``task_id`` until one in ``state``; that one."""
    acked: set[bytes] = set()

    def step() -> Any:
        for u in m.updates(task_id):
            if u.status.uuid not in acked:
                acked.add(u.status.uuid)
                m.ack(u)
            if u.status.state is state:
                return u
        return None

    return await m.until(step)


HOG = (f"{sys.executable} -c \"import time; open('started', 'w').write(repr(time.time()));"
       " b = bytearray(300 * 2**20); time.sleep(60)\"")


async def memory_limit_kills_only_the_hog(h: AgentHarness, checkpoint: bool = False
                                          ) -> list[str]:
    m = h.master
    framework = framework_info(checkpoint=checkpoint)  # checkpoint: an executor process
    neighbour, hog = new_id("neighbour"), new_id("hog")
    m.run_task(task(neighbour, "sleep 60"), framework)
    await reach(m, neighbour, TaskState.TASK_RUNNING)
    m.run_task(task(hog, HOG, mem=48), framework)  # + the command executor's 32 MB
    failed = await m.terminal(hog)
    seen = time.time()
    status = failed.status
    assert status.state is TaskState.TASK_FAILED
    assert status.source is Source.SOURCE_AGENT
    assert status.reason is Reason.REASON_CONTAINER_LIMITATION_MEMORY
    assert status.message.startswith("Memory limit exceeded: Requested: 80MB Maximum Used: ")
    assert m.states(hog)[-1] is TaskState.TASK_FAILED
    hog_executor = h.executor(hog)
    sandbox = hog_executor.directory
    started = float((sandbox / "started").read_text())
    assert seen - started < 0.5 + 0.5  # the allocation itself takes a moment
    # The neighbour was not touched.
    assert m.states(neighbour)[-1] is TaskState.TASK_RUNNING
    neighbour_executor = h.executor(neighbour)
    assert neighbour_executor.container.running
    m.kill(neighbour)
    killed = await m.terminal(neighbour)
    assert killed.status.state is TaskState.TASK_KILLED
    return [hog_executor.container_id, neighbour_executor.container_id]


@needs_v1
@pytest.mark.parametrize("checkpoint", [False, True], ids=["in-agent", "executor"])
def test_cgroups_v1_memory_limit(tmp_path: Path, checkpoint: bool) -> None:
    async def body(h: AgentHarness) -> None:
        assert h.agent.containerizer.isolator.name == "cgroups v1"
        state = json.loads((await h.http("/state")).body)
        assert state["flags"]["isolation"].startswith("cgroups/cpu,cgroups/mem,cgroups/pids")
        containers = await memory_limit_kills_only_the_hog(h, checkpoint)
        # The cgroups are gone once their containers were destroyed.
        bases = h.agent.containerizer.isolator.bases.values()
        await h.master.until(lambda: not any((b / c).exists() for b in bases for c in containers))

    run(body, tmp_path, ContainerizerConfig(isolation="auto"))


def test_posix_monitor_memory_limit(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        assert h.agent.containerizer.isolator.name == "posix"
        state = json.loads((await h.http("/state")).body)
        assert state["flags"]["isolation"] == "posix/cpu,posix/mem"
        await memory_limit_kills_only_the_hog(h)

    run(body, tmp_path, ContainerizerConfig(isolation="posix/cpu,posix/mem"))


@needs_v1
def test_cgroups_v1_cpu_cap_and_pids_limit(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        busy, bomb = new_id("busy"), new_id("bomb")
        m.run_task(task(busy, "while :; do :; done", cpus=0.4))  # + 0.1: a 0.5 core cap
        m.run_task(task(bomb, "for i in $(seq 80); do sleep 60 & done; wait"))
        await reach(m, busy, TaskState.TASK_RUNNING)
        await reach(m, bomb, TaskState.TASK_RUNNING)
        isolator = h.agent.containerizer.isolator
        busy_handle = h.executor(busy).container.handle
        cpu_dir = isolator.bases["cpu"] / busy_handle.container_id
        assert (cpu_dir / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (cpu_dir / "cpu.shares").read_text().strip() == "512"
        first = isolator.usage(busy_handle)
        t0 = time.monotonic()
        await asyncio.sleep(2.0)  # measuring a rate over a window
        last = isolator.usage(busy_handle)
        used = (last.cpus_user_time_secs + last.cpus_system_time_secs
                - first.cpus_user_time_secs - first.cpus_system_time_secs)
        rate = used / (time.monotonic() - t0)
        assert rate <= 0.55, rate  # the cap holds (on a busy machine it may get less)
        if rate > 0.45:
            assert last.cpus_nr_throttled > first.cpus_nr_throttled
        bomb_handle = h.executor(bomb).container.handle
        await m.until(lambda: "fork" in (h.executor(bomb).directory / "stderr").read_text())
        assert isolator.usage(bomb_handle).processes <= 40
        for t in (busy, bomb):
            m.kill(t)
            await m.terminal(t)

    run(body, tmp_path, ContainerizerConfig(container_pids_limit=40))


def test_cgroups_v2_memory_limit(tmp_path: Path) -> None:
    reason = cgroups_v2_reason()
    if reason is not None:
        pytest.skip(f"cgroups v2 not usable here: {reason}")

    async def body(h: AgentHarness) -> None:
        assert h.agent.containerizer.isolator.name == "cgroups v2"
        await memory_limit_kills_only_the_hog(h)

    run(body, tmp_path, ContainerizerConfig(isolation="cgroups/cpu,cgroups/mem",
                                            cgroups_version="v2"))


def test_cgroups_asked_for_where_unusable_fail_the_start() -> None:
    with pytest.raises(ValueError, match="unknown isolator"):
        from mesonb.agent.isolation import choose

        choose(ContainerizerConfig(isolation="cgroups/bogus"))


@needs_v1
def test_a_container_that_cannot_take_a_new_tasks_resources_fails_with_update_failed(
        tmp_path: Path) -> None:
    """As Mesos: when a running executor's container cannot be given a new task's
    resources, its tasks fail with REASON_CONTAINER_UPDATE_FAILED and it is destroyed. The
    kernel refuses it for real here: the agent's cgroups root gets a CFS quota of 0.2 of a
    core, and under cgroups v1 a child's quota may not exceed its parent's (EINVAL)."""
    import uuid

    from mesonb.agent.isolation.cgroups_v1 import CgroupsV1
    from mesonb.protocol.mesos import ExecutorInfo

    root = f"mesonb-test-{uuid.uuid4().hex[:8]}"
    bases = CgroupsV1(root).bases  # makes the root in every hierarchy
    (bases["cpu"] / "cpu.cfs_quota_us").write_text("20000")  # period 100 ms: 0.2 of a core
    executor = ExecutorInfo.from_json({
        "executor_id": {"value": "pod"}, "type": "DEFAULT",
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.05}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]})

    async def body(h: AgentHarness) -> None:
        m = h.master
        small, big = new_id("small"), new_id("big")
        m.run_group([task(small, "sleep 60", cpus=0.05)], executor)  # 0.1 in all: fits
        await reach(m, small, TaskState.TASK_RUNNING)
        m.run_group([task(big, "sleep 60", cpus=0.5)], executor)  # 0.6 > the root's 0.2
        for task_id in (big, small):
            ended = await m.terminal(task_id)
            assert ended.status.state is TaskState.TASK_FAILED, ended.status
            assert ended.status.reason is Reason.REASON_CONTAINER_UPDATE_FAILED
            assert "Failed to update the resources" in (ended.status.message or "")
        def destroyed() -> bool:
            executor = h.executor(small)
            return executor is None or executor.container is None or (
                not executor.container.running)

        await m.until(destroyed)

    try:
        run(body, tmp_path, ContainerizerConfig(cgroups_root=root))
    finally:
        for base in set(bases.values()):
            for child in base.iterdir() if base.exists() else ():
                if child.is_dir():
                    child.rmdir()
            if base.exists():
                base.rmdir()
