"""The agent's connection to the master: registration, re-registration, pings, redirects."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import tornado.web
from agent_peer import AgentHarness, FakeMaster, command_task, new_id, run
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from mesonb.protocol.agent import AGENT_PATH, AgentCallType, MasterCommand, MasterCommandType
from mesonb.protocol.resources import Resources
from mesonb.protocol.states import TaskState

pytestmark = pytest.mark.slow


def test_register_then_reregister_with_the_checkpointed_id(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        (first,) = m.of_type(AgentCallType.REGISTER)
        reg = first.register
        assert reg.agent_id is None
        assert reg.version.startswith("1.")
        info = reg.agent_info
        assert info.port == h.agent.port
        assert info.hostname
        total = Resources.from_json(info.resources)
        assert total.get("cpus") == 4
        assert total.get("mem") == 8 * 1024 - 1024
        assert total.get("disk") == 100 * 1024 - 5 * 1024
        assert total.ranges["ports"] == ((31000, 32000),)
        assert {a.name: a.value() for a in info.attributes} == {"rack": "a", "zone": 1.0}
        assert (tmp_path / "meta/slaves/latest").readlink().name == "agent-1"
        assert (tmp_path / "meta/slaves/agent-1/slave.info").exists()

        await h.agent.stop()
        again = await h.start()
        assert again.agent_id == "agent-1"
        second = m.of_type(AgentCallType.REGISTER)[-1].register
        assert second.agent_id == "agent-1"

    run(body, tmp_path, attributes="rack:a;zone:1")


def test_reconnect_reregisters_with_tasks_and_resends_updates_at_once(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        task_id = new_id()
        m.run_task(command_task(task_id, "sleep 60"))
        starting = await m.update(task_id, TaskState.TASK_STARTING, ack=False)
        await m.until(lambda: h.agent.status_updates.pending("fw-1", task_id))
        count = len(m.updates(task_id))
        m.conn.close()  # the master goes away for a moment
        await m.until(lambda: len(m.of_type(AgentCallType.REGISTER)) >= 2)
        reg = m.of_type(AgentCallType.REGISTER)[-1].register
        assert reg.agent_id == "agent-1"
        (reported,) = reg.tasks
        assert reported.task.task_id == task_id
        assert reported.framework_id == "fw-1"
        assert reported.state in (TaskState.TASK_STARTING, TaskState.TASK_RUNNING)
        assert [f.id for f in reg.frameworks] == ["fw-1"]
        # The in-flight update is resent right after re-registration (retry interval: 60s).
        await m.until(lambda: len(m.updates(task_id)) > count, timeout=5)
        resent = m.updates(task_id)[count]
        assert resent.status.uuid == starting.status.uuid
        m.ack(resent)
        await m.update(task_id, TaskState.TASK_RUNNING)
        m.kill(task_id)
        await m.terminal(task_id)

    run(body, tmp_path, status_update_retry_min=60.0, status_update_retry_max=60.0)


def test_pings_are_answered_and_silence_means_reconnect(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        m.send(MasterCommand(type=MasterCommandType.PING))
        await m.until(lambda: m.of_type(AgentCallType.PONG))
        m.conn.write_message("this is not JSON")  # ignored, the link survives
        m.send(MasterCommand(type=MasterCommandType.PING))
        await m.until(lambda: len(m.of_type(AgentCallType.PONG)) == 2)
        assert m.connections == 1
        # No PING for 5 intervals (5 x 0.1 s): the agent drops the link and re-registers.
        await m.until(lambda: m.connections >= 2)
        await m.until(lambda: len(m.of_type(AgentCallType.REGISTER)) >= 2)

    run(body, tmp_path, master=FakeMaster(ping_interval=0.1))


def test_register_is_retried_until_registered(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        agent = h.new_agent()
        await agent.start()
        await m.until(lambda: len(m.of_type(AgentCallType.REGISTER)) >= 3)
        assert m.connections == 1
        assert not agent.registered
        m.auto_register = True
        await agent.wait_registered(timeout=10)

    run(body, tmp_path, master=FakeMaster(auto_register=False), start_agent=False)


def test_follows_a_307_from_a_non_leading_master(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        class Redirect(tornado.web.RequestHandler):
            def get(self) -> None:
                self.redirect(f"//{h.master.address}{AGENT_PATH}", status=307)

        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(tornado.web.Application([(AGENT_PATH, Redirect)]))
        server.add_sockets(sockets)
        try:
            agent = h.new_agent(master=f"127.0.0.1:{sockets[0].getsockname()[1]}")
            await agent.start()
            await agent.wait_registered(timeout=10)
            assert agent.link.master_address == h.master.address
        finally:
            server.stop()

    run(body, tmp_path, start_agent=False)


def test_secret_is_sent_to_the_master(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        assert h.agent.registered
        assert h.master.of_type(AgentCallType.REGISTER)

    run(body, tmp_path, master=FakeMaster(secret="s3cret"), secret="s3cret")


def test_wrong_secret_never_registers(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        agent = h.new_agent()
        await agent.start()
        with pytest.raises(asyncio.TimeoutError):
            await agent.wait_registered(timeout=1.0)
        assert not h.master.calls

    run(body, tmp_path, master=FakeMaster(secret="s3cret"), secret="wrong", start_agent=False)
