"""The container machine on a bare object, a fake clock and no sockets or processes:
every row of its transition table, then the sequences an agent goes through."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mesonb.agent import container_fsm as fsm
from mesonb.agent.container_fsm import TRANSITIONS, ContainerMachine, ContainerState
from mesonb.protocol.states import Reason, TaskState
from mesonb.testing.clock import FakeClock

REGISTRATION, REREGISTRATION, GRACE = 60.0, 2.0, 5.0
C = "c1"
LIVE = ("LAUNCHING", "REGISTERING", "RUNNING", "TERMINATING")


def machine() -> ContainerMachine:
    return ContainerMachine(registration_timeout=REGISTRATION,
                            reregistration_timeout=REREGISTRATION, shutdown_grace=GRACE)


def kinds(actions: list[fsm.Action]) -> tuple[str, ...]:
    return tuple(type(a).__name__ for a in actions)


# How to bring a bare machine's container to each state (at time 0).
SETUP: dict[str, Callable[[ContainerMachine], object]] = {
    "(none)": lambda m: None,
    "LAUNCHING": lambda m: m.launch(C, 0.0),
    "REGISTERING": lambda m: (m.launch(C, 0.0), m.launched(C, 0.0)),
    "RUNNING": lambda m: (m.launch(C, 0.0), m.launched(C, 0.0), m.subscribed(C, 0.0)),
    "TERMINATING": lambda m: (m.launch(C, 0.0), m.launched(C, 0.0), m.subscribed(C, 0.0),
                              m.shutdown(C, 0.0, connected=True)),
    "TERMINATED": lambda m: (m.launch(C, 0.0), m.exited(C, 0, 0.0, "exited")),
}

# Each event of the table, fired at a time when every deadline is due.
LATE = 10_000.0
EVENTS: dict[str, Callable[[ContainerMachine], list[fsm.Action]]] = {
    "launch": lambda m: m.launch(C, 0.0),
    "recovered(alive)": lambda m: m.recovered(C, 0.0, alive=True),
    "recovered(cleanup)": lambda m: m.recovered(C, 0.0, alive=True, cleanup=True),
    "recovered(dead)": lambda m: m.recovered(C, 0.0, alive=False, has_tasks=True),
    "recovered(dead, no task)": lambda m: m.recovered(C, 0.0, alive=False, has_tasks=False),
    "launched": lambda m: m.launched(C, 1.0),
    "launch_failed": lambda m: m.launch_failed(C, 1.0, "no such file"),
    "subscribed": lambda m: m.subscribed(C, 1.0),
    "shutdown": lambda m: m.shutdown(C, 1.0, connected=True),
    "shutdown(connected)": lambda m: m.shutdown(C, 1.0, connected=True),
    "shutdown(not connected)": lambda m: m.shutdown(C, 1.0, connected=False),
    "shutdown_unsent": lambda m: m.shutdown_unsent(C, 1.0),
    "kill": lambda m: m.kill(C, 1.0, fsm.Termination(
        TaskState.TASK_FAILED, Reason.REASON_CONTAINER_LIMITATION_MEMORY, "Memory limit")),
    "limited": lambda m: m.limited(C, 1.0, fsm.Termination(
        TaskState.TASK_FAILED, Reason.REASON_CONTAINER_LIMITATION_MEMORY, "Memory limit")),
    "tick": lambda m: m.tick(LATE),
    "exited": lambda m: m.exited(C, 0, 1.0, "exited with status 0"),
    "exited(returncode)": lambda m: m.exited(C, 0, 1.0, "exited with status 0"),
    "exited(unknown)": lambda m: m.exited(C, None, 1.0, "never started"),
    "exited(not failing)": lambda m: m.exited(C, 9, 1.0, "killed", fail_tasks=False),
    "complete": lambda m: m.complete(C),
}


def rows() -> list[tuple[str, str, str, tuple[str, ...]]]:
    out = []
    for start, event, end, actions in TRANSITIONS:
        for state in (LIVE if start == "live" else (start,)):
            out.append((state, event, end, actions))
    return out


@pytest.mark.parametrize(("start", "event", "end", "actions"), rows(),
                         ids=[f"{r[0]}-{r[1]}" for r in rows()])
def test_every_row_of_the_table(start: str, event: str, end: str,
                                actions: tuple[str, ...]) -> None:
    m = machine()
    SETUP[start](m)
    assert (m.state(C).value if m.state(C) else "(none)") == start
    out = EVENTS[event](m)
    assert kinds(out) == actions
    assert (m.state(C).value if m.state(C) else "(none)") == end
    assert all(a.container_id == C for a in out)


def test_the_docstring_shows_every_row() -> None:
    lines = [" ".join(line.split()) for line in (fsm.__doc__ or "").splitlines()]
    for start, event, end, _ in TRANSITIONS:
        assert any(line.startswith(f"{start} {event} {end}") for line in lines), (start, event)


def test_every_event_in_any_other_state_changes_nothing() -> None:
    def family(event: str) -> str:
        return event.split("(")[0]

    covered = {(start, family(event)) for start, event, _, _ in rows()}
    for start in SETUP:
        for event in ("launched", "launch_failed", "subscribed", "shutdown(connected)",
                      "shutdown(not connected)", "shutdown_unsent", "kill", "limited",
                      "exited(returncode)", "complete"):
            if (start, family(event)) in covered:
                continue
            m = machine()
            SETUP[start](m)
            before = m.state(C)
            assert EVENTS[event](m) == [], (start, event)
            assert m.state(C) is before, (start, event)


# -- deadlines on a fake clock ------------------------------------------------------------
def test_registration_timeout_fires_on_time_and_fails_the_tasks() -> None:
    clock = FakeClock()
    m = machine()
    m.launch(C, clock.monotonic())
    m.launched(C, clock.monotonic())
    assert m.next_deadline() == clock.monotonic() + REGISTRATION
    clock.advance(REGISTRATION - 0.5)
    assert m.tick(clock.monotonic()) == []
    clock.advance(0.5)
    assert kinds(m.tick(clock.monotonic())) == ("Destroy",)
    assert m.next_deadline() is None
    (_, fail, report) = m.exited(C, -9, clock.monotonic(), "killed by signal 9")
    assert isinstance(fail, fsm.FailTasks)
    assert fail.termination == fsm.Termination(
        TaskState.TASK_FAILED, Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT,
        "Executor did not register within 60secs")
    assert isinstance(report, fsm.ReportExit) and report.returncode == -9


def test_subscribing_clears_the_registration_deadline() -> None:
    m = machine()
    m.launch(C, 0.0)
    m.launched(C, 0.0)
    m.subscribed(C, 30.0)
    assert m.next_deadline() is None
    assert m.tick(REGISTRATION * 2) == []
    assert m.state(C) is ContainerState.RUNNING


def test_graceful_shutdown_destroys_after_the_grace_period() -> None:
    clock = FakeClock()
    m = machine()
    SETUP["RUNNING"](m)
    assert kinds(m.shutdown(C, clock.monotonic(), connected=True)) == ("SendShutdown",)
    clock.advance(GRACE - 0.1)
    assert m.tick(clock.monotonic()) == []
    clock.advance(0.1)
    assert kinds(m.tick(clock.monotonic())) == ("Destroy",)
    (_, fail, _) = m.exited(C, 0, clock.monotonic(), "exited with status 0")
    assert isinstance(fail, fsm.FailTasks)
    assert fail.termination.reason is Reason.REASON_EXECUTOR_TERMINATED
    assert fail.termination.message == "Executor terminated: exited with status 0"


def test_an_executor_that_exits_in_its_grace_period_leaves_no_deadline() -> None:
    m = machine()
    SETUP["RUNNING"](m)
    m.shutdown(C, 0.0, connected=True)
    m.exited(C, 0, 1.0, "exited with status 0")
    assert m.next_deadline() is None
    assert m.tick(LATE) == []


def test_shutdown_while_launching_destroys_once_the_process_is_there() -> None:
    m = machine()
    m.launch(C, 0.0)
    assert kinds(m.shutdown(C, 0.0, connected=False)) == ("Destroy",)  # nothing to kill yet
    assert kinds(m.launched(C, 0.5)) == ("Destroy",)
    assert m.next_deadline() is None  # no registration deadline for a dying container


def test_launch_failure_fails_the_tasks_with_its_reason() -> None:
    m = machine()
    m.launch(C, 0.0)
    (release, fail) = m.launch_failed(C, 0.1, "Failed to launch container: ENOENT")
    assert isinstance(release, fsm.Release)
    assert isinstance(fail, fsm.FailTasks)
    assert fail.termination.reason is Reason.REASON_CONTAINER_LAUNCH_FAILED
    assert kinds(m.complete(C)) == ("Completed",)
    assert len(m) == 0


def test_a_limitation_is_what_the_tasks_become() -> None:
    m = machine()
    SETUP["RUNNING"](m)
    limit = fsm.Termination(TaskState.TASK_FAILED, Reason.REASON_CONTAINER_LIMITATION_MEMORY,
                            "Memory limit exceeded")
    (fail, destroy) = m.limited(C, 1.0, limit)
    assert fail == fsm.FailTasks(C, limit) and destroy == fsm.Destroy(C)
    (_, fail, _) = m.exited(C, -9, 1.5, "killed by signal 9")
    assert isinstance(fail, fsm.FailTasks) and fail.termination == limit


# -- agent restart and reattach --------------------------------------------------------------
def test_restart_and_reattach_then_the_executor_resubscribes() -> None:
    clock = FakeClock()
    before = machine()  # the agent's first run
    SETUP["RUNNING"](before)
    after = machine()  # the restarted agent knows the container from its checkpoints only
    assert kinds(after.recovered(C, clock.monotonic(), alive=True)) == ("Watch",)
    assert after.state(C) is ContainerState.REGISTERING
    assert after.next_deadline() == clock.monotonic() + REREGISTRATION
    clock.advance(1.0)
    assert kinds(after.subscribed(C, clock.monotonic())) == ("SendSubscribed",)
    clock.advance(REREGISTRATION)
    assert after.tick(clock.monotonic()) == []
    # its process exits later: the exit status is unknown, EXECUTOR_EXITED still goes out
    assert kinds(after.exited(C, None, clock.monotonic(), "exited")) == (
        "Release", "FailTasks", "ReportExit")


def test_restart_and_an_executor_that_does_not_resubscribe() -> None:
    clock = FakeClock()
    m = machine()
    m.recovered(C, clock.monotonic(), alive=True)
    clock.advance(REREGISTRATION)
    assert kinds(m.tick(clock.monotonic())) == ("Destroy",)
    (_, fail, report) = m.exited(C, None, clock.monotonic(), "exited")
    assert isinstance(fail, fsm.FailTasks)
    assert fail.termination.reason is Reason.REASON_EXECUTOR_REREGISTRATION_TIMEOUT
    assert fail.termination.message == "Executor did not re-register within 2secs"
    assert isinstance(report, fsm.ReportExit) and report.returncode is None


def test_restart_with_cleanup_kills_and_says_why() -> None:
    m = machine()
    assert kinds(m.recovered(C, 0.0, alive=True, cleanup=True)) == ("Watch", "Destroy")
    assert m.next_deadline() is None
    (_, fail, _) = m.exited(C, None, 0.5, "exited")
    assert isinstance(fail, fsm.FailTasks)
    assert "--recover=cleanup" in fail.termination.message


def test_restart_after_the_executor_died_while_the_agent_was_down() -> None:
    m = machine()
    (_, fail, report) = m.recovered(C, 0.0, alive=False, why="the machine rebooted")
    assert isinstance(fail, fsm.FailTasks)
    assert fail.termination.message == (
        "Executor terminated: exited while the agent was down (the machine rebooted)")
    assert isinstance(report, fsm.ReportExit) and report.returncode is None
    assert m.subscribed(C, 1.0) == [fsm.Refuse(C, "terminated")]


def test_many_containers_keep_their_own_deadlines() -> None:
    m = machine()
    for i in range(5):
        m.launch(f"c{i}", float(i))
        m.launched(f"c{i}", float(i))
    m.subscribed("c0", 1.0)
    assert m.next_deadline() == 1.0 + REGISTRATION
    fired = m.tick(2.0 + REGISTRATION)
    assert [a.container_id for a in fired] == ["c1", "c2"]
    assert m.next_deadline() == 3.0 + REGISTRATION


def test_a_container_is_launched_once() -> None:
    m = machine()
    m.launch(C, 0.0)
    with pytest.raises(ValueError):
        m.launch(C, 0.0)
