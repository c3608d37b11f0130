"""A real agent running command tasks for a scripted master: updates, sandbox, kills."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from agent_peer import AgentHarness, alive, command_task, framework_info, leftovers, new_id, run

from mesonb.protocol.agent import AgentCallType
from mesonb.protocol.mesos import Duration
from mesonb.protocol.states import Reason, Source, TaskState

pytestmark = pytest.mark.slow


def test_shell_task_updates_are_retried_until_acknowledged(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        task_id = new_id()
        m.run_task(command_task(task_id, "echo hello; echo oops >&2"))
        # STARTING is the head: it is re-sent until acknowledged, RUNNING waits behind it.
        await m.until(lambda: len(m.updates(task_id)) >= 2)
        first = m.updates(task_id)
        assert [u.status.state for u in first[:2]] == [TaskState.TASK_STARTING] * 2
        assert first[0].status.uuid == first[1].status.uuid
        starting = first[0]
        assert starting.framework_id == "fw-1"
        assert starting.status.source is Source.SOURCE_EXECUTOR
        assert starting.status.agent_id == "agent-1"
        assert starting.status.executor_id == task_id
        assert starting.status.timestamp is not None
        m.ack(starting)
        finished = await m.terminal(task_id)
        assert m.states(task_id) == [TaskState.TASK_STARTING, TaskState.TASK_RUNNING,
                                     TaskState.TASK_FINISHED]
        assert finished.status.message == "Command exited with status 0"
        assert finished.latest_state is TaskState.TASK_FINISHED
        uuids = {u.status.uuid for u in m.updates(task_id)}
        assert len(uuids) == 3
        # Every update was acknowledged: no more retries, the task is completed.
        await m.until(lambda: not h.agent.status_updates.pending("fw-1", task_id))
        executor = h.agent.executors.frameworks.get("fw-1")
        sandbox = Path(first[0].status.executor_id and _sandbox(h, task_id))
        assert (sandbox / "stdout").read_text().count("hello") == 1
        assert "oops" in (sandbox / "stderr").read_text()
        assert executor is None or not executor.executors.get(task_id)
        exited = await m.until(lambda: m.of_type(AgentCallType.EXECUTOR_EXITED))
        assert exited[0].executor_exited.executor_id == task_id
        assert exited[0].executor_exited.status == 0

    run(body, tmp_path)


def test_updates_behind_an_acknowledged_one_are_still_retried(tmp_path: Path) -> None:
    """Acknowledging one task's update moves the earliest retry later (the agent's timer,
    set for the earlier one, fires and is set again): the other task's update and the
    next of the acknowledged task are re-sent all the same."""
    async def body(h: AgentHarness) -> None:
        m = h.master
        first, second = new_id("a"), new_id("b")
        m.run_task(command_task(first, "sleep 30"))
        m.run_task(command_task(second, "sleep 30"))
        await m.update(first, TaskState.TASK_STARTING)  # acknowledged
        await m.until(lambda: sum(u.status.state is TaskState.TASK_STARTING
                                  for u in m.updates(second)) >= 3)
        await m.until(lambda: sum(u.status.state is TaskState.TASK_RUNNING
                                  for u in m.updates(first)) >= 2)
        for task_id in (first, second):
            m.kill(task_id)
            await m.terminal(task_id)

    run(body, tmp_path)


def _sandbox(h: AgentHarness, task_id: str) -> Path:
    """The run directory of the command executor of ``task_id`` (via runs/latest)."""
    base = (tmp_path_of(h) / "slaves" / "agent-1" / "frameworks" / "fw-1" / "executors"
            / task_id / "runs")
    latest = base / "latest"
    assert latest.is_symlink()
    return base / latest.readlink()


def tmp_path_of(h: AgentHarness) -> Path:
    return h.work_dir


def test_failing_command_and_environment(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        failing = new_id()
        m.run_task(command_task(failing, "exit 3"))
        failed = await m.terminal(failing)
        assert failed.status.state is TaskState.TASK_FAILED
        assert failed.status.message == "Command exited with status 3"

        env_task = new_id()
        m.run_task(command_task(
            env_task, 'echo "FOO=$FOO SANDBOX=$MESOS_SANDBOX TASK=$MESOS_TASK_ID'
                      ' TOKEN=${MESOS_EXECUTOR_AUTHENTICATION_TOKEN:-none} PWD=$(pwd)"',
            env={"FOO": "bar baz"}))
        done = await m.terminal(env_task)
        assert done.status.state is TaskState.TASK_FINISHED
        sandbox = _sandbox(h, env_task)
        out = (sandbox / "stdout").read_text()
        assert "FOO=bar baz" in out
        assert f"SANDBOX={sandbox}" in out
        assert f"TASK={env_task}" in out
        assert "TOKEN=none" in out  # the executor's token is not the task's
        assert f"PWD={sandbox}" in out
        parts = sandbox.relative_to(tmp_path).parts
        assert parts[:7] == ("slaves", "agent-1", "frameworks", "fw-1", "executors",
                             env_task, "runs")

    run(body, tmp_path)


def test_shell_false_uses_arguments_as_argv(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        task_id = new_id()
        script = 'tr "\\0" "|" < /proc/$$/cmdline; echo; echo "zero=$0 one=$1"'
        m.run_task(command_task(task_id, "/bin/sh", shell=False,
                                arguments=["custom-argv0", "-c", script, "z", "x y"]))
        done = await m.terminal(task_id)
        assert done.status.state is TaskState.TASK_FINISHED
        out = (_sandbox(h, task_id) / "stdout").read_text()
        assert out.startswith("custom-argv0|-c|")  # arguments[0] is argv[0]
        assert "zero=z one=x y" in out

        missing = new_id()
        m.run_task(command_task(missing, "/no/such/binary", shell=False))
        failed = await m.terminal(missing)
        assert failed.status.state is TaskState.TASK_FAILED
        assert "Failed to launch task subprocess" in failed.status.message

    run(body, tmp_path)


def test_kill_sends_sigterm_then_sigkill_after_grace(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        task_id = new_id()
        fw = framework_info(capabilities=("TASK_KILLING_STATE",))
        m.run_task(command_task(
            task_id, "trap 'echo got TERM' TERM; echo started; while true; do sleep 0.05; done"),
            framework=fw)
        await m.update(task_id, TaskState.TASK_STARTING)
        await m.update(task_id, TaskState.TASK_RUNNING)
        sandbox = _sandbox(h, task_id)
        await m.until(lambda: "started" in (sandbox / "stdout").read_text())
        h.executor(task_id)  # remember its session for teardown
        m.kill(task_id, grace=1.0)
        killing = await m.update(task_id, TaskState.TASK_KILLING)
        assert killing.status.source is Source.SOURCE_EXECUTOR
        killed = await m.terminal(task_id)
        assert killed.status.state is TaskState.TASK_KILLED
        assert killed.status.message == "Command terminated with signal SIGKILL"
        assert "got TERM" in (sandbox / "stdout").read_text()
        assert m.states(task_id) == [TaskState.TASK_STARTING, TaskState.TASK_RUNNING,
                                     TaskState.TASK_KILLING, TaskState.TASK_KILLED]
        await m.until(lambda: m.of_type(AgentCallType.EXECUTOR_EXITED))
        assert not leftovers(h.sessions)

    run(body, tmp_path)


def test_kill_without_killing_capability_and_plain_term(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        task_id = new_id()
        m.run_task(command_task(task_id, "sleep 30"))
        await m.update(task_id, TaskState.TASK_STARTING)
        await m.update(task_id, TaskState.TASK_RUNNING)
        m.kill(task_id)
        killed = await m.terminal(task_id)
        assert killed.status.state is TaskState.TASK_KILLED
        assert killed.status.message == "Command terminated with signal SIGTERM"
        assert TaskState.TASK_KILLING not in m.states(task_id)

    run(body, tmp_path)


def test_kill_of_unknown_task_is_answered_lost_or_dropped(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        m.kill("never-launched", framework_id="fw-unknown")
        lost = await m.terminal("never-launched")
        assert lost.status.state is TaskState.TASK_LOST
        assert lost.status.source is Source.SOURCE_AGENT
        assert lost.status.reason is Reason.REASON_EXECUTOR_TERMINATED
        # A partition-aware framework known to the agent hears TASK_DROPPED.
        aware = framework_info("fw-aware", capabilities=("PARTITION_AWARE",))
        running = new_id()
        m.run_task(command_task(running, "sleep 30"), framework=aware)
        await m.update(running, TaskState.TASK_STARTING)
        m.kill("ghost", framework_id="fw-aware")
        dropped = await m.terminal("ghost")
        assert dropped.status.state is TaskState.TASK_DROPPED

    run(body, tmp_path)


def test_max_completion_time(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        task_id = new_id()
        m.run_task(command_task(task_id, "sleep 30",
                                max_completion_time=Duration(nanoseconds=300_000_000)))
        failed = await m.terminal(task_id)
        assert failed.status.state is TaskState.TASK_FAILED
        assert failed.status.reason is Reason.REASON_MAX_COMPLETION_TIME_REACHED

    run(body, tmp_path)


def test_state_files_and_metrics_endpoints(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        task_id = new_id()
        m.run_task(command_task(task_id, "echo line-one; echo line-two; sleep 30"))
        await m.update(task_id, TaskState.TASK_STARTING)
        await m.update(task_id, TaskState.TASK_RUNNING)
        sandbox = _sandbox(h, task_id)
        await m.until(lambda: "line-two" in (sandbox / "stdout").read_text())

        state = json.loads((await h.http("/state")).body)
        assert state["id"] == "agent-1"
        assert state["resources"]["cpus"] == 4
        assert state["resources"]["ports"] == "[31000-32000]"
        (fw,) = state["frameworks"]
        assert fw["id"] == "fw-1"
        (executor,) = fw["executors"]
        assert executor["id"] == task_id
        assert executor["directory"] == str(sandbox)
        assert executor["source"] == task_id
        (task,) = executor["tasks"]
        assert task["id"] == task_id
        assert task["state"] == "TASK_RUNNING"
        assert task["slave_id"] == "agent-1"
        assert [s["state"] for s in task["statuses"]] == ["TASK_STARTING", "TASK_RUNNING"]
        assert json.loads((await h.http("/state.json")).body)["id"] == "agent-1"
        assert json.loads((await h.http("/slave(1)/state")).body)["id"] == "agent-1"

        stdout = f"{executor['directory']}/stdout"
        read = json.loads((await h.http(f"/files/read?path={stdout}&offset=0")).body)
        assert read["offset"] == 0
        assert read["data"].startswith("line-one\nline-two\n")
        size = json.loads((await h.http(f"/files/read?path={stdout}&offset=-1")).body)
        assert size == {"data": "", "offset": len((sandbox / "stdout").read_bytes())}
        part = json.loads((await h.http(f"/files/read?path={stdout}&offset=9&length=8")).body)
        assert part == {"data": "line-two", "offset": 9}
        virtual = f"/frameworks/fw-1/executors/{task_id}/runs/latest/stdout"
        assert json.loads((await h.http(f"/files/read?path={virtual}&offset=0")).body)[
            "data"].startswith("line-one")
        listing = json.loads((await h.http(f"/files/browse?path={executor['directory']}")).body)
        names = {e["path"].rsplit("/", 1)[1]: e for e in listing}
        assert {"stdout", "stderr"} <= set(names)
        assert names["stdout"]["mode"].startswith("-rw")
        download = await h.http(f"/files/download?path={stdout}")
        assert download.code == 200
        assert "attachment" in download.headers["Content-Disposition"]
        assert download.body.startswith(b"line-one")
        assert download.headers["Accept-Ranges"] == "bytes"
        span = await h.http(f"/files/download?path={stdout}", headers={"Range": "bytes=9-16"})
        assert span.code == 206 and span.body == b"line-two"
        assert span.headers["Content-Range"] == f"bytes 9-16/{len(download.body)}"
        beyond = await h.http(f"/files/download?path={stdout}",
                              headers={"Range": f"bytes={len(download.body)}-"})
        assert beyond.code == 416

        for bad in (f"{executor['directory']}/../../../../../../../meta",
                    "/etc/passwd", f"{tmp_path}/meta/slaves/latest/slave.info"):
            assert (await h.http(f"/files/read?path={bad}&offset=0")).code == 403, bad
        assert (await h.http(f"/files/read?path={executor['directory']}/nope")).code == 404
        assert (await h.http("/files/read")).code == 400
        assert (await h.http(f"/files/read?path={stdout}&offset=abc")).code == 400
        assert (await h.http(f"/files/read?path={executor['directory']}&offset=0")).code == 400

        metrics = json.loads((await h.http("/metrics/snapshot")).body)
        assert metrics["slave/registered"] == 1
        assert metrics["slave/tasks_running"] == 1
        assert metrics["slave/executors_running"] == 1
        assert metrics["slave/uptime_secs"] > 0
        assert (await h.http("/health")).code == 200
        assert json.loads((await h.http("/version")).body)["version"].startswith("1.")

        m.kill(task_id)
        await m.terminal(task_id)
        await m.until(lambda: not h.agent.executors.frameworks)
        state = json.loads((await h.http("/state")).body)
        (done,) = state["completed_frameworks"]
        (executor,) = done["completed_executors"]
        assert executor["completed_tasks"][0]["state"] == "TASK_KILLED"

    run(body, tmp_path)


def test_agent_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        task_id = new_id()
        # A task that ignores SIGTERM and starts a grandchild in a new process group.
        m.run_task(command_task(task_id, "trap '' TERM; (sleep 60 &) ; sleep 60"))
        await m.update(task_id, TaskState.TASK_STARTING)
        await m.update(task_id, TaskState.TASK_RUNNING)
        executor = h.executor(task_id)
        sid = executor.container.pid
        await m.until(lambda: len(leftovers({sid})) >= 3)
        await h.agent.stop()
        assert not alive(sid)
        assert not leftovers({sid})
        assert m.of_type(AgentCallType.UNREGISTER)

    run(body, tmp_path, executor_shutdown_grace_period=1.0)


def test_the_executor_event_stream_sends_each_event_at_once(tmp_path: Path, monkeypatch) -> None:
    """The agent's side of an executor's SUBSCRIBE stream over its HTTP port (where Mesos
    executors connect) has Nagle's algorithm off, so a LAUNCH written right after another
    event does not wait for the executor's delayed ACK (up to 40 ms: the executor never
    writes back on that connection)."""
    import socket

    from mesonb.agent.executor_socket import ExecutorSocket

    async def no_socket(self):
        return None

    monkeypatch.setattr(ExecutorSocket, "start", no_socket)  # executors use the port

    async def body(h: AgentHarness) -> None:
        m = h.master
        task_id = new_id()
        # A checkpointing framework's command task has an executor process (the others
        # are run by the agent itself: mesonb.agent.command_runner).
        m.run_task(command_task(task_id, "sleep 30"), framework_info(checkpoint=True))
        await m.update(task_id, TaskState.TASK_STARTING)
        await m.update(task_id, TaskState.TASK_RUNNING)
        streams = [c.stream for c in h.agent._server._connections
                   if c.stream.socket is not None]
        assert streams, "the executor's stream should be open"
        assert any(s.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                   for s in streams)

    run(body, tmp_path)


def test_a_task_naming_a_volume_the_agent_lacks_is_dropped_with_resources_unknown(
        tmp_path: Path) -> None:
    """Mesos's agent drops a task whose checkpointed resources it does not hold (a
    persistent volume it never created): TASK_LOST, or TASK_DROPPED for a partition-aware
    framework, with REASON_RESOURCES_UNKNOWN; nothing runs."""
    volume = {"name": "disk", "type": "SCALAR", "scalar": {"value": 10},
              "reservations": [{"type": "DYNAMIC", "role": "db", "principal": "ops"}],
              "disk": {"persistence": {"id": "gone"},
                       "volume": {"container_path": "data", "mode": "RW"}}}

    async def body(h: AgentHarness) -> None:
        m = h.master
        for task_id, framework, state in (
                (new_id(), None, TaskState.TASK_LOST),
                (new_id(), framework_info("fw-aware", capabilities=("PARTITION_AWARE",)),
                 TaskState.TASK_DROPPED)):
            task = command_task(task_id, "touch data/x")
            task.resources = [*task.resources, volume]
            m.run_task(task, framework=framework)
            ended = await m.terminal(task_id)
            assert ended.status.state is state
            assert ended.status.reason is Reason.REASON_RESOURCES_UNKNOWN
            assert "Persistent volume 'gone' does not exist" in (ended.status.message or "")
            assert [u.status.state for u in m.updates(task_id)] == [state]

    run(body, tmp_path)
