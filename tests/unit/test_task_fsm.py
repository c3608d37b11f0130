"""The task machine on bare tasks (no executor, no sockets): every row of its transition
table, then the sequences a task goes through on the agent."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mesonb.agent import task_fsm
from mesonb.agent.task_fsm import TRANSITIONS, BareTask, TaskPhase
from mesonb.protocol.mesos import KillPolicy, TaskStatus
from mesonb.protocol.states import Reason, TaskState

T = TaskState
LIVE = (T.TASK_STAGING, T.TASK_STARTING, T.TASK_RUNNING, T.TASK_KILLING)
TERMINAL = (T.TASK_FINISHED, T.TASK_FAILED, T.TASK_KILLED, T.TASK_LOST, T.TASK_DROPPED)
ACTIVE = (TaskPhase.QUEUED, TaskPhase.LAUNCHED)
TERM = (T.TASK_FAILED, Reason.REASON_EXECUTOR_TERMINATED, "Executor terminated: gone")

# The tasks each "phase/state" of the table stands for.
STARTS: dict[str, list[tuple[TaskPhase, TaskState]]] = {
    "QUEUED/STAGING": [(TaskPhase.QUEUED, T.TASK_STAGING)],
    "LAUNCHED/STAGING": [(TaskPhase.LAUNCHED, T.TASK_STAGING)],
    "LAUNCHED/live": [(TaskPhase.LAUNCHED, s) for s in LIVE],
    "LAUNCHED/started": [(TaskPhase.LAUNCHED, s) for s in LIVE[1:]],
    "any/terminal": [(p, s) for p in TaskPhase for s in TERMINAL],
    "active/live": [(p, s) for p in ACTIVE for s in LIVE],
    "active/terminal": [(p, s) for p in ACTIVE for s in TERMINAL],
    "active/any": [(p, s) for p in ACTIVE for s in (*LIVE, *TERMINAL)],
    "COMPLETED/terminal": [(TaskPhase.COMPLETED, s) for s in TERMINAL],
}


def status(state: TaskState) -> TaskStatus:
    return TaskStatus(task_id="t1", state=state, uuid=b"u")


def other_than(state: TaskState) -> TaskState:
    return T.TASK_RUNNING if state.terminal else T.TASK_FINISHED


EVENTS: dict[str, Callable[[BareTask], list[task_fsm.Action]]] = {
    "deliver": task_fsm.deliver,
    "kill": lambda t: task_fsm.kill(t, executor_running=True),
    "kill(executor running)": lambda t: task_fsm.kill(t, executor_running=True),
    "kill(executor not running)": lambda t: task_fsm.kill(t, executor_running=False),
    "update": lambda t: task_fsm.update(t, status(T.TASK_RUNNING)),
    "update(s)": lambda t: task_fsm.update(t, status(other_than(t.state))),
    "update(same state)": lambda t: task_fsm.update(t, status(t.state)),
    "update(other state)": lambda t: task_fsm.update(t, status(other_than(t.state))),
    "executor_terminated": lambda t: task_fsm.executor_terminated(t, *TERM),
    "unknown_to_executor": lambda t: task_fsm.unknown_to_executor(t, partition_aware=True),
    "acknowledged": task_fsm.acknowledged,
}


def expected(end: str, phase: TaskPhase, state: TaskState, event: str) -> tuple[str, str]:
    if end == "unchanged":
        return phase.value, state.value
    end_phase, end_state = end.split("/")
    if end_phase == "same":
        end_phase = phase.value
    if end_state == "s":
        end_state = other_than(state).value
    elif end_state == "term":
        end_state = TERM[0].value
    elif end_state == "same":
        end_state = state.value
    else:
        end_state = "TASK_" + end_state
    return end_phase, end_state


def walked_rows() -> list[tuple[str, str, str, tuple[str, ...], TaskPhase, TaskState]]:
    return [(start, event, end, actions, phase, state)
            for start, event, end, actions in TRANSITIONS if start != "(none)"
            for phase, state in STARTS[start]]


@pytest.mark.parametrize(("start", "event", "end", "actions", "phase", "state"), walked_rows(),
                         ids=[f"{r[0]}-{r[1]}-{r[4].value}-{r[5].value}" for r in walked_rows()])
def test_every_row_of_the_table(start: str, event: str, end: str, actions: tuple[str, ...],
                                phase: TaskPhase, state: TaskState) -> None:
    task = BareTask(phase, state)
    out = EVENTS[event](task)
    assert tuple(type(a).__name__ for a in out) == actions
    assert (task.phase.value, task.state.value) == expected(end, phase, state, event)


@pytest.mark.parametrize(("event", "end", "actions"),
                         [(e, end, a) for s, e, end, a in TRANSITIONS if s == "(none)"])
def test_every_row_for_a_new_task(event: str, end: str, actions: tuple[str, ...]) -> None:
    if event == "refuse":
        out = task_fsm.refuse(T.TASK_DROPPED, Reason.REASON_FRAMEWORK_REMOVED,
                              "Framework is terminating", partition_aware=True)
        assert out == [task_fsm.AgentUpdate(T.TASK_DROPPED, Reason.REASON_FRAMEWORK_REMOVED,
                                            "Framework is terminating")]
        return
    task = BareTask(TaskPhase.COMPLETED, T.TASK_FINISHED)  # whatever it was: run resets it
    out = task_fsm.run(task, executor_running=event == "run(executor running)")
    assert tuple(type(a).__name__ for a in out) == actions
    assert f"{task.phase.value}/{task.state.value.removeprefix('TASK_')}" == end


def test_the_docstring_shows_every_row() -> None:
    lines = [" ".join(line.split()) for line in (task_fsm.__doc__ or "").splitlines()]
    for start, event, end, _ in TRANSITIONS:
        assert any(line.startswith(f"{start} {event} {end}") for line in lines), (start, event)


# -- sequences ------------------------------------------------------------------------------
def test_a_task_from_queued_to_completed() -> None:
    task = BareTask()
    assert task_fsm.run(task, executor_running=False) == []
    assert task_fsm.deliver(task) == [task_fsm.Deliver()]
    assert task_fsm.deliver(task) == []  # once
    for state in (T.TASK_STARTING, T.TASK_RUNNING, T.TASK_FINISHED):
        assert task_fsm.update(task, status(state)) == [task_fsm.Record(status(state))]
    assert task_fsm.executor_terminated(task, *TERM) == []  # it finished before
    assert task_fsm.acknowledged(task) == [task_fsm.Complete()]
    assert (task.phase, task.state) == (TaskPhase.COMPLETED, T.TASK_FINISHED)
    assert task_fsm.update(task, status(T.TASK_FINISHED)) == [
        task_fsm.Invalid("not active here")]


def test_kill_of_a_running_task_goes_to_the_executor_with_its_policy() -> None:
    task = BareTask(TaskPhase.LAUNCHED, T.TASK_RUNNING)
    policy = KillPolicy(grace_period={"nanoseconds": 1_000_000_000})
    assert task_fsm.kill(task, executor_running=True, kill_policy=policy) == [
        task_fsm.SendKill(policy)]
    assert task.state is T.TASK_RUNNING  # the executor reports the outcome
    task_fsm.update(task, status(T.TASK_KILLING))
    task_fsm.update(task, status(T.TASK_KILLED))
    assert task_fsm.kill(task, executor_running=True) == [task_fsm.Ignored("already TASK_KILLED")]


def test_a_queued_task_killed_is_killed_during_launch() -> None:
    task = BareTask()
    task_fsm.run(task, executor_running=False)
    (update,) = task_fsm.kill(task, executor_running=False)
    assert update == task_fsm.AgentUpdate(T.TASK_KILLED, Reason.REASON_TASK_KILLED_DURING_LAUNCH,
                                          task_fsm.KILLED_DURING_LAUNCH)
    assert task_fsm.deliver(task) == []  # never reaches the executor


def test_an_executor_that_dies_fails_its_running_task_once() -> None:
    task = BareTask(TaskPhase.LAUNCHED, T.TASK_RUNNING)
    limit = (T.TASK_FAILED, Reason.REASON_CONTAINER_LIMITATION_MEMORY, "Memory limit exceeded")
    assert task_fsm.executor_terminated(task, *limit) == [task_fsm.AgentUpdate(*limit)]
    assert task_fsm.executor_terminated(task, *TERM) == []
    assert task_fsm.update(task, status(T.TASK_FINISHED)) == [
        task_fsm.Invalid("already TASK_FAILED")]


def test_agent_restart_drops_what_never_reached_the_executor() -> None:
    staged = BareTask(TaskPhase.LAUNCHED, T.TASK_STAGING)  # recovered from checkpoints
    running = BareTask(TaskPhase.LAUNCHED, T.TASK_RUNNING)
    (dropped,) = task_fsm.unknown_to_executor(staged, partition_aware=False)
    assert dropped == task_fsm.AgentUpdate(T.TASK_LOST, Reason.REASON_AGENT_RESTARTED,
                                           "Task launched during agent restart")
    assert staged.state is T.TASK_LOST
    assert task_fsm.unknown_to_executor(running, partition_aware=True) == []
