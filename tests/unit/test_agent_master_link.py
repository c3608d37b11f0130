"""Pure pieces of the agent's master connection, its retries against a master that is
not ready (a local tornado server), and the agent's safety check."""

from __future__ import annotations

import asyncio
import json

import pytest
import tornado.web
import tornado.websocket

from mesonb.agent.agent import UnsafeConfiguration, check_safety, is_loopback
from mesonb.agent.master_link import (
    LEADER_RETRY,
    LEADER_SPREAD,
    Backoff,
    MasterLink,
    follow_redirect,
    parse_master,
)
from mesonb.agent.paths import is_safe_id
from mesonb.config import AgentConfig
from mesonb.protocol.agent import (
    AGENT_PATH,
    AgentCall,
    AgentCallType,
    MasterCommand,
)


def test_backoff_doubles_from_the_factor_to_the_cap_and_resets() -> None:
    b = Backoff(1.0, 10.0, rng=lambda: 1.0)
    assert [b.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    b.reset()
    assert b.next() == 1.0
    half = Backoff(2.0, 60.0, rng=lambda: 0.5)
    assert [half.next() for _ in range(3)] == [1.0, 2.0, 4.0]
    assert Backoff(0.0, 1.0, rng=lambda: 1.0).next() == 0.0


@pytest.mark.parametrize(("spec", "expected"), [
    ("127.0.0.1:5050", "127.0.0.1:5050"),
    ("master.example.com", "master.example.com:5050"),
    ("http://h:1234/", "h:1234"),
    ("[::1]:5050", "[::1]:5050"),
    ("[::1]", "[::1]:5050"),
    ("zk://z1:2181,z2:2181/mesos", "zk://z1:2181,z2:2181/mesos"),  # resolved per connection
])
def test_parse_master(spec: str, expected: str) -> None:
    assert parse_master(spec) == expected


@pytest.mark.parametrize("spec", ["", "h:notaport", "h:0", "zk://z:2181", "zk://z:x/m",
                                  "h:5050/path",
                                  "::1:5050", "user@h:5050"])
def test_parse_master_refuses(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_master(spec)


def test_follow_redirect() -> None:
    url = "ws://old:5050/mesonb/v1/agent"
    assert follow_redirect(url, "//new:5051/mesonb/v1/agent") == "ws://new:5051/mesonb/v1/agent"
    assert follow_redirect(url, "http://new:5051/mesonb/v1/agent") == (
        "ws://new:5051/mesonb/v1/agent")
    assert follow_redirect(url, "/elsewhere") == "ws://old:5050/elsewhere"
    assert follow_redirect(url, "new:5051") == "ws://new:5051/mesonb/v1/agent"


def test_safety() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")
    check_safety(AgentConfig(ip="127.0.0.1"))
    check_safety(AgentConfig(ip="0.0.0.0", secret="s"))
    with pytest.raises(UnsafeConfiguration, match="without a secret"):
        check_safety(AgentConfig(ip="0.0.0.0"))


def test_ids_usable_as_path_components() -> None:
    assert is_safe_id("task-1.2_x")
    for bad in ("", ".", "..", "a/b", "a\0b"):
        assert not is_safe_id(bad)


class NotReadyMaster:
    """The agent endpoint of a master that answers 503 to its first ``refusals`` tries
    (elected, still recovering), then accepts the WebSocket."""

    def __init__(self, refusals: int) -> None:
        self.tries: list[float] = []
        master = self

        class AgentSocket(tornado.websocket.WebSocketHandler):
            async def get(self, *args, **kwargs):
                master.tries.append(asyncio.get_running_loop().time())
                if len(master.tries) <= refusals:
                    self.set_status(503)
                    self.finish("No leading master is elected yet; retry shortly")
                    return
                await super().get(*args, **kwargs)

        app = tornado.web.Application([(AGENT_PATH, AgentSocket)])
        self.server = app.listen(0, "127.0.0.1")
        port = next(iter(self.server._sockets.values())).getsockname()[1]
        self.address = f"127.0.0.1:{port}"


async def _open_link(master: NotReadyMaster, backoff: Backoff, leader: bool,
                     timeout: float) -> tuple[MasterLink, float | None]:
    opened = asyncio.Event()
    link = MasterLink(master.address, on_open=opened.set, on_command=lambda c: None,
                      on_close=lambda: None, backoff=backoff)
    if leader:
        link._leader_changed(master.address)  # what the ZooKeeper watch calls
    loop = asyncio.get_running_loop()
    start = loop.time()
    link.start()
    try:
        await asyncio.wait_for(opened.wait(), timeout)
    except TimeoutError:
        return link, None
    return link, loop.time() - start


async def test_the_named_leader_answering_503_is_retried_quickly_after_a_leader_change():
    master = NotReadyMaster(refusals=4)
    backoff = Backoff(1.0, 60.0, rng=lambda: 1.0)  # the worst case of Mesos's back-off
    for _ in range(6):  # registration failures before the failover: the bound is at 60 s
        backoff.next()
    link, took = await _open_link(master, backoff, leader=True, timeout=5)
    try:
        assert took is not None, f"not connected after 5 s; tries at {master.tries}"
        gaps = [b - a for a, b in zip(master.tries, master.tries[1:], strict=False)]
        # the first wait may end early: the leader change's spread wakes the link
        assert len(gaps) == 4 and all(g <= 0.6 for g in gaps), gaps
        assert all(g >= 0.15 for g in gaps[1:]), gaps
        assert took < 3.0
    finally:
        await link.stop()
        master.server.stop()


async def test_a_503_from_a_master_zookeeper_does_not_name_keeps_the_back_off():
    master = NotReadyMaster(refusals=1)
    link, took = await _open_link(master, Backoff(1.0, 60.0, rng=lambda: 1.0), leader=False,
                                  timeout=5)
    try:
        assert took is not None
        assert master.tries[1] - master.tries[0] >= 0.95  # Backoff's first step, 1 s
    finally:
        await link.stop()
        master.server.stop()


async def test_the_masters_messages_are_taken_in_order_until_it_closes() -> None:
    """Frames the master sends at once, before the link reads (its registration is not
    even sent yet), then more: each command in order, and the close ends the read."""
    sent = [json.dumps({"type": "ERROR", "error": {"message": f"m{i}"}}) for i in range(5)]

    class AgentSocket(tornado.websocket.WebSocketHandler):
        def open(self, *args, **kwargs):
            for text in sent[:3]:
                self.write_message(text)

        async def on_message(self, message):  # the agent's PONG: the rest, then close
            for text in sent[3:]:
                await self.write_message(text)
            self.close()

    server = tornado.web.Application([(AGENT_PATH, AgentSocket)]).listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    got: list[str] = []
    closed = asyncio.Event()
    link: MasterLink

    def on_command(command: MasterCommand) -> None:
        got.append(command.error.message if command.error else "")
        if len(got) == 3:
            link.send(AgentCall(type=AgentCallType.PONG))

    link = MasterLink(f"127.0.0.1:{port}", on_open=lambda: None, on_command=on_command,
                      on_close=closed.set, backoff=Backoff(30.0, 60.0))
    link.start()
    try:
        await asyncio.wait_for(closed.wait(), 10)
        assert got == [f"m{i}" for i in range(5)]
    finally:
        await link.stop()
        server.stop()


def test_leader_spread_and_retry_are_short() -> None:
    assert 0 < LEADER_SPREAD <= 0.5
    assert 0.1 <= LEADER_RETRY[0] < LEADER_RETRY[1] <= 0.5
