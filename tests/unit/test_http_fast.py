"""Per-call shortcuts in mesonb/http and protocol/states answer as the general code does."""

from __future__ import annotations

import asyncio

import pytest

from mesonb.http import base, client, inproc
from mesonb.protocol.errors import BadRequest, NotAcceptable, UnsupportedMediaType
from mesonb.protocol.states import TaskState, for_framework

ACCEPTS = ["application/json", "*/*", "application/*", "application/json;q=0",
           "application/x-protobuf;q=1, application/json;q=0", "text/html",
           "application/recordio", "application/JSON", "application/json; q=0.5",
           "text/*;q=0, */*;q=0.1", "application/json;q=abc"]


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("extra", [(), (base.RECORDIO,)])
def test_check_json_accept_answers_as_accepts_does_every_time(accept, extra):
    want = any(base.accepts(accept, m) for m in (base.JSON, *extra))
    for _ in range(2):  # the second answer comes from the cache
        if want:
            base.check_json_accept(accept, extra)
        else:
            with pytest.raises(NotAcceptable, match="Expecting 'Accept' to allow"):
                base.check_json_accept(accept, extra)
    base.check_json_accept(None, extra)
    base.check_json_accept("", extra)


@pytest.mark.parametrize(("content_type", "error"), [
    ("application/json", None), ("application/json; charset=utf-8", None),
    ("Application/JSON", None), (None, BadRequest), ("", BadRequest),
    ("application/x-protobuf", UnsupportedMediaType), ("text/plain", UnsupportedMediaType),
])
def test_check_json_body(content_type, error):
    if error is None:
        base.check_json_body(content_type)
    else:
        with pytest.raises(error):
            base.check_json_body(content_type)


def test_for_framework_maps_the_new_states_to_lost_for_old_frameworks():
    new = {TaskState.TASK_DROPPED, TaskState.TASK_UNREACHABLE, TaskState.TASK_GONE,
           TaskState.TASK_GONE_BY_OPERATOR, TaskState.TASK_UNKNOWN}
    for state in TaskState:
        assert for_framework(state, True) is state
        assert for_framework(state, False) is (TaskState.TASK_LOST if state in new else state)


def test_the_shared_json_headers_stay_as_they_are(monkeypatch):
    seen = []

    async def request(self, method, path, body=b"", headers=None):
        seen.append(dict(headers))
        return client.Response(200, {}, b"")

    monkeypatch.setattr(client.Connection, "request", request)
    conn = client.Connection("127.0.0.1", 1)

    asyncio.run(conn.post_json("/api/v1", {"a": 1}, {"Authorization": "Bearer x"}))
    asyncio.run(conn.post_json("/api/v1", {"a": 1}))
    assert seen == [{"Content-Type": "application/json", "Accept": "application/json",
                     "Authorization": "Bearer x"},
                    {"Content-Type": "application/json", "Accept": "application/json"}]
    assert client._JSON_HEADERS == {"Content-Type": "application/json",
                                    "Accept": "application/json"}


@pytest.mark.parametrize(("value", "on"), [(None, True), ("1", True), ("0", False),
                                           (" Off ", False), ("no", False), ("yes", True)])
def test_inproc_switch(monkeypatch, value, on):
    if value is None:
        monkeypatch.delenv(inproc.ENV, raising=False)
    else:
        monkeypatch.setenv(inproc.ENV, value)
    assert inproc.enabled() is on


@pytest.mark.parametrize("status", [100, 200, 202, 307, 400, 404, 413, 431, 500, 503,
                                    299, 600, 0, -1, 200.0])
def test_reason_phrases_are_http_status_s(status):
    from http import HTTPStatus

    from mesonb.http import wire
    try:
        want = HTTPStatus(status).phrase
    except ValueError:
        want = "Error"
    assert wire.reason(status) == want
