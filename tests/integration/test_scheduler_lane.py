"""The master's calls lane (mesonb.http.lane, mesonb.master.http.scheduler_lane): the same
answers as POST /api/v1/scheduler on the HTTP port, keep-alive, the driver using it (over
TLS too) and falling back to the HTTP port when the lane goes away."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mesonb import tls
from mesonb.config import MasterConfig
from mesonb.frameworks.driver import SchedulerDriver
from mesonb.http.client import Connection, Stream, open_stream
from mesonb.http.lane import LANE_HEADER, LaneConnection, calls_for
from mesonb.master.daemon import MasterDaemon
from mesonb.protocol.recordio import Decoder
from mesonb.security.certs import make_bundle
from mesonb.testing.frameworks import Recorder

pytestmark = pytest.mark.slow

PATH = "/api/v1/scheduler"
SECRET = "lane-secret"
OPERATOR = {"Authorization": f"Bearer {SECRET}"}
JSON_TYPES = {"Content-Type": "application/json", "Accept": "application/json"}


@pytest.fixture
async def master(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MasterDaemon]:
    monkeypatch.setenv("MESONB_INPROC", "0")  # the driver in this process goes over sockets
    credentials = tmp_path / "credentials"
    credentials.write_text("alice alice-pw\nbob bob-pw\n")
    credentials.chmod(0o600)
    daemon = MasterDaemon(MasterConfig(port=0, work_dir=tmp_path, secret=SECRET,
                                       credentials=credentials))
    await daemon.start()
    yield daemon
    await daemon.stop()


def lane_of(daemon: MasterDaemon) -> Connection:
    assert daemon._lane is not None and daemon._lane.port is not None
    return Connection("127.0.0.1", daemon._lane.port)


async def subscribe(daemon: MasterDaemon, who: str = "alice:alice-pw"
                    ) -> tuple[str, str, Stream]:
    """A framework of principal ``who``: its id, its stream id and its open stream."""
    stream = await open_stream(daemon.url, PATH, {
        "type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n"}}},
        {"Authorization": f"Bearer {who}"})
    assert stream.headers[LANE_HEADER.lower()] == str(daemon._lane.port)  # type: ignore[union-attr]
    decoder = Decoder()
    async for chunk in stream.chunks:
        for event in decoder.feed_json(chunk):
            if event["type"] == "SUBSCRIBED":
                framework_id = event["subscribed"]["framework_id"]["value"]
                return framework_id, stream.headers["mesos-stream-id"], stream
    raise AssertionError("no SUBSCRIBED")


async def test_every_refusal_is_the_one_the_http_port_gives(master: MasterDaemon) -> None:
    framework_id, stream_id, stream = await subscribe(master)
    revive = json.dumps({"type": "REVIVE", "framework_id": {"value": framework_id}}).encode()
    unknown = json.dumps({"type": "REVIVE", "framework_id": {"value": "nope"}}).encode()
    alice = {"Authorization": "Bearer alice:alice-pw", **JSON_TYPES}
    cases: list[tuple[str, str, bytes, dict[str, str]]] = [
        ("POST", PATH, revive, {}),  # no credentials
        ("POST", PATH, revive, {"Authorization": "Bearer wrong", **JSON_TYPES}),
        ("POST", PATH, revive, {"Authorization": "Basic Ym9iOndyb25n", **JSON_TYPES}),
        ("GET", PATH, b"", OPERATOR),
        ("PUT", PATH, revive, OPERATOR),
        ("POST", "/no/such/path", revive, OPERATOR),
        ("POST", PATH, revive, {**OPERATOR}),  # no Content-Type
        ("POST", PATH, revive, {**OPERATOR, "Content-Type": "application/x-protobuf"}),
        ("POST", PATH, revive, {**OPERATOR, "Content-Type": "text/plain"}),
        ("POST", PATH, revive, {**OPERATOR, **JSON_TYPES, "Accept": "text/html"}),
        ("POST", PATH, b"{oops", {**OPERATOR, **JSON_TYPES}),
        ("POST", PATH, b'{"type": "NOPE"}', {**OPERATOR, **JSON_TYPES}),
        ("POST", PATH, b"[]", {**OPERATOR, **JSON_TYPES}),
        ("POST", PATH, unknown, {**OPERATOR, **JSON_TYPES}),
        ("POST", PATH, revive, {**OPERATOR, **JSON_TYPES}),  # no stream id
        ("POST", PATH, revive, {**OPERATOR, **JSON_TYPES, "Mesos-Stream-Id": "stale"}),
        ("POST", PATH, b"[" + revive + b", 7]",
         {**OPERATOR, **JSON_TYPES, "Mesos-Stream-Id": stream_id}),
        # bob may not drive alice's framework (403), alice may
        ("POST", PATH, revive, {"Authorization": "Bearer bob:bob-pw", **JSON_TYPES,
                                "Mesos-Stream-Id": stream_id}),
        ("POST", "/master" + PATH, revive, {**alice, "Mesos-Stream-Id": stream_id}),
        ("POST", PATH + "/", b"[" + revive + b"]", {**alice, "Mesos-Stream-Id": stream_id}),
    ]
    http, lane = Connection.to(master.url), lane_of(master)
    try:
        for method, path, body, headers in cases:
            want = await http.request(method, path, body, headers)
            got = await lane.request(method, path, body, headers)
            case = (method, path, body[:40], headers)
            assert (got.status, got.body) == (want.status, want.body), case
            # (tornado also names a type for an empty 202: text/html)
            for name in ("content-type", "www-authenticate") if want.body else ():
                assert got.headers.get(name) == want.headers.get(name), (case, name)
        assert want.status == 202 and lane._writer is not None  # one connection for all
    finally:
        http.close()
        lane.close()
        stream.close()


async def test_a_standby_redirects_and_subscribe_stays_on_the_http_port(
        master: MasterDaemon) -> None:
    lane = lane_of(master)
    body = json.dumps({"type": "REVIVE", "framework_id": {"value": "x"}}).encode()
    headers = {**OPERATOR, **JSON_TYPES}
    try:
        master.master.leading, master.master.leader = False, "10.0.0.9:5050"  # type: ignore[union-attr]
        try:
            moved = await lane.request("POST", PATH, body, headers)
            assert moved.status == 307
            assert moved.headers["location"] == f"//10.0.0.9:5050{PATH}"
            master.master.leader = None  # type: ignore[union-attr]
            assert (await lane.request("POST", PATH, body, headers)).status == 503
        finally:
            master.master.leading = True  # type: ignore[union-attr]
        subscribe_call = json.dumps({"type": "SUBSCRIBE", "subscribe": {
            "framework_info": {"user": "u", "name": "n"}}}).encode()
        refused = await lane.request("POST", PATH, subscribe_call, headers)
        assert refused.status == 400 and b"HTTP port" in refused.body
        assert not master.master.book.frameworks  # type: ignore[union-attr]
    finally:
        lane.close()


async def test_bad_bytes_get_a_4xx_and_the_lane_keeps_serving(master: MasterDaemon) -> None:
    assert master._lane is not None and master._lane.port is not None
    for raw, status in [(b"NONSENSE\r\n\r\n", 400),
                        (f"POST {PATH} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".encode(),
                         411),
                        (f"POST {PATH} HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n"
                         .encode(), 413)]:
        reader, writer = await asyncio.open_connection("127.0.0.1", master._lane.port)
        try:
            writer.write(raw)
            answer = await asyncio.wait_for(reader.read(), 10)  # the lane closes after it
            assert answer.startswith(f"HTTP/1.1 {status} ".encode()), (raw, answer)
        finally:
            writer.close()
    lane = lane_of(master)
    assert (await lane.request("GET", PATH, b"", OPERATOR)).status == 405
    lane.close()


async def test_the_driver_sends_its_calls_on_the_lane_and_falls_back_when_it_goes(
        master: MasterDaemon) -> None:
    driver = SchedulerDriver(master.address, {"user": "u", "name": "lane"}, Recorder(),
                             secret="alice:alice-pw")
    await driver.start(timeout=10)
    try:
        calls = driver._calls
        assert isinstance(calls, LaneConnection) and calls.port == master._lane.port  # type: ignore[union-attr]
        framework = master.master.book.frameworks[driver.framework_id]  # type: ignore[union-attr,index]
        await driver.suppress()
        assert framework.suppressed_roles and not calls.failed
        assert calls._writer is not None and calls.fallback._writer is None  # lane only
        await master._lane.stop()  # type: ignore[union-attr]
        await driver.revive()  # the lane is gone: over the HTTP port, and from now on
        assert not framework.suppressed_roles and calls.failed
        assert calls.fallback._writer is not None
    finally:
        await driver.stop()


def test_calls_for_follows_the_header() -> None:
    http = Connection("m", 5050, {"Authorization": "Bearer x"}, secure=False)
    assert calls_for(http, {}) is http
    assert calls_for(http, {"mesonb-calls-port": "nope"}) is http
    assert calls_for(http, {"mesonb-calls-port": "70000"}) is http
    lane = calls_for(http, {"mesonb-calls-port": "6060"})
    assert isinstance(lane, LaneConnection) and (lane.host, lane.port) == ("m", 6060)
    assert lane.fallback is http and lane.default_headers == http.default_headers
    assert calls_for(lane, {"mesonb-calls-port": "6060"}) is lane  # the same subscription
    moved = calls_for(lane, {"mesonb-calls-port": "6061"})  # a restarted master
    assert isinstance(moved, LaneConnection) and moved.port == 6061 and moved.fallback is http
    assert calls_for(moved, {}) is http  # a master without a lane


async def test_the_lane_speaks_tls_when_the_master_does(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESONB_INPROC", "0")
    bundle = make_bundle(tmp_path / "tls")
    previous = tls.configure(tls.TlsSettings(ca=bundle.ca, cert=bundle.cert, key=bundle.key))
    daemon = MasterDaemon(MasterConfig(port=0, work_dir=tmp_path / "m"))
    try:
        await daemon.start()
        driver = SchedulerDriver(daemon.address, {"user": "u", "name": "tls"}, Recorder())
        await driver.start(timeout=10)
        try:
            assert driver.url.startswith("https://")
            calls = driver._calls
            assert isinstance(calls, LaneConnection) and calls.secure
            await driver.suppress()
            assert not calls.failed and calls._writer is not None
            assert calls._writer.get_extra_info("ssl_object") is not None
        finally:
            await driver.stop()
    finally:
        await daemon.stop()
        tls.configure(previous)


async def test_a_silent_connection_is_closed_after_the_idle_time(master: MasterDaemon) -> None:
    from mesonb.master.http.scheduler_lane import SchedulerLane

    lane = SchedulerLane(master.master, master.security, idle_seconds=0.3)  # type: ignore[arg-type]
    port = await lane.start("127.0.0.1")
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        busy, busy_writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 0.6
            while loop.time() < deadline:  # this one keeps talking: it stays open
                busy_writer.write(f"GET {PATH} HTTP/1.1\r\nHost: m\r\n"
                                  f"Authorization: Bearer {SECRET}\r\n\r\n".encode())
                head = await asyncio.wait_for(busy.readuntil(b"\r\n\r\n"), 5)
                assert head.startswith(b"HTTP/1.1 405")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await busy.readexactly(length)
                await asyncio.sleep(0.05)
            assert await asyncio.wait_for(reader.read(), 5) == b""  # the silent one: closed
            assert not busy_writer.is_closing() and len(lane._connections) == 1
        finally:
            writer.close()
            busy_writer.close()
    finally:
        await lane.stop()
