"""The command executor's rules: argv, environment, exit status -> state and message."""

from __future__ import annotations

import os
import signal

import pytest

from mesonb.executor.command import shutdown_kill_grace
from mesonb.executor.process import (
    PYTHONPATH_MARK,
    TOKEN_ENV,
    command_argv,
    describe_returncode,
    task_environment,
    terminal_status,
)
from mesonb.protocol.mesos import CommandInfo, Environment, TaskInfo, Variable
from mesonb.protocol.states import Reason, TaskState


@pytest.mark.parametrize(("returncode", "killed", "timed_out", "state", "reason", "message"), [
    (0, False, False, TaskState.TASK_FINISHED, None, "Command exited with status 0"),
    (3, False, False, TaskState.TASK_FAILED, None, "Command exited with status 3"),
    (-signal.SIGKILL, False, False, TaskState.TASK_FAILED, None,
     "Command terminated with signal SIGKILL"),
    (-signal.SIGTERM, True, False, TaskState.TASK_KILLED, None,
     "Command terminated with signal SIGTERM"),
    (143, True, False, TaskState.TASK_KILLED, None, "Command exited with status 143"),
    (0, True, False, TaskState.TASK_FINISHED, None, "Command exited with status 0"),
    (-signal.SIGKILL, True, True, TaskState.TASK_FAILED,
     Reason.REASON_MAX_COMPLETION_TIME_REACHED, "Command terminated with signal SIGKILL"),
])
def test_terminal_status(returncode: int, killed: bool, timed_out: bool, state: TaskState,
                         reason: Reason | None, message: str) -> None:
    assert terminal_status(returncode, killed=killed, timed_out=timed_out) == (
        state, reason, message)


def test_describe_unknown_signal() -> None:
    assert describe_returncode(-99) == "terminated with signal signal 99"
    assert describe_returncode(1) == "exited with status 1"


def test_command_argv() -> None:
    assert command_argv(CommandInfo(value="echo hi")) == (["/bin/sh", "-c", "echo hi"], None)
    assert command_argv(CommandInfo(shell=False, value="/bin/echo",
                                    arguments=["echo", "a", "b"])) == (
        ["echo", "a", "b"], "/bin/echo")
    assert command_argv(CommandInfo(shell=False, value="ls")) == (["ls"], "ls")
    with pytest.raises(ValueError):
        command_argv(CommandInfo(shell=True))


def test_task_environment() -> None:
    base = {"PATH": "/bin", TOKEN_ENV: "secret-token", PYTHONPATH_MARK: "/repo",
            "PYTHONPATH": os.pathsep.join(["/repo", "/mine"]), "MESOS_FRAMEWORK_ID": "fw"}
    task = TaskInfo(name="t", task_id="t1", agent_id="a", command=CommandInfo(
        value="x", environment=Environment(variables=[Variable(name="FOO", value="bar"),
                                                      Variable(name="PATH", value="/opt")])))
    env = task_environment(base, task, "/sandbox")
    assert env["FOO"] == "bar"
    assert env["PATH"] == "/opt"  # the task's own variables win
    assert env["MESOS_SANDBOX"] == "/sandbox"
    assert env["MESOS_TASK_ID"] == "t1"
    assert env["MESOS_FRAMEWORK_ID"] == "fw"
    assert TOKEN_ENV not in env and PYTHONPATH_MARK not in env
    assert env["PYTHONPATH"] == "/mine"
    only_ours = task_environment({PYTHONPATH_MARK: "/repo", "PYTHONPATH": "/repo"}, task, "/s")
    assert "PYTHONPATH" not in only_ours


def test_shutdown_grace_is_a_little_less_than_the_agents() -> None:
    assert shutdown_kill_grace(5.0) == 4.0
    assert 0 < shutdown_kill_grace(1.0) < 1.0
