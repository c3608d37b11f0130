"""The in-process transport (mesonb.http.inproc): a framework and agents on the master's
own loop reach it without sockets, with the same checks and answers as over HTTP."""

from __future__ import annotations

import asyncio
import json

import pytest

from mesonb.agent.agent import Agent
from mesonb.config import AgentConfig, MasterConfig
from mesonb.frameworks.driver import SCHEDULER_PATH, SchedulerDriver
from mesonb.http.client import Connection, HTTPError
from mesonb.master.daemon import MasterDaemon
from mesonb.master.http.inproc import AgentLink

pytestmark = pytest.mark.slow


async def until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def master(tmp_path):
    daemon = MasterDaemon(MasterConfig(port=0, work_dir=tmp_path / "m", secret="s3cret",
                                       allocation_interval=0.2))
    await daemon.start()
    yield daemon
    await daemon.stop()


class Handler:
    def __init__(self) -> None:
        self.offers: asyncio.Queue[dict] = asyncio.Queue()
        self.updates: list[dict] = []

    def on_offers(self, offers):
        for offer in offers:
            self.offers.put_nowait(offer)

    def on_update(self, status):
        self.updates.append(status)


async def test_credentials_are_checked_in_process_too(master):
    wrong = SchedulerDriver(master.address, {"user": "u", "name": "n"}, Handler(),
                            secret="wrong")
    with pytest.raises(HTTPError) as info:
        await wrong.start(timeout=5)
    assert info.value.status == 401
    await wrong.stop()
    answer = await Connection.to(master.url, inproc=True).request(
        "POST", SCHEDULER_PATH, b"{}", {"Content-Type": "application/json"})
    assert answer.status == 401 and answer.headers["www-authenticate"].startswith("Bearer")


async def test_a_standby_answers_in_process_as_over_http(master):
    conn = Connection.to(master.url, {"Authorization": "Bearer s3cret"}, inproc=True)
    body = json.dumps({"type": "REVIVE", "framework_id": {"value": "x"}}).encode()
    master.master.leading, master.master.leader = False, "10.0.0.9:5050"
    try:
        answer = await conn.request("POST", SCHEDULER_PATH, body, {})
        assert answer.status == 307
        assert answer.headers["location"] == f"//10.0.0.9:5050{SCHEDULER_PATH}"
        master.master.leader = None
        assert (await conn.request("POST", SCHEDULER_PATH, body, {})).status == 503
    finally:
        master.master.leading = True
    bad = await conn.request("POST", SCHEDULER_PATH, b'{"type": "NOPE"}', {})
    assert bad.status == 400 and b"NOPE" in bad.body


async def test_agent_and_framework_in_process_run_a_task_and_part_cleanly(master, tmp_path):
    agent = Agent(AgentConfig(master=master.address, port=0, work_dir=tmp_path / "a",
                              resources="cpus:2;mem:1024;disk:1024", secret="s3cret"))
    await agent.start()
    handler = Handler()
    driver = SchedulerDriver(master.address, {"user": "u", "name": "inproc"}, handler,
                             secret="s3cret")
    try:
        book = master.master.book
        await until(lambda: any(a.active for a in book.agents.values()))
        (registered,) = book.agents.values()
        session = registered.send.__self__  # the master's end of the agent link
        assert isinstance(session._write.__self__, AgentLink)
        assert session._write.__self__ is agent.link._conn  # the same link, both ends

        framework_id = await driver.start()
        offer = await asyncio.wait_for(handler.offers.get(), 10)
        await driver.launch([offer["id"]["value"]], [{
            "name": "t", "task_id": {"value": "t1"}, "agent_id": offer["agent_id"],
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
            "command": {"value": "echo in-process"}}])
        await until(lambda: any(u["state"] == "TASK_FINISHED" for u in handler.updates))
        await until(lambda: not agent.status_updates.pending(framework_id, "t1"))
        assert [u["state"] for u in handler.updates] == [
            "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    finally:
        await driver.stop(teardown=True)
        await agent.stop()
    # The agent said goodbye over the in-process link: the master removed it.
    await until(lambda: not master.master.book.agents)
    assert not master.master.book.frameworks  # torn down over the in-process stream


async def test_the_master_closing_the_link_makes_the_agent_reconnect(master, tmp_path):
    agent = Agent(AgentConfig(master=master.address, port=0, work_dir=tmp_path / "a",
                              resources="cpus:1;mem:512", secret="s3cret"))
    await agent.start()
    try:
        book = master.master.book
        await until(lambda: any(a.active for a in book.agents.values()))
        (registered,) = book.agents.values()
        first = agent.link._conn
        registered.close()  # the master drops the link (as when a new link replaces it)
        await until(lambda: agent.link._conn not in (None, first))
        await until(lambda: registered.active and registered.send is not None)
        assert registered.reregistered_time is not None
    finally:
        await agent.stop()


def test_a_cluster_over_sockets_when_in_process_is_off(monkeypatch):
    from mesonb import Cluster

    monkeypatch.setenv("MESONB_INPROC", "0")
    with Cluster.local(agents=1) as cluster:
        assert cluster.submit(abs, -5, cpus=0.1, mem=64).result(30) == 5
        book = cluster.local.master.master.book
        (registered,) = book.agents.values()
        assert type(registered.send.__self__._write.__self__).__name__ == "AgentSocket"


def _calls(framework_id: str) -> list:
    """JSON calls a framework might POST, valid and not: in-process they are handed over
    as objects, over a socket as text; the answers must be the same."""
    fw = {"value": framework_id}
    deep: dict = {}
    for _ in range(120):
        deep = {"x": deep}
    revive = {"type": "REVIVE", "framework_id": fw}
    return [
        revive,
        {"type": "SUPPRESS", "framework_id": fw, "suppress": {"role": "*"}},
        [revive, {"type": "REVIVE", "framework_id": fw, "revive": {"roles": []}}],
        {"type": "NOPE", "framework_id": fw},
        {"framework_id": fw},
        {"type": "DECLINE", "framework_id": fw},
        {"type": "DECLINE", "framework_id": fw, "decline": {"offer_ids": "o1"}},
        {"type": "DECLINE", "framework_id": fw, "decline": {"offer_ids": [{"value": 5}]}},
        {"type": "DECLINE", "framework_id": fw,
         "decline": {"offer_ids": [], "filters": {"refuse_seconds": float("nan")}}},
        {"type": "REVIVE", "framework_id": fw, "surplus": float("inf")},
        {"type": "REVIVE", "framework_id": fw, "surplus": deep},
        {"type": "REVIVE", "framework_id": fw, "surplus": None},
        {"type": "REVIVE", "framework_id": fw, "surplus": 2**70},
        {"type": "REVIVE", "framework_id": {"value": "someone-else"}},
        {"type": "ACKNOWLEDGE", "framework_id": fw, "acknowledge": {
            "agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "not base64!"}},
        [],
        [revive, 3],
        [revive, {"type": "SUBSCRIBE", "framework_id": fw}],
        [revive, {"type": "KILL", "framework_id": fw}],
        {"type": "SUBSCRIBE"},
        "REVIVE",
        7,
    ]


async def test_calls_handed_over_in_process_are_answered_as_their_text_over_a_socket(
        master, monkeypatch):
    """Valid and invalid calls get the same status and message in-process (the JSON
    object handed over) as over the master's HTTP port (its text), and the object handed
    over is left as it was."""
    import copy

    from mesonb.http.client import open_stream

    stream = await open_stream(master.url, SCHEDULER_PATH, {
        "type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "same"}}},
        {"Authorization": "Bearer s3cret"}, inproc=True)
    try:
        first = (await anext(stream.chunks))[0]
        framework_id = first["subscribed"]["framework_id"]["value"]
        headers = {"Authorization": "Bearer s3cret"}
        inproc = Connection.to(master.url, headers, inproc=True)
        socket = Connection.to(master.url, headers)
        stream_id = {"Mesos-Stream-Id": stream.headers["mesos-stream-id"]}
        as_text = []  # in-process calls that went as text
        endpoint = master._endpoint
        text_request = endpoint.request
        monkeypatch.setattr(endpoint, "request",
                            lambda *args: as_text.append(args[2]) or text_request(*args))
        handed_over = []
        for payload in _calls(framework_id):
            texts_before = len(as_text)
            answers = []
            for conn in (inproc, socket):
                before = copy.deepcopy(payload)
                try:
                    answer = await conn.post_json(SCHEDULER_PATH, payload, stream_id)
                    answers.append((answer.status, answer.body))
                except HTTPError as exc:
                    answers.append((exc.status, exc.body))
                assert payload == before or payload != payload  # (NaN is not equal)
            assert answers[0] == answers[1], (payload, answers)
            if len(as_text) == texts_before:
                handed_over.append(payload)
        assert master.master.book.frameworks[framework_id].connected
        # the valid calls went as objects; what the codec refused, and what is not plain
        # JSON (NaN, None, too deep, beyond 64 bits, not a dict or list), as text
        calls = _calls(framework_id)
        assert handed_over == [*calls[:3], calls[13]]
        socket.close()
    finally:
        stream.close()
