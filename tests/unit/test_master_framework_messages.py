"""HEARTBEAT, MESSAGE and SHUTDOWN between frameworks, the master and executors, on a fake
clock with no sockets (the end-to-end versions: tests/integration/test_scheduler_messages.py)."""

from __future__ import annotations

import base64

import pytest

from mesonb.protocol.agent import AgentCall, AgentCallType, AgentFrameworkMessage
from mesonb.protocol.errors import BadRequest
from mesonb.testing.harness import MasterHarness


def test_subscribed_is_followed_at_once_by_a_heartbeat_then_one_every_interval():
    h = MasterHarness(heartbeat_interval=15.0)
    h.add_agent()
    fw = h.subscribe()
    assert [m["type"] for m in fw.messages[:2]] == ["SUBSCRIBED", "HEARTBEAT"]
    fw.take()
    h.advance(14.0)
    assert fw.take("HEARTBEAT") == []
    h.advance(1.0)
    assert fw.take("HEARTBEAT") == [{"type": "HEARTBEAT"}]
    h.advance(15.0)
    assert len(fw.take("HEARTBEAT")) == 1
    again = h.subscribe(framework_id=fw.framework_id)  # a re-subscription too
    assert [m["type"] for m in again.take()[:2]] == ["SUBSCRIBED", "HEARTBEAT"]


def test_message_goes_to_the_executor_s_agent_and_an_unknown_agent_is_refused():
    h = MasterHarness()
    agent = h.add_agent()
    fw = h.subscribe()
    fw.call("MESSAGE", message={"agent_id": {"value": agent.agent_id},
                                "executor_id": {"value": "exec-1"},
                                "data": base64.b64encode(b"hello").decode()})
    (command,) = agent.commands("FRAMEWORK_MESSAGE")
    assert command["framework_message"] == {
        "framework_id": {"value": fw.framework_id}, "executor_id": {"value": "exec-1"},
        "data": base64.b64encode(b"hello").decode()}
    with pytest.raises(BadRequest, match="Agent nowhere is not known"):
        fw.call("MESSAGE", message={"agent_id": {"value": "nowhere"},
                                    "executor_id": {"value": "exec-1"}, "data": ""})


def test_shutdown_asks_the_agent_to_shut_the_executor_down():
    h = MasterHarness()
    agent = h.add_agent()
    fw = h.subscribe()
    fw.call("SHUTDOWN", shutdown={"agent_id": {"value": agent.agent_id},
                                  "executor_id": {"value": "exec-1"}})
    (command,) = agent.commands("SHUTDOWN_EXECUTOR")
    assert command["shutdown_executor"] == {"framework_id": {"value": fw.framework_id},
                                            "executor_id": {"value": "exec-1"}}


def test_an_executor_s_message_reaches_its_framework_as_a_message_event():
    h = MasterHarness()
    agent = h.add_agent()
    fw, other = h.subscribe("one"), h.subscribe("two")
    agent.send_call(AgentCall(type=AgentCallType.FRAMEWORK_MESSAGE, framework_message=(
        AgentFrameworkMessage(framework_id=fw.framework_id, executor_id="exec-1",
                              data=b"\x00bytes"))))
    (event,) = fw.take("MESSAGE")
    assert event["message"] == {"agent_id": {"value": agent.agent_id},
                                "executor_id": {"value": "exec-1"},
                                "data": base64.b64encode(b"\x00bytes").decode()}
    assert other.take("MESSAGE") == []
