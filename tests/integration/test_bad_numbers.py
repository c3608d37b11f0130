"""Numbers that cannot be resources or durations, against real master and agent processes:
each is refused with a 400 naming the field before anything changes (an ACCEPT keeps its
offer usable), the agent link answers ERROR and stays up, the agent's command line says
what is wrong, and ``/master/state`` stays valid JSON."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
import requests
import tornado.websocket
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse

from mesonb import Cluster
from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.agent import AGENT_PATH
from mesonb.protocol.resources import Resources
from mesonb.testing.processes import ProcessCluster, get_json

pytestmark = pytest.mark.slow
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class Handler:
    def __init__(self) -> None:
        self.offers: asyncio.Queue[dict] = asyncio.Queue()
        self.statuses: list[dict] = []

    def on_offers(self, offers: list[dict]) -> None:
        for offer in offers:
            self.offers.put_nowait(offer)

    def on_update(self, status: dict) -> None:
        self.statuses.append(status)


async def post(url: str, body: bytes, headers: dict[str, str]) -> HTTPResponse:
    try:
        return await AsyncHTTPClient().fetch(url, method="POST", body=body, headers=headers,
                                             request_timeout=20)
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.response


async def until(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def strict_json(text: bytes) -> object:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in /master/state")

    return json.loads(text, parse_constant=refuse)


async def test_bad_numbers_are_refused_and_nothing_changes(tmp_path):
    cluster = ProcessCluster(tmp_path, agents=1).start()
    handler = Handler()
    driver = SchedulerDriver(cluster.address, {"user": "tester", "name": "numbers"}, handler)
    try:
        framework_id = await driver.start()
        offer = await asyncio.wait_for(handler.offers.get(), 20)
        headers = {**JSON_HEADERS, "Mesos-Stream-Id": driver.stream_id}
        task = {"name": "t", "task_id": {"value": "t"}, "agent_id": offer["agent_id"],
                "command": {"value": "true"},
                "resources": Resources.parse("cpus:0.1;mem:32").to_json()}
        for value, problem in ((b'"Infinity"', b"'Infinity' is not a finite number"),
                               (b"1e400", b"number 1e400 is out of range"),
                               (b"-1", b"-1 is negative")):
            body = json.dumps({"type": "ACCEPT", "framework_id": {"value": framework_id},
                               "accept": {"offer_ids": [offer["id"]], "operations": [
                                   {"type": "LAUNCH", "launch": {"task_infos": [task]}}]}})
            body = body.replace('"value": 0.1', '"value": ' + value.decode()).encode()
            answer = await post(cluster.url + "/api/v1/scheduler", body, headers)
            assert answer.code == 400, answer.body
            assert problem in answer.body, answer.body
        # Nothing was taken: the same offer still launches the task.
        await driver.launch([offer["id"]["value"]], [task])
        await until(lambda: any(s["state"] == "TASK_FINISHED" for s in handler.statuses),
                    "the task launched on the offer the bad ACCEPTs left alone")

        subscribe = json.dumps({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "tester", "name": "nan", "failover_timeout": "NaN"}}}).encode()
        answer = await post(cluster.url + "/api/v1/scheduler", subscribe, JSON_HEADERS)
        assert answer.code == 400
        assert answer.body.startswith(b"Call.subscribe.framework_info.failover_timeout: "
                                      b"expected a finite number")
        weights = json.dumps({"type": "UPDATE_WEIGHTS", "update_weights": {
            "weight_infos": [{"role": "r", "weight": "Infinity"}]}}).encode()
        answer = await post(cluster.url + "/api/v1", weights, JSON_HEADERS)
        assert answer.code == 400 and b"weight: expected a finite number" in answer.body
        state = strict_json((await AsyncHTTPClient().fetch(cluster.url + "/master/state")).body)
        assert [f["name"] for f in state["frameworks"]] == ["numbers"]
    finally:
        await driver.stop(teardown=True)
        cluster.stop()


async def test_an_agent_registering_infinite_resources_gets_error_and_keeps_its_link(tmp_path):
    cluster = ProcessCluster(tmp_path, agents=1).start()  # (agents=0 would wait for none)
    try:
        conn = await tornado.websocket.websocket_connect(f"ws://{cluster.address}{AGENT_PATH}")
        try:
            def register(cpus: object) -> str:
                resources = Resources.parse("cpus:1;mem:64").to_json()
                resources[0]["scalar"]["value"] = cpus
                return json.dumps({"type": "REGISTER", "register": {"version": "1.11.0",
                                   "agent_info": {"hostname": "peer", "port": 5051,
                                                  "resources": resources}}})

            await conn.write_message(register("Infinity"))
            error = await next_command(conn)
            assert error["type"] == "ERROR", error
            assert "agent_info.resources[0].scalar.value" in error["error"]["message"]
            await conn.write_message(register(1))
            assert (await next_command(conn))["type"] == "REGISTERED"
            state = strict_json(json.dumps(get_json(cluster.url + "/master/state")).encode())
            (peer,) = [s for s in state["slaves"] if s["hostname"] == "peer"]
            assert peer["resources"]["cpus"] == 1.0
        finally:
            conn.close()
    finally:
        cluster.stop()


def test_agent_command_line_refuses_infinite_resources_without_a_traceback(tmp_path):
    for flag, problem in (("cpus:inf", "'inf' is not a finite number"),
                          ("cpus:2;mem:nan", "'nan' is not a finite number")):
        run = subprocess.run(
            [sys.executable, "-m", "mesonb", "agent", "--master", "127.0.0.1:1", "--port", "0",
             "--work-dir", str(tmp_path / "agent"), "--resources", flag],
            capture_output=True, text=True, timeout=60)
        assert run.returncode == 2, run.stdout + run.stderr
        assert "Traceback" not in run.stderr
        assert f"mesonb agent: bad scalar '{flag.split(';')[-1]}': {problem}" in run.stderr


async def next_command(conn: tornado.websocket.WebSocketClientConnection) -> dict:
    message = await asyncio.wait_for(conn.read_message(), 10)
    assert message is not None, "the master closed the link"
    frame = json.loads(message)
    return frame[0] if isinstance(frame, list) else frame


def test_a_batch_of_non_objects_is_refused_with_400():
    """Found by the fuzzer: ``[null]`` as a batch of scheduler calls answered 500."""
    with Cluster.local(agents=1) as cluster:
        for body in (b"[null]", b"[1, 2]", b'["SUBSCRIBE"]', b"[[]]"):
            answer = requests.post(f"http://{cluster.address}/api/v1/scheduler", data=body,
                               headers={"Content-Type": "application/json"}, timeout=10)
            assert answer.status_code == 400, (body, answer.status_code, answer.text)
            assert "call 0 of the batch" in answer.text
