"""mesonb.http.wire: HTTP/1.1 read with httptools and written in one place."""

from __future__ import annotations

import asyncio

import pytest

from mesonb.http import wire
from mesonb.protocol.errors import ProtocolError


def _reader(*pieces: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    for piece in pieces:
        reader.feed_data(piece)
    if eof:
        reader.feed_eof()
    return reader


def test_writes_requests_and_answers() -> None:
    assert wire.request("POST", "/api", "h:1", {"A": "b"}, b"xy") == (
        b"POST /api HTTP/1.1\r\nHost: h:1\r\nContent-Length: 2\r\nA: b\r\n\r\nxy")
    assert wire.request("GET", "/", "h:1", {}) == b"GET / HTTP/1.1\r\nHost: h:1\r\n\r\n"
    assert wire.response(202) == b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
    assert wire.response(431, [("X", "y")], b"no").startswith(
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nX: y\r\n")
    assert wire.chunk(b"abc") == b"3\r\nabc\r\n"
    assert wire.chunked_head(200, {}) == (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")


def test_requests_are_read_across_pieces_and_one_after_another() -> None:
    parser = wire.RequestParser()
    first = wire.request("POST", "/a?x=1", "h", {"Content-Type": "application/json"}, b"{}")
    second = wire.request("GET", "/b", "h", {"Connection": "close"})
    assert parser.feed(first[:10]) == []
    done = parser.feed(first[10:] + second)
    assert [(r.method, r.target, r.body, r.keep_alive) for r in done] == [
        ("POST", "/a?x=1", b"{}", True), ("GET", "/b", b"", False)]
    assert done[0].headers["content-type"] == "application/json"


@pytest.mark.parametrize(("raw", "status", "text"), [
    (b"NONSENSE\r\n\r\n", 400, "request line"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411, "Chunked"),
    (b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413, "not accepted"),
    (b"POST / HTTP/1.1\r\nX-Pad: " + b"a" * 70_000, 431, "too large"),
])
def test_bad_requests_raise_their_status(raw: bytes, status: int, text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        wire.RequestParser().feed(raw)
    assert info.value.status == status and text in info.value.message


async def test_a_chunked_answer_comes_in_whole_chunks_even_when_split() -> None:
    reader = _reader(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n5\r\nhe",
                     b"llo\r\n3\r\nabc\r\n", b"0\r\n\r\n", eof=False)
    answers = wire.ResponseReader(reader)
    head = await answers.head()
    assert (head.status, head.reason, head.headers["x-a"]) == (200, "OK", "1")
    assert [piece async for piece in answers.chunks()] == [b"hello", b"abc"]
    assert answers.keep_alive


async def test_answers_follow_one_another_and_the_end_is_seen() -> None:
    reader = _reader(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
                     b"HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n\r\nnope"
                     b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
    answers = wire.ResponseReader(reader)
    assert (await answers.head()).status == 202 and await answers.body() == b""
    assert (await answers.head()).status == 400 and await answers.body() == b"nope"
    assert (await answers.head()).status == 200
    assert await answers.body() == b"until the end" and not answers.keep_alive


async def test_a_closed_connection_is_told_apart_from_a_cut_answer() -> None:
    answers = wire.ResponseReader(_reader())
    with pytest.raises(ConnectionResetError):
        await answers.head()
    assert answers.received == 0  # nothing came: safe to send the request again
    cut = wire.ResponseReader(_reader(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"))
    await cut.head()
    with pytest.raises(ConnectionResetError):
        await cut.body()
    with pytest.raises(ConnectionError):
        await wire.ResponseReader(_reader(b"NOT HTTP AT ALL\r\n\r\n")).head()
