"""The master's agent link writes its frames without tornado's per-write Task
(mesonb.master.http.agent_link.AgentSocket._write): an agent reads the same text frames
as through WebSocketHandler.write_message."""

from __future__ import annotations

import json

import pytest
import tornado.websocket

from mesonb.config import MasterConfig
from mesonb.master.daemon import MasterDaemon
from mesonb.protocol.agent import AGENT_PATH
from mesonb.protocol.resources import Resources

pytestmark = pytest.mark.slow


async def register(daemon: MasterDaemon) -> tuple[str | bytes | None, str | bytes | None]:
    """Register an agent; the REGISTERED frame and the next one (the PING of a second
    REGISTER refused: ERROR), as the agent's socket reads them."""
    conn = await tornado.websocket.websocket_connect(f"ws://{daemon.address}{AGENT_PATH}")
    try:
        await conn.write_message(json.dumps({"type": "REGISTER", "register": {
            "version": "1.11.0",
            "agent_info": {"hostname": "peer", "port": 5051,
                           "resources": Resources.parse("cpus:1;mem:64").to_json()}}}))
        first = await conn.read_message()
        await conn.write_message("{not json")
        second = await conn.read_message()
        return first, second
    finally:
        conn.close()


@pytest.mark.parametrize("fast", [True, False])
async def test_the_agent_reads_the_same_text_frames(tmp_path, monkeypatch, fast) -> None:
    from mesonb.master.http import agent_link

    writes: list[str] = []
    original = agent_link.AgentSocket.write_message

    def write_message(self, message, binary=False):
        writes.append(message)
        return original(self, message, binary)

    monkeypatch.setattr(agent_link.AgentSocket, "write_message", write_message)
    if not fast:  # a tornado without the private frame writer: write_message, as before
        monkeypatch.setattr(agent_link, "frame_writer", lambda conn: None)
    daemon = MasterDaemon(MasterConfig(port=0, work_dir=tmp_path))
    await daemon.start()
    try:
        first, second = await register(daemon)
    finally:
        await daemon.stop()
    assert isinstance(first, str) and isinstance(second, str)  # text frames
    registered, error = json.loads(first), json.loads(second)
    assert registered["type"] == "REGISTERED" and registered["registered"]["agent_id"]["value"]
    assert error["type"] == "ERROR" and error["error"]["message"]
    assert writes == ([] if fast else [first, second])
