"""Hostile JSON over real sockets: every endpoint answers 400 with a clear message (the
agent link: an ERROR, and the link stays up), and the daemon keeps serving.

Covers the scheduler and operator APIs and the agent WebSocket of a master daemon in this
test's event loop, and the executor API of a real agent (against a scripted master).
"""

from __future__ import annotations

import asyncio
import json

import pytest
import tornado.websocket
from agent_peer import AgentHarness
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse

from mesonb.config import MasterConfig
from mesonb.master.daemon import MasterDaemon
from mesonb.protocol.agent import AGENT_PATH
from mesonb.protocol.resources import Resources

pytestmark = pytest.mark.slow

DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def deep_field(call_type: str) -> bytes:
    """A call of ``call_type`` with an unmodelled field nested 150 levels: Python's parser
    takes it, Mesos's does not."""
    return (b'{"type": "' + call_type.encode() + b'", "x": ' + b"[" * 150 + b"]" * 150 + b"}")


@pytest.fixture
async def master(tmp_path):
    daemon = MasterDaemon(MasterConfig(port=0, work_dir=tmp_path, allocation_interval=0.2))
    await daemon.start()
    yield daemon
    await daemon.stop()


async def post(url: str, body: bytes, headers: dict[str, str] = JSON_HEADERS) -> HTTPResponse:
    try:
        return await AsyncHTTPClient().fetch(url, method="POST", body=body, headers=headers,
                                             request_timeout=20)
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.response


@pytest.mark.parametrize(("path", "call_type"), [
    ("/api/v1/scheduler", "SUBSCRIBE"), ("/api/v1", "GET_HEALTH"),
])
@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT, None, "batch"])
async def test_master_apis_answer_400_to_deep_nesting(master, path, call_type, body):
    if body == "batch":  # mesonb's batch of calls (a JSON array) goes through the same reader
        body = b"[" + deep_field("REVIVE") + b"]"
    response = await post(master.url + path, deep_field(call_type) if body is None else body)
    assert response.code == 400, response.body[:200]
    assert b"nested" in response.body or b"recursion" in response.body, response.body[:200]
    health = await AsyncHTTPClient().fetch(master.url + "/health")
    assert health.code == 200


async def test_agent_link_refuses_a_deep_frame_and_keeps_the_link(master):
    conn = await tornado.websocket.websocket_connect(f"ws://{master.address}{AGENT_PATH}")
    try:
        await conn.write_message(json.dumps({"type": "REGISTER", "register": {
            "version": "1.11.0", "agent_info": {
                "hostname": "peer", "port": 5051,
                "resources": Resources.parse("cpus:1;mem:64").to_json()}}}))
        commands = await read_until(conn, "REGISTERED")
        agent_id = commands[-1]["registered"]["agent_id"]["value"]
        for hostile in (DEEP_ARRAY, DEEP_OBJECT):
            await conn.write_message(hostile.decode())
            error = (await read_until(conn, "ERROR"))[-1]
            assert "nested deeper than 100 levels" in error["error"]["message"]
        # The link is still up and the master still takes the agent's messages.
        await conn.write_message(json.dumps({"type": "PONG"}))
        await conn.write_message(json.dumps({"type": "UNREGISTER"}))
        book = master.master.book
        await until(lambda: agent_id not in book.agents, "the agent's UNREGISTER")
    finally:
        conn.close()


async def test_executor_api_answers_400_to_deep_nesting(tmp_path):
    deep_message = (b'{"type": "MESSAGE", "executor_id": {"value": "e"}, '
                    b'"framework_id": {"value": "f"}, "x": ' + b"[" * 150 + b"]" * 150 + b"}")
    async with AgentHarness(tmp_path) as h:
        for body in (DEEP_OBJECT, DEEP_ARRAY, deep_message, b"[" + deep_message + b"]"):
            response = await h.http("/api/v1/executor", method="POST", body=body,
                                    headers=JSON_HEADERS)
            assert response.code == 400, response.body[:200]
            assert b"nested deeper than 100 levels" in response.body
        assert (await h.http("/state")).code == 200


async def read_until(conn: tornado.websocket.WebSocketClientConnection, kind: str,
                     timeout: float = 10.0) -> list[dict]:
    """Commands from the master up to the first of type ``kind``."""
    got: list[dict] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while not got or got[-1]["type"] != kind:
        remaining = deadline - asyncio.get_running_loop().time()
        assert remaining > 0, f"no {kind} from the master; got {got}"
        message = await asyncio.wait_for(conn.read_message(), remaining)
        assert message is not None, f"the master closed the link; got {got}"
        frame = json.loads(message)
        for command in frame if isinstance(frame, list) else [frame]:
            got.append(command)
            if command["type"] == kind:
                break
    return got


async def until(condition, what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)
