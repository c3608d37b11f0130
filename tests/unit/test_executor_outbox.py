"""The executor's outbox: batches of calls to the agent on a plain connection, whose
answers are read lazily, reach the agent as the eager way (each answer awaited, as over
TLS) sends them, and settle the same; answers nobody waits for are still read."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

from mesonb.executor import _http, outbox
from mesonb.executor.outbox import Outbox
from mesonb.http import wire


class Agent:
    """A raw HTTP/1.1 server on a loopback port: records each POST's calls, answers 202,
    or 400 to a POST holding a call named in ``refuse``; ``close_idle`` closes the
    connection after that many answers (as a server closing an idle keep-alive one)."""

    def __init__(self, refuse: set[str] = frozenset(), close_after: int = 0,
                 delay: float = 0.0) -> None:
        self.refuse, self.close_after, self.delay = refuse, close_after, delay
        self.posts: list[list[str]] = []
        self.accepted: list[str] = []  # the calls of the POSTs answered 202, in order
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        parser, answered = wire.RequestParser(), 0
        try:
            while data := await reader.read(65536):
                for request in parser.feed(data):
                    calls = json.loads(request.body)
                    names = [c["name"] for c in (calls if isinstance(calls, list) else [calls])]
                    self.posts.append(names)
                    refused = any(n in self.refuse for n in names)
                    if self.delay:  # (slow: later requests come before this answer)
                        await asyncio.sleep(self.delay)
                    self.accepted += [] if refused else names
                    writer.write(wire.response(400, (), b"refused") if refused
                                 else wire.response(202))
                    answered += 1
                    if answered == self.close_after:
                        writer.close()
                        return
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


async def exchange(agent: Agent, eager: bool, monkeypatch: pytest.MonkeyPatch,
                   script: Any) -> list[tuple[str, str | None]]:
    """Run ``script(box, settled)``; what each call's answer was, in order settled."""
    endpoint = await agent.start()
    conn = _http.Connection(endpoint)

    async def call(body: Any) -> None:
        await conn.post_and_read("/api/v1/executor", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})

    monkeypatch.setattr(_http, "tls_free", lambda endpoint: not eager)
    box = Outbox(lambda: endpoint, lambda: {"Content-Type": "application/json"}, call, 5.0)
    settled: list[tuple[str, str | None]] = []
    try:
        await asyncio.wait_for(script(box, settled), 10)
    finally:
        box.stop()
        conn.close()
        await agent.stop()
    return settled


def noted(settled: list[tuple[str, str | None]], name: str) -> Any:
    return lambda exc: settled.append((name, None if exc is None else type(exc).__name__))


TASKS = {"c10": "t", "c20": "t"}  # two updates of one task; the others each their own


def update(name: str) -> dict[str, Any]:
    return {"name": name, "update": {"status": {"task_id": {"value": TASKS.get(name, name)}}}}


async def turns(box: Outbox, settled: list, count: int) -> None:
    """A first call (the connection is made), three loop turns of posted calls, one
    awaited call, and all answers read."""
    await box.call(update("first"))
    settled.append(("first", None))
    for turn in range(3):
        for i in range(turn + 1):
            box.queue(update(f"c{turn}{i}"), noted(settled, f"c{turn}{i}"))
        await asyncio.sleep(0)
    await box.call({"name": "awaited"})
    settled.append(("awaited", None))
    deadline = asyncio.get_running_loop().time() + 5
    while len(settled) < count:  # no event comes: the answers are read all the same
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("refuse", [set(), {"c11"}])
async def test_lazy_answers_send_and_settle_as_the_eager_way(
        refuse: set[str], monkeypatch: pytest.MonkeyPatch) -> None:
    results = {}
    in_flight: list[int] = []  # batches without answers as each lazy batch went
    send = Outbox._send
    monkeypatch.setattr(Outbox, "_send", lambda box, *args: (
        in_flight.append(len(box._flights)), send(box, *args))[1])
    for eager in (True, False):
        agent = Agent(refuse, delay=0.02)
        settled = await exchange(agent, eager, monkeypatch,
                                 lambda box, settled: turns(box, settled, 8))
        # (where batches part depends on when answers are read: not compared)
        results[eager] = (sorted(settled), agent.accepted)
    assert max(in_flight) >= 1  # batches went before earlier answers were read
    assert results[False] == results[True]
    names, accepted = results[False]
    # in order: a refused batch's calls go again each alone, and c20 (of c10's task) never
    # overtakes c10, though batches go without waiting for earlier answers
    assert accepted == [n for n in ("first", "c00", "c10", "c11", "c20", "c21", "c22",
                                    "awaited")
                        if n not in refuse]
    if refuse:
        assert ("c11", "HTTPError") in names and ("c10", None) in names
    else:
        assert all(exc is None for _, exc in names)


async def test_an_answer_nobody_waits_for_is_read_by_the_next_poll(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox, "READ_AFTER", 30.0)  # no timer reads it here

    async def script(box: Outbox, settled: list) -> None:
        box.queue({"name": "a"}, noted(settled, "a"))
        while not box._flights:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.2)
        assert settled == []  # the answer came, but nothing was woken to read it
        box.poll()  # (the driver polls when an event wakes it)
        assert settled == [("a", None)]

    await exchange(Agent(), False, monkeypatch, script)


def closed_by_peer(sock: socket.socket | None) -> bool:
    assert sock is not None
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False


async def test_a_batch_goes_again_when_the_agent_closed_the_idle_connection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    agent = Agent(close_after=1)

    async def script(box: Outbox, settled: list) -> None:
        await box.call({"name": "first"})
        deadline = asyncio.get_running_loop().time() + 5
        while not closed_by_peer(box._conn._sock):  # the agent's close has arrived
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        await box.call({"name": "second"})  # sent on the closed one, then on a new one
        settled.append(("second", None))

    settled = await exchange(agent, False, monkeypatch, script)
    assert settled == [("second", None)]
    assert agent.posts == [["first"], ["second"]] and agent.connections == 2
