"""The agent's executor side without an Agent: :class:`Executors` built on a plain
:class:`Host` (recording what goes to the master and the status update manager), a fake
clock for its deadlines and an in-memory event stream. The executor's process is a real
``sleep`` started through the containerizer seam, so destroying it is real too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mesonb.agent import containerizer, paths, recovery
from mesonb.agent.book import Executor, ExecutorState
from mesonb.agent.executors import Executors
from mesonb.agent.host import Addresses, Host
from mesonb.agent.recovery import RecoveryConfig
from mesonb.agent.status_updates import StatusUpdateManager, update_record
from mesonb.config import AgentConfig
from mesonb.protocol.agent import (
    AgentCall,
    AgentCallType,
    KillTask,
    MasterCommand,
    MasterCommandType,
    RunTask,
)
from mesonb.protocol.errors import Unauthorized
from mesonb.protocol.executor import (
    ExecutorCall,
    ExecutorCallType,
    ExecutorEvent,
    ExecutorSubscribe,
    ExecutorUpdate,
)
from mesonb.protocol.mesos import (
    AgentInfo,
    CommandInfo,
    ExecutorInfo,
    FrameworkInfo,
    TaskInfo,
    TaskStatus,
)
from mesonb.protocol.states import Reason, Source, TaskState
from mesonb.testing.clock import FakeClock

FW = "fw-1"


class Stream:
    """An executor's event stream kept in memory."""

    def __init__(self) -> None:
        self.events: list[ExecutorEvent] = []
        self.delays: list[float | None] = []  # how long each could wait (None: default)
        self.closed = False

    def send(self, event: ExecutorEvent, delay: float | None = None) -> bool:
        if self.closed:
            return False
        self.events.append(event)
        self.delays.append(delay)
        return True

    def close(self) -> None:
        self.closed = True

    def types(self) -> list[str]:
        return [e.type.value for e in self.events]


class Side:
    """An :class:`Executors` and what it told the rest of the agent."""

    def __init__(self, work_dir: Path) -> None:
        self.clock = FakeClock()
        self.to_master: list[AgentCall] = []
        self.updates: list[tuple[str, TaskStatus, bool]] = []
        self.metrics = {"valid_status_updates": 0, "invalid_status_updates": 0,
                        "valid_framework_messages": 0}
        self.pids: list[int] = []
        config = AgentConfig(master="127.0.0.1:1", port=5051, work_dir=work_dir,
                             executor_registration_timeout=60.0,
                             executor_shutdown_grace_period=3.0)
        self.executors = Executors(Host(
            config=config, recovery=RecoveryConfig(), clock=self.clock, metrics=self.metrics,
            secret=None, agent_id=lambda: "agent-1",
            agent_info=lambda: AgentInfo(hostname="h", port=5051, id="agent-1"),
            addresses=lambda: Addresses("127.0.0.1:5051", None, "slave(1)@127.0.0.1:5051"),
            registered=lambda: True, to_master=self._to_master,
            record_update=lambda fw, status, ckpt: self.updates.append((fw, status, ckpt)),
            update_seen=lambda fw, task, uuid: False, forget_updates=lambda fw: None,
            launch_container=self._launch))

    def _to_master(self, call: AgentCall) -> bool:
        self.to_master.append(call)
        return True

    async def _launch(self, executor: Executor, spec: containerizer.LaunchSpec,
                      on_limitation: Callable[[Any], None]) -> containerizer.Container:
        assert spec.env["MESOS_EXECUTOR_ID"] == executor.executor_id
        sleeper = containerizer.LaunchSpec(argv=["sleep", "60"], env={}, sandbox=spec.sandbox)
        container = await containerizer.launch(executor.container_id, sleeper)
        self.pids.append(container.pid)
        return container

    def run(self, task_id: str) -> Executor:
        assert self.executors.handle(MasterCommand(
            type=MasterCommandType.RUN_TASK, run_task=RunTask(
                framework_info=FrameworkInfo(user="u", name="n", id=FW),
                task=TaskInfo(name=task_id, task_id=task_id, agent_id="agent-1",
                              command=CommandInfo(value="true")))))
        executor = self.executors.frameworks[FW].executor_of(task_id)
        assert executor is not None
        return executor

    def subscribe(self, executor: Executor) -> Stream:
        stream = Stream()
        self.executors.subscribe(ExecutorCall(
            type=ExecutorCallType.SUBSCRIBE, executor_id=executor.executor_id,
            framework_id=FW, subscribe=ExecutorSubscribe()), stream)
        return stream

    def update(self, executor: Executor, task_id: str, state: TaskState) -> None:
        self.executors.update(ExecutorCall(
            type=ExecutorCallType.UPDATE, executor_id=executor.executor_id, framework_id=FW,
            update=ExecutorUpdate(status=TaskStatus(task_id=task_id, state=state,
                                                    uuid=state.value.encode()))))

    def states(self, task_id: str) -> list[tuple[str, Source | None, Reason | None]]:
        return [(s.state.value, s.source, s.reason) for _, s, _ in self.updates
                if s.task_id == task_id]

    def exited(self) -> list[str]:
        return [c.executor_exited.executor_id for c in self.to_master
                if c.type is AgentCallType.EXECUTOR_EXITED and c.executor_exited]

    async def stop(self) -> None:
        await self.executors.shutdown_all(1.0)
        for pid in self.pids:
            containerizer.kill_session(pid)


async def until(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
async def side(tmp_path: Path) -> Any:
    s = Side(tmp_path)
    yield s
    await s.stop()


async def test_a_task_from_run_task_to_executor_exit(side: Side) -> None:
    executor = side.run("t1")
    assert executor.state is ExecutorState.REGISTERING
    assert list(executor.queued) == ["t1"]
    await until(lambda: executor.container is not None)
    stream = side.subscribe(executor)
    assert stream.types() == ["SUBSCRIBED", "LAUNCH"]
    assert executor.state is ExecutorState.RUNNING and list(executor.launched) == ["t1"]
    side.update(executor, "t1", TaskState.TASK_RUNNING)
    assert side.states("t1") == [("TASK_RUNNING", Source.SOURCE_EXECUTOR, None)]
    assert stream.types()[-1] == "ACKNOWLEDGED"
    side.executors.kill_task(KillTask(framework_id=FW, task_id="t1"))
    assert stream.types()[-1] == "KILL"
    # The master shuts the executor down: SHUTDOWN, and it is destroyed after the grace
    # period (on the fake clock) since it does not exit by itself.
    side.executors.shutdown_executor(executor)
    assert stream.types()[-1] == "SHUTDOWN"
    side.clock.advance(3.0)
    side.executors.lifecycle.tick()
    await until(lambda: executor.state is ExecutorState.TERMINATED)
    assert side.states("t1")[-1] == ("TASK_FAILED", Source.SOURCE_AGENT,
                                     Reason.REASON_EXECUTOR_TERMINATED)
    assert side.exited() == ["t1"] and stream.closed


async def test_registration_timeout_on_the_fake_clock(side: Side) -> None:
    executor = side.run("t2")
    await until(lambda: executor.container is not None)
    side.clock.advance(59.0)
    side.executors.lifecycle.tick()
    assert executor.state is ExecutorState.REGISTERING
    side.clock.advance(1.0)
    side.executors.lifecycle.tick()
    assert executor.state is ExecutorState.TERMINATING
    await until(lambda: executor.state is ExecutorState.TERMINATED)
    assert side.states("t2") == [("TASK_FAILED", Source.SOURCE_AGENT,
                                  Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT)]
    assert side.exited() == ["t2"]


async def test_kill_before_the_executor_subscribes(side: Side) -> None:
    executor = side.run("t3")
    side.executors.kill_task(KillTask(framework_id=FW, task_id="t3"))
    assert side.states("t3") == [("TASK_KILLED", Source.SOURCE_AGENT,
                                  Reason.REASON_TASK_KILLED_DURING_LAUNCH)]
    assert executor.state is ExecutorState.TERMINATING  # nothing left for it to run
    await until(lambda: executor.state is ExecutorState.TERMINATED)
    assert side.states("t3") == [("TASK_KILLED", Source.SOURCE_AGENT,
                                  Reason.REASON_TASK_KILLED_DURING_LAUNCH)]
    # its terminal update acknowledged, the executor and its framework are completed
    side.executors.stream_closed(FW, "t3")
    assert not side.executors.frameworks
    (framework,) = side.executors.completed_frameworks
    assert [t.task_id for t in framework.completed_executors[0].completed] == ["t3"]


async def test_a_limitation_fails_the_task_before_the_executor_can_say_otherwise(
    side: Side,
) -> None:
    executor = side.run("t4")
    await until(lambda: executor.container is not None)
    side.subscribe(executor)
    side.update(executor, "t4", TaskState.TASK_RUNNING)
    side.executors.lifecycle.limited(executor, Reason.REASON_CONTAINER_LIMITATION_MEMORY,
                                     "Memory limit exceeded: 64 MB")
    assert side.states("t4")[-1] == ("TASK_FAILED", Source.SOURCE_AGENT,
                                     Reason.REASON_CONTAINER_LIMITATION_MEMORY)
    side.update(executor, "t4", TaskState.TASK_KILLED)  # too late: dropped
    assert side.metrics["invalid_status_updates"] == 1
    await until(lambda: executor.state is ExecutorState.TERMINATED)
    assert [s for s, _, _ in side.states("t4")] == ["TASK_RUNNING", "TASK_FAILED"]


# -- agent restart: reattach to the executors of an earlier run ------------------------------
async def earlier_run(side: Side, work_dir: Path) -> recovery.AgentCheckpoint:
    """What an earlier run checkpointed: a live executor (a real process leading its own
    session in its sandbox) and one whose process is gone, each with a RUNNING task whose
    update was never acknowledged."""

    def ckpt(name: str, pid: int | None, directory: Path) -> recovery.ExecutorCheckpoint:
        running = TaskStatus(task_id=f"t-{name}", state=TaskState.TASK_RUNNING,
                             uuid=name.encode(), source=Source.SOURCE_EXECUTOR)
        return recovery.ExecutorCheckpoint(
            framework_id=FW, info=ExecutorInfo(executor_id=f"e-{name}",
                                               command=CommandInfo(value="my-executor")),
            container_id=f"c-{name}", directory=directory, pid=pid, token=f"token-{name}",
            tasks=[recovery.TaskCheckpoint(
                info=TaskInfo(name=name, task_id=f"t-{name}", agent_id="agent-1"),
                records=[update_record(FW, running)])])

    live_dir = paths.sandbox_dir(work_dir, "agent-1", FW, "e-live", "c-live")
    live_dir.mkdir(parents=True)
    live = await containerizer.launch("c-live", containerizer.LaunchSpec(
        argv=["sleep", "60"], env={}, sandbox=live_dir))
    side.pids.append(live.pid)
    dead_dir = paths.sandbox_dir(work_dir, "agent-1", FW, "e-dead", "c-dead")
    return recovery.AgentCheckpoint(agent_id="agent-1", rebooted=False, frameworks=[
        recovery.FrameworkCheckpoint(
            info=FrameworkInfo(user="u", name="n", id=FW, checkpoint=True),
            executors=[ckpt("live", live.pid, live_dir), ckpt("dead", None, dead_dir)])])


async def test_agent_restart_reattaches_a_live_executor_and_ends_a_dead_ones_tasks(
    side: Side, tmp_path: Path,
) -> None:
    updates = StatusUpdateManager()
    side.executors.recover(await earlier_run(side, tmp_path), updates)
    framework = side.executors.frameworks[FW]
    live, dead = framework.executors.get("e-live"), framework.completed_executors
    assert live is not None and live.recovered and live.state is ExecutorState.REGISTERING
    assert side.executors.reregistering()
    assert updates.pending(FW, "t-live")  # resent once the agent registers again
    # the dead one: its task FAILED by the agent, EXECUTOR_EXITED (status unknown)
    gone = framework.executors["e-dead"]
    assert gone.state is ExecutorState.TERMINATED and not dead
    assert side.states("t-dead") == [("TASK_FAILED", Source.SOURCE_AGENT,
                                      Reason.REASON_EXECUTOR_TERMINATED)]
    assert side.exited() == ["e-dead"]
    # the live one re-subscribes with its checkpointed token
    assert side.executors.authenticate("Bearer token-live") == (FW, "e-live")
    stream = side.subscribe(live)
    assert stream.types() == ["SUBSCRIBED"]
    assert live.state is ExecutorState.RUNNING and not side.executors.reregistering()
    side.clock.advance(10.0)
    side.executors.lifecycle.tick()  # no re-registration deadline any more
    assert live.state is ExecutorState.RUNNING


async def test_agent_restart_kills_an_executor_that_does_not_resubscribe(
    side: Side, tmp_path: Path,
) -> None:
    side.executors.recover(await earlier_run(side, tmp_path), StatusUpdateManager())
    live = side.executors.frameworks[FW].executors["e-live"]
    side.clock.advance(RecoveryConfig().executor_reregistration_timeout)
    side.executors.lifecycle.tick()
    assert live.state is ExecutorState.TERMINATING
    await until(lambda: live.state is ExecutorState.TERMINATED)  # its process really died
    assert side.states("t-live") == [("TASK_FAILED", Source.SOURCE_AGENT,
                                      Reason.REASON_EXECUTOR_REREGISTRATION_TIMEOUT)]
    assert sorted(side.exited()) == ["e-dead", "e-live"]
    with pytest.raises(Unauthorized, match="Invalid executor token"):
        side.executors.authenticate("Bearer token-live")


# -- left-over bugs: terminal updates, the task index ----------------------------------------
def executor_update(side: Side, executor: Executor, task_id: str, state: TaskState,
                    uuid: bytes) -> None:
    side.executors.update(ExecutorCall(
        type=ExecutorCallType.UPDATE, executor_id=executor.executor_id, framework_id=FW,
        update=ExecutorUpdate(status=TaskStatus(task_id=task_id, state=state, uuid=uuid))))


async def test_updates_after_a_terminal_one_are_acknowledged_but_not_forwarded(
    side: Side,
) -> None:
    """Mesos (Executor::updateTaskState): once a task is terminal, any later update of it,
    a second TASK_FAILED included, is an error: acknowledged to the executor, dropped."""
    executor = side.run("t5")
    await until(lambda: executor.container is not None)
    stream = side.subscribe(executor)
    executor_update(side, executor, "t5", TaskState.TASK_RUNNING, b"u1")
    executor_update(side, executor, "t5", TaskState.TASK_FAILED, b"u2")
    executor_update(side, executor, "t5", TaskState.TASK_FAILED, b"u3")  # a second one
    executor_update(side, executor, "t5", TaskState.TASK_FINISHED, b"u4")
    assert [s for s, _, _ in side.states("t5")] == ["TASK_RUNNING", "TASK_FAILED"]
    assert side.metrics["invalid_status_updates"] == 2
    acks = [e.acknowledged.uuid for e in stream.events if e.acknowledged]
    assert acks == [b"u1", b"u2", b"u3", b"u4"]  # the executor stops resending them
    (task,) = executor.tasks()
    assert [s.state for s in task.statuses] == [TaskState.TASK_RUNNING, TaskState.TASK_FAILED]


async def test_the_task_index_finds_each_tasks_executor_with_one_look(
    side: Side, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """executor_of is an index look-up, not a scan of every executor (status updates at
    thousands of tasks per agent would be quadratic), and follows a task until the
    acknowledgement of its terminal update completes it."""
    executors = {f"t{i}": side.run(f"t{i}") for i in range(300)}
    framework = side.executors.frameworks[FW]
    looks = 0
    task = Executor.task

    def counted(self: Executor, task_id: str) -> Any:
        nonlocal looks
        looks += 1
        return task(self, task_id)

    monkeypatch.setattr(Executor, "task", counted)
    for task_id, executor in executors.items():
        assert framework.executor_of(task_id) is executor
    assert framework.executor_of("nope") is None
    assert looks == len(executors)  # one look per task found, none for an unknown one
    monkeypatch.undo()
    side.executors.kill_task(KillTask(framework_id=FW, task_id="t7"))  # KILLED, queued
    assert framework.executor_of("t7") is executors["t7"]  # terminal, not acknowledged
    side.executors.stream_closed(FW, "t7")
    assert framework.executor_of("t7") is None and "t7" not in framework.task_index


async def test_the_task_index_holds_the_tasks_of_reattached_executors(
    side: Side, tmp_path: Path,
) -> None:
    side.executors.recover(await earlier_run(side, tmp_path), StatusUpdateManager())
    framework = side.executors.frameworks[FW]
    assert framework.executor_of("t-live") is framework.executors["e-live"]
