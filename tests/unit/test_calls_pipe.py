"""The pipelined calls lane (mesonb.frameworks.calls_pipe) against a lane-like server: the
calls arrive in the order they were made and each gets its own answer, whether sent
lazily (send_now, the answer read later) or awaited (post_json, the usual way); a lazy
answer is not read until read_answers() or READ_AFTER; errors, a connection the server
closes and one that cannot be opened are met as Connection meets them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from mesonb.frameworks import calls_pipe
from mesonb.frameworks.calls_pipe import CallsPipe
from mesonb.http import wire
from mesonb.http.client import HTTPError
from mesonb.http.lane import LaneUnreachable

PATH = "/api/v1/scheduler"


class Lane:
    """Answers each POST in order: 202, or 400 for a call of type "BAD" (then, for a
    "CLOSE" one, closes the connection after its 202 answer, unread requests and all)."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        parser = wire.RequestParser()
        try:
            while data := await reader.read(65536):
                for request in parser.feed(data):
                    call = json.loads(request.body)
                    self.calls.append(call)
                    kind = call["type"] if isinstance(call, dict) else "BATCH"
                    if kind == "BAD":
                        writer.write(wire.response(400, {}, b"bad call"))
                    elif kind == "CLOSE":
                        writer.write(wire.response(202, {"Connection": "close"}))
                        await writer.drain()
                        writer.close()
                        return
                    else:
                        writer.write(wire.response(202))
        finally:
            writer.close()

    def stop(self) -> None:
        assert self.server is not None
        self.server.close()


def call(n: int, kind: str = "ACCEPT") -> dict[str, Any]:
    return {"type": kind, "n": n}


async def test_lazy_and_awaited_calls_arrive_in_order_with_their_own_answers():
    lane = Lane()
    pipe = CallsPipe("127.0.0.1", await lane.start(), {"Authorization": "Bearer x"})
    try:
        first = await pipe.post_json(PATH, call(0), {})  # opens the connection
        assert first.status == 202 and pipe.ready()
        lazy = [pipe.send_now(PATH, call(i), {}) for i in (1, 2, 3)]
        awaited = await pipe.post_json(PATH, call(4), {})  # reads all before its own
        assert awaited.status == 202
        assert all(f.done() and f.result().status == 202 for f in lazy)
        assert [c["n"] for c in lane.calls] == [0, 1, 2, 3, 4]
        assert lane.connections == 1
    finally:
        pipe.close()
        lane.stop()


async def test_a_lazy_answer_waits_for_read_answers_or_read_after(monkeypatch):
    lane = Lane()
    pipe = CallsPipe("127.0.0.1", await lane.start(), {})
    try:
        await pipe.post_json(PATH, call(0), {})
        sent = pipe.send_now(PATH, call(1), {})
        for _ in range(200):  # the lane answers; the pipe does not read it
            if len(lane.calls) == 2:
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)
        assert len(lane.calls) == 2 and not sent.done()
        pipe.read_answers()
        assert (await asyncio.wait_for(sent, 5)).status == 202
        # with no trigger at all, READ_AFTER reads it
        monkeypatch.setattr(calls_pipe, "READ_AFTER", 0.01)
        later = pipe.send_now(PATH, call(2), {})
        assert (await asyncio.wait_for(later, 5)).status == 202
    finally:
        pipe.close()
        lane.stop()


async def test_an_error_answer_goes_to_its_own_call_as_the_usual_way_gives_it():
    lane = Lane()
    pipe = CallsPipe("127.0.0.1", await lane.start(), {})
    try:
        await pipe.post_json(PATH, call(0), {})
        bad = pipe.send_now(PATH, call(1, "BAD"), {})
        good = pipe.send_now(PATH, call(2), {})
        with pytest.raises(HTTPError) as raised:
            await pipe.post_json(PATH, call(3, "BAD"), {})
        assert raised.value.status == 400 and b"bad call" in raised.value.body
        assert bad.result().status == 400 and good.result().status == 202
    finally:
        pipe.close()
        lane.stop()


async def test_calls_written_after_one_the_server_closed_on_go_again_once():
    """The server answers CLOSE and closes: the calls pipelined behind it were not read
    there, so each goes once more on a new connection, in order."""
    lane = Lane()
    pipe = CallsPipe("127.0.0.1", await lane.start(), {})
    try:
        await pipe.post_json(PATH, call(0), {})
        closing = pipe.send_now(PATH, call(1, "CLOSE"), {})
        behind = [pipe.send_now(PATH, call(i), {}) for i in (2, 3)]
        last = await pipe.post_json(PATH, call(4), {})
        assert last.status == 202 and closing.result().status == 202
        assert [f.result().status for f in behind] == [202, 202]
        assert [c["n"] for c in lane.calls] == [0, 1, 2, 3, 4]
        assert lane.connections == 2
    finally:
        pipe.close()
        lane.stop()


async def test_an_idle_connection_the_server_closed_is_opened_again():
    lane = Lane()
    pipe = CallsPipe("127.0.0.1", await lane.start(), {})
    try:
        await pipe.post_json(PATH, call(1, "CLOSE"), {})  # the server closes after it
        await asyncio.sleep(0.05)
        again = await pipe.post_json(PATH, call(2), {})
        assert again.status == 202 and [c["n"] for c in lane.calls] == [1, 2]
    finally:
        pipe.close()
        lane.stop()


async def test_an_unreachable_lane_raises_lane_unreachable_having_sent_nothing():
    lane = Lane()
    port = await lane.start()
    lane.stop()
    await lane.server.wait_closed()  # type: ignore[union-attr]
    pipe = CallsPipe("127.0.0.1", port, {})
    with pytest.raises(LaneUnreachable):
        await pipe.post_json(PATH, call(0), {})
    assert not pipe.ready()
    pipe.close()


async def test_close_fails_the_answers_still_to_come():
    lane = Lane()
    pipe = CallsPipe("127.0.0.1", await lane.start(), {})
    try:
        await pipe.post_json(PATH, call(0), {})
        pending = pipe.send_now(PATH, call(1), {})
        pipe.close()
        with pytest.raises(ConnectionError):
            await pending
        assert not pipe.ready()
    finally:
        lane.stop()
