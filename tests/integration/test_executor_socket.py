"""The executor API on the agent's local socket (mesonb.agent.executor_socket): the same
answers as on its HTTP port, keep-alive, streams, and mesonb's executors using it."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from agent_peer import AgentHarness, command_task, framework_info, new_id

from mesonb.agent.executor_socket import SOCKET_ENV, socket_name, socket_path
from mesonb.protocol.states import TaskState

pytestmark = pytest.mark.slow

JSON_HEADERS = "Content-Type: application/json\r\nAccept: application/json\r\n"


async def exchange(address: str, raw: bytes, *, keep: bool = False) -> bytes:
    """Send raw bytes to the socket; the whole answer (until the agent closes, or the
    first complete answer when ``keep``)."""
    reader, writer = await asyncio.open_unix_connection(socket_path(address))
    try:
        writer.write(raw)
        await writer.drain()
        if keep:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            return head + await asyncio.wait_for(reader.readexactly(length), 10)
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def post(body: bytes, headers: str = JSON_HEADERS, path: str = "/api/v1/executor",
         method: str = "POST", close: bool = True) -> bytes:
    conn = "Connection: close\r\n" if close else ""
    return (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}{conn}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_the_socket_is_named_after_the_work_dir(tmp_path: Path) -> None:
    assert socket_name(tmp_path) == socket_name(tmp_path / "." / "")
    assert socket_name(tmp_path) != socket_name(tmp_path / "other")
    assert socket_path(socket_name(tmp_path)).startswith("\0mesonb-agent-")
    assert socket_path("unix:/run/x.sock") == "/run/x.sock"


async def test_bad_requests_get_the_answers_the_http_port_gives(tmp_path: Path) -> None:
    async with AgentHarness(tmp_path) as h:
        address = h.agent.executor_socket_address
        assert address == socket_name(tmp_path)
        subscribe = json.dumps({"type": "SUBSCRIBE", "framework_id": {"value": "fw-1"},
                                "executor_id": {"value": "nope"}, "subscribe": {}}).encode()
        cases = [
            (post(b"{}", headers=""), 400, b"Content-Type"),
            (post(b"{}", headers="Content-Type: application/x-protobuf\r\n"), 415, b"protobuf"),
            (post(b"{}", headers="Content-Type: text/plain\r\n"), 415, b"text/plain"),
            (post(b"{", ), 400, b"JSON"),
            (post(b"[" * 1000 + b"]" * 1000), 400, b"nested deeper than 100 levels"),
            (post(b"{}", method="GET"), 405, b"POST"),
            (post(b"{}", path="/state"), 404, b"/state"),
            (post(subscribe, headers="Content-Type: application/json\r\nAccept: text/html\r\n"),
             406, b"Accept"),
            (post(subscribe), 400, b"not known"),  # an executor the agent does not know
            (b"NONSENSE\r\n\r\n", 400, b"request line"),
            (b"POST /api/v1/executor HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411,
             b"Chunked"),
            (b"POST /api/v1/executor HTTP/1.1\r\nX-Pad: " + b"a" * 70_000, 431, b"too large"),
            (b"POST /api/v1/executor HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413,
             b"not accepted"),
        ]
        for raw, status, text in cases:
            answer = await exchange(address, raw)
            assert status_of(answer) == status, (raw[:60], answer[:200])
            assert text in answer, (raw[:60], answer[:300])
        # The agent is unhurt: its HTTP port answers, and the socket still takes requests.
        assert (await h.http("/health")).code == 200
        assert status_of(await exchange(address, post(b"{}", method="GET"))) == 405


async def test_requests_follow_one_another_on_a_kept_connection(tmp_path: Path) -> None:
    async with AgentHarness(tmp_path) as h:
        reader, writer = await asyncio.open_unix_connection(
            socket_path(h.agent.executor_socket_address))
        try:
            for _ in range(3):  # the connection stays open between answers
                writer.write(post(b"{}", method="GET", close=False))
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                assert head.startswith(b"HTTP/1.1 405")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
        finally:
            writer.close()


async def test_pipelined_requests_are_answered_in_order_and_none_after_a_close(
        tmp_path: Path) -> None:
    # Answers of one loop turn leave together at its end: their order, and the close
    # after a "Connection: close" request, are those of answering each at once.
    async with AgentHarness(tmp_path) as h:
        raw = (post(b"{}", method="GET", close=False) + post(b"{}", path="/state", close=False)
               + post(b"{", close=True))
        answer = await exchange(h.agent.executor_socket_address, raw)  # until closed
        statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)]
        assert statuses == [405, 404, 400]
        assert b"JSON" in answer.rsplit(b"HTTP/1.1 ", 1)[1]


async def test_a_secret_agent_wants_the_executor_token(tmp_path: Path) -> None:
    async with AgentHarness(tmp_path, secret="s3cret") as h:
        m = h.master
        task_id = new_id()
        m.run_task(command_task(task_id, "sleep 30"))
        await m.update(task_id, TaskState.TASK_STARTING)
        (framework,) = h.agent.executors.frameworks.values()
        (executor,) = framework.executors.values()
        update = json.dumps({"type": "MESSAGE", "framework_id": {"value": "fw-1"},
                             "executor_id": {"value": executor.executor_id},
                             "message": {"data": "aGk="}}).encode()
        address = h.agent.executor_socket_address
        no_token = await exchange(address, post(update))
        assert status_of(no_token) == 401 and b"WWW-Authenticate" in no_token
        wrong = await exchange(address, post(update, JSON_HEADERS +
                                             "Authorization: Bearer nope\r\n"))
        assert status_of(wrong) == 401
        other = json.dumps({"type": "MESSAGE", "framework_id": {"value": "fw-1"},
                            "executor_id": {"value": "someone-else"},
                            "message": {"data": "aGk="}}).encode()
        token = f"Authorization: Bearer {executor.token}\r\n"
        forbidden = await exchange(address, post(other, JSON_HEADERS + token))
        assert status_of(forbidden) == 403
        assert status_of(await exchange(address, post(update, JSON_HEADERS + token))) == 202


async def test_mesonb_executors_use_the_socket_and_fall_back_to_the_port(tmp_path: Path,
                                                                        monkeypatch) -> None:
    def sinks(h: AgentHarness) -> dict[str, str]:
        return {e.executor_id: type(e.stream._sink).__name__
                for fw in h.agent.executors.frameworks.values() for e in fw.executors.values()
                if e.stream is not None}

    # A checkpointing framework's command tasks have an executor process (the others
    # are run by the agent itself: mesonb.agent.command_runner).
    framework = framework_info(checkpoint=True)
    async with AgentHarness(tmp_path) as h:
        m = h.master
        task_id = new_id()
        m.run_task(command_task(task_id, "sleep 30"), framework)
        await m.update(task_id, TaskState.TASK_STARTING)
        await m.update(task_id, TaskState.TASK_RUNNING)
        assert sinks(h) == {task_id: "_ChunkedSink"}  # subscribed on the socket

        # An executor told of a socket that is not there subscribes on the HTTP port.
        monkeypatch.setattr(h.agent, "executor_socket_address", "unix:@mesonb-no-such-agent")
        second = new_id()
        m.run_task(command_task(second, "sleep 30"), framework)
        await m.update(second, TaskState.TASK_STARTING)
        await m.update(second, TaskState.TASK_RUNNING)
        assert sinks(h) == {task_id: "_ChunkedSink", second: "_HandlerSink"}


def test_executors_are_told_where_the_socket_is(tmp_path: Path) -> None:
    from mesonb.agent import launcher
    from mesonb.agent.book import Executor, Framework
    from mesonb.protocol.mesos import ExecutorInfo, FrameworkInfo

    framework = Framework(FrameworkInfo(user="u", name="n", id="fw"))
    executor = Executor(info=ExecutorInfo(executor_id="e"), framework_id="fw",
                        container_id="c", directory=tmp_path, token="t")
    env = launcher.executor_env(framework, executor, agent_id="a", endpoint="127.0.0.1:5051",
                                socket="unix:@x", pid="slave(1)@127.0.0.1:5051",
                                shutdown_grace=1.0, base={SOCKET_ENV: "unix:@stale"})
    assert env[SOCKET_ENV] == "unix:@x" and env["MESOS_AGENT_ENDPOINT"] == "127.0.0.1:5051"
    without = launcher.executor_env(framework, executor, agent_id="a", endpoint="h:1",
                                    pid="p", shutdown_grace=1.0, base={SOCKET_ENV: "unix:@old"})
    assert SOCKET_ENV not in without  # an agent's own environment is not passed on
