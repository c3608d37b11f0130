"""A request body over the limit is refused with 413 before it is read, on the master and
on the agent, whether its size is announced or it comes chunked; the daemons go on."""

from __future__ import annotations

import socket

import pytest
import requests

from mesonb import Cluster
from mesonb.http.base import MAX_BODY_BYTES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def urls():
    with Cluster.local(agents=1) as cluster:
        row = cluster.agents().iloc[0]
        yield [f"http://{cluster.address}", f"http://{row['hostname']}:{int(row['port'])}"]


def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


@pytest.mark.parametrize("which", [0, 1], ids=["master", "agent"])
def test_a_2_gib_content_length_gets_413_at_once(urls, which):
    answer = _raw(urls[which], b"POST /api/v1 HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Type: application/json\r\n"
                               b"Content-Length: 2147483648\r\n\r\n{")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"2147483648 bytes is over the limit" in body
    assert b"HTTP/1.1 400" not in answer  # no second, bare answer from the server
    assert requests.get(urls[which] + "/health", timeout=10).status_code == 200


@pytest.mark.parametrize("which", [0, 1], ids=["master", "agent"])
def test_a_chunked_body_over_the_limit_gets_413(urls, which):
    chunk = b"x" * (1024 * 1024)
    host, port = urls[which].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(b"POST /api/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon answered and closed: what we want
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert requests.get(urls[which] + "/health", timeout=10).status_code == 200


def test_a_body_under_the_limit_is_still_read(urls):
    response = requests.post(urls[0] + "/api/v1", data=b'{"type": "GET_HEALTH"}' + b" " * 100_000,
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 200
