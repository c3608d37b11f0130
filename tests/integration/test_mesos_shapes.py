"""Mesos's shape over real HTTP: ``Accept`` with q=0 is "not acceptable" (406), and an
agent's pid is ``slave(1)@<ip>:<port>`` where the agent and the master show it, with the
same ip in the url of its offers."""

from __future__ import annotations

import asyncio
import json

import pytest
from agent_peer import AgentHarness
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse

from mesonb.config import MasterConfig
from mesonb.frameworks.driver import SchedulerDriver
from mesonb.master.daemon import MasterDaemon
from mesonb.protocol.agent import AgentCallType
from mesonb.testing.processes import ProcessCluster, get_json

pytestmark = pytest.mark.slow


@pytest.fixture
async def master(tmp_path):
    daemon = MasterDaemon(MasterConfig(port=0, work_dir=tmp_path, allocation_interval=0.2))
    await daemon.start()
    yield daemon
    await daemon.stop()


async def post(url: str, payload: dict, accept: str) -> HTTPResponse:
    headers = {"Content-Type": "application/json", "Accept": accept}
    try:
        return await AsyncHTTPClient().fetch(url, method="POST", body=json.dumps(payload),
                                             headers=headers, request_timeout=10)
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.response


@pytest.mark.parametrize("accept", [
    "application/x-protobuf;q=1, application/json;q=0",
    "*/*;q=0",
    "application/json;q=0, application/*;q=0",
])
async def test_accept_with_q_0_for_json_is_answered_406(master, accept):
    subscribe = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u",
                                                                        "name": "n"}}}
    answer = await post(master.url + "/api/v1/scheduler", subscribe, accept)
    assert answer.code == 406, answer.body
    assert b"Accept" in answer.body
    answer = await post(master.url + "/api/v1", {"type": "GET_HEALTH"}, accept)
    assert answer.code == 406, answer.body
    answer = await post(master.url + "/api/v1", {"type": "GET_HEALTH"},
                        "application/x-protobuf, application/json;q=0.5")
    assert answer.code == 200 and json.loads(answer.body)["type"] == "GET_HEALTH"


async def test_the_agent_says_its_ip_pid_when_it_registers(tmp_path):
    async with AgentHarness(tmp_path) as h:
        (register,) = h.master.of_type(AgentCallType.REGISTER)[:1]
        state = json.loads((await h.http("/state")).body)
        assert state["pid"] == f"slave(1)@127.0.0.1:{h.agent.port}"
        assert register.register.pid == state["pid"]


async def test_master_and_agent_show_the_same_ip_pid_and_offers_carry_that_ip(tmp_path):
    cluster = ProcessCluster(tmp_path, agents=1).start()
    driver = None
    try:
        (slave,) = cluster.state()["slaves"]
        agent_state = get_json(f"http://{cluster.agents[0].address}/state")
        assert agent_state["pid"] == f"slave(1)@127.0.0.1:{cluster.agents[0].port}"
        offers: asyncio.Queue[dict] = asyncio.Queue()

        class Handler:
            def on_offers(self, got):
                for offer in got:
                    offers.put_nowait(offer)

        driver = SchedulerDriver(cluster.address, {"user": "u", "name": "shapes"}, Handler())
        await driver.start()
        offer = await asyncio.wait_for(offers.get(), 20)
        assert offer["url"]["address"]["ip"] == "127.0.0.1"
        assert offer["url"]["address"]["port"] == cluster.agents[0].port
        assert slave["pid"] == agent_state["pid"]
    finally:
        if driver is not None:
            await driver.stop(teardown=True)
        cluster.stop()
