"""Small points of Mesos's shape: ``Accept`` q-values, the agent's pid and the offer's url."""

from __future__ import annotations

import pytest

from mesonb.http.base import JSON, RECORDIO, accepts
from mesonb.master.book import Agent, Offer
from mesonb.protocol.agent import AgentCall, AgentCallType, Register, dumps, load_call
from mesonb.protocol.mesos import AgentInfo
from mesonb.protocol.resources import Resources


@pytest.mark.parametrize(("accept", "media", "ok"), [
    ("application/json", JSON, True),
    ("*/*", JSON, True),
    ("application/*", JSON, True),
    ("text/html", JSON, False),
    ("application/x-protobuf;q=1, application/json;q=0", JSON, False),
    ("application/x-protobuf, application/json; q=0.0", JSON, False),
    ("*/*;q=0", JSON, False),
    ("application/json;q=0, */*", JSON, False),  # the specific range decides
    ("application/*;q=0, application/json;q=0.2", JSON, True),
    ("*/*;q=0, application/*;q=0.1", JSON, True),
    ("Application/JSON;Q=0.5", JSON, True),
    ("application/json;q=oops", JSON, True),  # a malformed q-value is ignored
    ("application/recordio;q=0", RECORDIO, False),
    ("application/recordio", RECORDIO, True),
])
def test_accept_takes_q_values_and_the_most_specific_range(accept, media, ok):
    assert accepts(accept, media) is ok


def agent(upid: str | None) -> Agent:
    info = AgentInfo(hostname="node-7.example", port=5051)
    return Agent("A1", info, Resources.parse("cpus:1"), "1.11.0", upid=upid)


@pytest.mark.parametrize(("upid", "ip"), [
    ("slave(1)@10.1.2.3:5051", "10.1.2.3"),
    ("slave(1)@[fd00::7]:5051", "fd00::7"),
])
def test_the_agent_s_pid_and_the_offer_url_use_its_ip(upid, ip):
    a = agent(upid)
    assert a.pid == upid and a.ip == ip
    offer = Offer("O1", "F1", "A1", "*", Resources.parse("cpus:1"), 0.0).to_json(a)
    assert offer["url"] == {"scheme": "http", "path": "/slave(1)", "address": {
        "hostname": "node-7.example", "ip": ip, "port": 5051}}
    assert offer["hostname"] == "node-7.example"


def test_an_agent_that_did_not_say_its_pid_falls_back_to_its_hostname():
    a = agent(None)
    assert (a.pid, a.ip) == ("slave(1)@node-7.example:5051", "node-7.example")


def test_register_carries_the_agent_s_pid():
    register = Register(agent_info=AgentInfo(hostname="h"), version="1.11.0",
                        pid="slave(1)@127.0.0.1:5051")
    call = load_call(dumps(AgentCall(type=AgentCallType.REGISTER, register=register)))
    assert call.register.pid == "slave(1)@127.0.0.1:5051"
