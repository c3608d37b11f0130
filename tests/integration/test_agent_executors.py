"""Custom and default executors on a real agent: reuse, exits, timeouts, groups, auth."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

import pytest
from agent_peer import (
    AgentHarness,
    FakeMaster,
    alive,
    b64,
    command_task,
    framework_info,
    leftovers,
    new_id,
    run,
)

from mesonb.protocol.agent import (
    AgentCallType,
    AgentFrameworkMessage,
    MasterCommand,
    MasterCommandType,
    Notice,
    ShutdownExecutor,
    ShutdownFramework,
)
from mesonb.protocol.executor import TOKEN_ENV
from mesonb.protocol.mesos import CommandInfo, Environment, ExecutorInfo, TaskInfo, Variable
from mesonb.protocol.states import Reason, Source, TaskState

pytestmark = pytest.mark.slow
ROOT = str(Path(__file__).resolve().parents[2])

CUSTOM_EXECUTOR = textwrap.dedent('''
    import asyncio, os
    from mesonb.executor.driver import ExecutorDriver, ExecutorHandler
    from mesonb.protocol.states import TaskState

    class Handler(ExecutorHandler):
        async def launch(self, driver, task):
            await driver.update(task.task_id, TaskState.TASK_RUNNING, message=str(os.getpid()))
            if task.data == b"exit":
                os._exit(7)
            if task.data == b"finish":
                await driver.update(task.task_id, TaskState.TASK_FINISHED)

        async def kill(self, driver, task_id, policy):
            await driver.update(task_id, TaskState.TASK_KILLED)

        async def message(self, driver, data):
            await driver.send_message(b"echo:" + data)

    asyncio.run(ExecutorDriver(Handler()).run())
''')


def custom_executor(tmp_path: Path, executor_id: str = "custom") -> ExecutorInfo:
    script = tmp_path / "executor.py"
    script.write_text(CUSTOM_EXECUTOR)
    return ExecutorInfo(
        executor_id=executor_id, name="custom executor",
        command=CommandInfo(shell=False, value=sys.executable,
                            arguments=[sys.executable, str(script)],
                            environment=Environment(variables=[
                                Variable(name="PYTHONPATH", value=ROOT)])))


def data_task(task_id: str, data: bytes) -> TaskInfo:
    return TaskInfo(name=task_id, task_id=task_id, agent_id="agent-1", data=data)


def test_custom_executor_is_reused_and_its_exit_fails_its_tasks(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        executor = custom_executor(tmp_path)
        first, second, third = new_id(), new_id(), new_id()
        m.run_task(data_task(first, b"finish"), executor=executor)
        assert (await m.terminal(first)).status.state is TaskState.TASK_FINISHED
        m.run_task(data_task(second, b"run"), executor=executor)
        running = await m.update(second, TaskState.TASK_RUNNING)
        pids = {u.status.message for u in m.updates() if u.status.state is TaskState.TASK_RUNNING}
        assert pids == {running.status.message}, "both tasks ran in one executor process"
        h.executor(second)

        # Framework messages travel both ways.
        m.send(MasterCommand(type=MasterCommandType.FRAMEWORK_MESSAGE, framework_message=(
            AgentFrameworkMessage(framework_id="fw-1", executor_id="custom", data=b"ping"))))
        echoed = await m.until(lambda: m.of_type(AgentCallType.FRAMEWORK_MESSAGE))
        assert echoed[0].framework_message.data == b"echo:ping"
        assert echoed[0].framework_message.executor_id == "custom"

        m.run_task(data_task(third, b"exit"), executor=executor)  # the executor dies
        failed = await m.terminal(second)
        assert failed.status.state is TaskState.TASK_FAILED
        assert failed.status.reason is Reason.REASON_EXECUTOR_TERMINATED
        assert failed.status.source is Source.SOURCE_AGENT
        assert "exited with status 7" in failed.status.message
        exited = await m.until(lambda: m.of_type(AgentCallType.EXECUTOR_EXITED))
        assert exited[0].executor_exited.executor_id == "custom"
        assert exited[0].executor_exited.status == 7 << 8
        await m.terminal(third)
        assert not leftovers(h.sessions)

    run(body, tmp_path)


def test_executor_that_never_subscribes_times_out(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        lazy = ExecutorInfo(executor_id="lazy", command=CommandInfo(value="sleep 60"))
        task_id = new_id()
        m.run_task(data_task(task_id, b""), executor=lazy)
        await m.until(lambda: h.executor(task_id) is not None
                      and h.executor(task_id).container is not None)
        pid = h.executor(task_id).container.pid
        failed = await m.terminal(task_id)
        assert failed.status.state is TaskState.TASK_FAILED
        assert failed.status.reason is Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT
        await m.until(lambda: m.of_type(AgentCallType.EXECUTOR_EXITED))
        assert not alive(pid)

    run(body, tmp_path, executor_registration_timeout=0.5)


def test_kill_before_the_executor_registers(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        lazy = ExecutorInfo(executor_id="lazy", command=CommandInfo(value="sleep 60"))
        task_id = new_id()
        m.run_task(data_task(task_id, b""), executor=lazy)
        await m.until(lambda: h.executor(task_id) is not None
                      and h.executor(task_id).container is not None)
        pid = h.executor(task_id).container.pid
        m.kill(task_id)
        killed = await m.terminal(task_id)
        assert killed.status.state is TaskState.TASK_KILLED
        assert killed.status.reason is Reason.REASON_TASK_KILLED_DURING_LAUNCH
        assert killed.status.source is Source.SOURCE_AGENT
        await m.until(lambda: m.of_type(AgentCallType.EXECUTOR_EXITED))
        assert not alive(pid)
        assert len(m.updates(task_id)) == 1

    run(body, tmp_path)


def group_executor(executor_id: str = "pod") -> ExecutorInfo:
    return ExecutorInfo.from_json({"executor_id": {"value": executor_id}, "type": "DEFAULT"})


def test_task_group_runs_in_the_default_executor(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        a, b = new_id("a"), new_id("b")
        m.run_group([command_task(a, "echo from-a; echo $MESOS_SANDBOX"),
                     command_task(b, "echo from-b")], group_executor())
        for task_id in (a, b):
            done = await m.terminal(task_id)
            assert done.status.state is TaskState.TASK_FINISHED, done.status
            assert m.states(task_id) == [TaskState.TASK_STARTING, TaskState.TASK_RUNNING,
                                         TaskState.TASK_FINISHED]
        runs = tmp_path / "slaves/agent-1/frameworks/fw-1/executors/pod/runs/latest"
        out = (runs / "tasks" / a / "stdout").read_text()
        assert out.startswith("from-a\n")
        assert out.split("\n")[1] == str((runs / "tasks" / a).resolve())
        assert (runs / "tasks" / b / "stdout").read_text() == "from-b\n"
        await m.until(lambda: m.of_type(AgentCallType.EXECUTOR_EXITED))

    run(body, tmp_path)


def test_a_failing_task_kills_its_group(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        bad, slow = new_id("bad"), new_id("slow")
        m.run_group([command_task(bad, "exit 1"), command_task(slow, "sleep 60")],
                    group_executor())
        assert (await m.terminal(bad)).status.state is TaskState.TASK_FAILED
        killed = await m.terminal(slow)
        assert killed.status.state is TaskState.TASK_KILLED
        await m.until(lambda: m.of_type(AgentCallType.EXECUTOR_EXITED))

    run(body, tmp_path)


def test_shutdown_framework_kills_its_executors_quietly(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        task_id = new_id()
        m.run_task(command_task(task_id, "sleep 60"))
        await m.update(task_id, TaskState.TASK_STARTING)
        await m.update(task_id, TaskState.TASK_RUNNING)
        sid = h.executor(task_id).container.pid
        m.send(MasterCommand(type=MasterCommandType.SHUTDOWN_FRAMEWORK,
                             shutdown_framework=ShutdownFramework(framework_id="fw-1")))
        await m.until(lambda: m.of_type(AgentCallType.EXECUTOR_EXITED))
        await m.until(lambda: not h.agent.executors.frameworks)
        assert not leftovers({sid})
        assert m.states(task_id) == [TaskState.TASK_STARTING, TaskState.TASK_RUNNING]

    run(body, tmp_path)


def test_master_shutdown_kills_everything_and_stops_the_agent(tmp_path: Path) -> None:
    """Mesos's ShutdownMessage: the agent kills its executors and terminates (it used to
    register again as a new agent); its id is forgotten, so a restart registers afresh."""
    async def body(h: AgentHarness) -> None:
        m = h.master
        task_id = new_id()
        m.run_task(command_task(task_id, "sleep 60"))
        await m.update(task_id, TaskState.TASK_STARTING)
        sid = h.executor(task_id).container.pid
        assert (tmp_path / "meta/slaves/latest").is_symlink()
        m.send(MasterCommand(type=MasterCommandType.SHUTDOWN,
                             shutdown=Notice(message="removed by test")))
        await asyncio.wait_for(h.agent.wait_stopped(), 30)
        assert h.agent.exit_code == 0
        assert len(m.of_type(AgentCallType.REGISTER)) == 1
        assert not m.of_type(AgentCallType.UNREGISTER)
        assert not (tmp_path / "meta/slaves/latest").exists()
        assert not leftovers({sid})

    run(body, tmp_path)


def test_executor_api_authentication(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        secret = {"Authorization": "Bearer s3cret"}
        task_id = new_id()
        m.run_task(command_task(task_id, "sleep 60"))
        await m.update(task_id, TaskState.TASK_STARTING)
        executor = h.executor(task_id)
        token = executor.token

        def call(executor_id: str, framework_id: str = "fw-1") -> bytes:
            return json.dumps({
                "type": "UPDATE", "framework_id": {"value": framework_id},
                "executor_id": {"value": executor_id},
                "update": {"status": {"task_id": {"value": task_id}, "state": "TASK_RUNNING",
                                      "uuid": b64(b"0123456789abcdef")}}}).encode()

        json_ct = {"Content-Type": "application/json"}
        api = "/api/v1/executor"
        assert (await h.http(api, method="POST", body=call(task_id), headers=json_ct)).code == 401
        bad = {**json_ct, "Authorization": "Bearer wrong"}
        assert (await h.http(api, method="POST", body=call(task_id), headers=bad)).code == 401
        mine = {**json_ct, "Authorization": f"Bearer {token}"}
        other = await h.http(api, method="POST", body=call("someone-else"), headers=mine)
        assert other.code == 403
        unknown = await h.http(api, method="POST", body=call("x", "fw-x"),
                               headers={**json_ct, **secret})
        assert unknown.code == 400
        assert b"not known" in unknown.body
        assert (await h.http(api, method="POST", body=b"{", headers=mine)).code == 400
        text = {"Content-Type": "text/plain", "Authorization": f"Bearer {token}"}
        assert (await h.http(api, method="POST", body=call(task_id), headers=text)).code == 415
        staging = call(task_id).replace(b"TASK_RUNNING", b"TASK_STAGING")
        assert (await h.http(api, method="POST", body=staging, headers=mine)).code == 400
        assert (await h.http(api, headers=mine)).code == 405

        assert (await h.http("/state")).code == 401
        assert (await h.http("/state", headers=secret)).code == 200
        assert (await h.http("/health")).code == 200
        assert (await h.http("/files/browse?path=/")).code == 401
        assert executor.info.executor_id == task_id
        env = (executor.directory / "stdout").exists()
        assert env
        m.kill(task_id)
        await m.terminal(task_id)

    master = FakeMaster(secret="s3cret")
    run(body, tmp_path, master=master, secret="s3cret")


def test_executor_environment(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        script = tmp_path / "env_executor.py"
        script.write_text("import json, os\nprint(json.dumps(dict(os.environ)))\n")
        info = ExecutorInfo(executor_id="envdump", command=CommandInfo(
            shell=False, value=sys.executable, arguments=[sys.executable, str(script)]))
        task_id = new_id()
        m.run_task(data_task(task_id, b""), executor=info,
                   framework=framework_info(checkpoint=True))
        await m.terminal(task_id)  # the executor exits without subscribing
        sandbox = tmp_path / "slaves/agent-1/frameworks/fw-1/executors/envdump/runs/latest"
        env = json.loads((sandbox / "stdout").read_text())
        assert env["MESOS_FRAMEWORK_ID"] == "fw-1"
        assert env["MESOS_EXECUTOR_ID"] == "envdump"
        assert env["MESOS_AGENT_ID"] == env["MESOS_SLAVE_ID"] == "agent-1"
        assert env["MESOS_SANDBOX"] == env["MESOS_DIRECTORY"] == str(sandbox.resolve())
        assert env["MESOS_AGENT_ENDPOINT"] == f"127.0.0.1:{h.agent.port}"
        assert env["MESOS_CHECKPOINT"] == "1"
        assert env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "2secs"
        assert env["MESOS_RECOVERY_TIMEOUT"] == "900secs"
        assert len(env[TOKEN_ENV]) >= 32
        assert "MESONB_SECRET" not in env
        # checkpoint=true frameworks leave Mesos's meta layout behind
        meta = tmp_path / "meta/slaves/agent-1/frameworks/fw-1"
        assert (meta / "framework.info").exists()
        assert (meta / "executors/envdump/executor.info").exists()
        run_dir = meta / "executors/envdump/runs/latest"
        journal = run_dir / "tasks" / task_id / "task.updates"
        await m.until(lambda: '"ACK"' in journal.read_text())
        updates = journal.read_text().splitlines()
        records = [json.loads(line) for line in updates]
        assert records[0]["type"] == "UPDATE"
        assert records[0]["update"]["status"]["state"] == "TASK_FAILED"
        assert records[-1]["type"] == "ACK"
        assert (run_dir / "tasks" / task_id / "task.info").exists()
        assert (run_dir / "pids/forked.pid").read_text().isdigit()

    run(body, tmp_path)


def test_shutdown_executor_kills_its_task_with_the_grace_period(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        task_id = new_id()
        m.run_task(command_task(task_id, "sleep 60"))
        await m.update(task_id, TaskState.TASK_STARTING)
        await m.update(task_id, TaskState.TASK_RUNNING)
        sid = h.executor(task_id).container.pid
        m.send(MasterCommand(type=MasterCommandType.SHUTDOWN_EXECUTOR,
                             shutdown_executor=ShutdownExecutor(framework_id="fw-1",
                                                                executor_id=task_id)))
        killed = await m.terminal(task_id)
        assert killed.status.state is TaskState.TASK_KILLED
        assert killed.status.source is Source.SOURCE_EXECUTOR
        await m.until(lambda: m.of_type(AgentCallType.EXECUTOR_EXITED))
        assert not leftovers({sid})

    run(body, tmp_path)
