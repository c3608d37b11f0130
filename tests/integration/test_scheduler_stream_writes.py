"""How the master writes a framework's event stream: what one loop turn and the
allocation run it causes send go out as one HTTP chunk (one write, one wake-up of the
framework), in order. Real master daemon over real HTTP; the agent is a WebSocket peer."""

from __future__ import annotations

import asyncio
import json

import pytest
from test_scheduler_api import PeerAgent, call_headers

from mesonb.config import MasterConfig
from mesonb.http.client import Connection, open_stream
from mesonb.master.daemon import MasterDaemon
from mesonb.protocol.recordio import Decoder
from mesonb.protocol.resources import Resources

pytestmark = pytest.mark.slow


@pytest.fixture
async def master(tmp_path):
    daemon = MasterDaemon(MasterConfig(port=0, work_dir=tmp_path))
    await daemon.start()
    yield daemon
    await daemon.stop()


async def test_a_tasks_update_and_the_offer_it_frees_leave_in_one_chunk(master):
    agent = await PeerAgent.connect(master, "cpus:1;mem:256")
    stream = await open_stream(master.url, "/api/v1/scheduler", {
        "type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "w"}}})
    decoder = Decoder()
    chunks: list[list[dict]] = []

    async def next_chunk_with(kind: str) -> list[dict]:
        while True:
            events = list(decoder.feed_json(await asyncio.wait_for(anext(stream.chunks), 10)))
            chunks.append(events)
            if any(e["type"] == kind for e in events):
                return events

    conn = Connection.to(master.url)
    try:
        subscribed = (await next_chunk_with("SUBSCRIBED"))[0]["subscribed"]
        fid = subscribed["framework_id"]
        offers = [e for e in await next_chunk_with("OFFERS") if e["type"] == "OFFERS"]
        offer = offers[0]["offers"]["offers"][0]
        task = {"name": "t", "task_id": {"value": "t1"}, "agent_id": offer["agent_id"],
                "command": {"value": "true"},
                "resources": Resources.parse("cpus:1;mem:256").to_json()}
        accept = {"type": "ACCEPT", "framework_id": fid, "accept": {
            "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0},
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}}
        answer = await conn.request("POST", "/api/v1/scheduler", json.dumps(accept).encode(),
                                    call_headers(stream.headers["mesos-stream-id"]))
        assert answer.status == 202
        await agent.next("RUN_TASK")
        await agent.update(fid["value"], "t1", "TASK_FINISHED")
        events = await next_chunk_with("UPDATE")
        # The whole agent is free again: its offer rides in the UPDATE's chunk, after it.
        assert [e["type"] for e in events] == ["UPDATE", "OFFERS"], chunks
        assert events[0]["update"]["status"]["state"] == "TASK_FINISHED"
        assert events[1]["offers"]["offers"][0]["agent_id"] == offer["agent_id"]
    finally:
        conn.close()
        stream.close()
        agent.close()
