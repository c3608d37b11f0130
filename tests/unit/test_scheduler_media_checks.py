"""The scheduler API's media checks remember the (Content-Type, Accept) pairs that passed
(mesonb.master.http.scheduler.read_calls): a pair that failed fails every time, and a
remembered pair changes nothing of what a request is answered."""

from __future__ import annotations

import json

import pytest

from mesonb.master.http import scheduler
from mesonb.protocol.errors import (
    BadRequest,
    NotAcceptable,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from mesonb.testing.harness import MasterHarness

REVIVE = json.dumps({"type": "REVIVE", "framework_id": {"value": "f"}}).encode()


@pytest.mark.parametrize("content_type, accept, error", [
    (None, None, BadRequest),
    ("text/plain", "application/json", UnsupportedMediaType),
    ("application/x-protobuf", None, UnsupportedMediaType),
    ("application/json", "text/html", NotAcceptable),
    ("application/json", "application/json;q=0", NotAcceptable),
])
def test_a_refused_pair_is_refused_every_time(content_type, accept, error) -> None:
    master = MasterHarness().master
    for _ in range(3):
        with pytest.raises(error):
            scheduler.read_calls(master, content_type, accept, REVIVE)
    assert (content_type, accept) not in scheduler._MEDIA_PASSED


def test_a_remembered_pair_still_gets_the_leader_check_and_the_parse() -> None:
    master = MasterHarness().master
    for accept in ("application/json", "application/recordio", "*/*", None):
        call = scheduler.read_calls(master, "application/json; charset=utf-8", accept, REVIVE)
        assert not isinstance(call, list) and call.framework_id == "f"
        assert ("application/json; charset=utf-8", accept) in scheduler._MEDIA_PASSED
        with pytest.raises(BadRequest, match="NOPE"):
            scheduler.read_calls(master, "application/json; charset=utf-8", accept,
                                 b'{"type": "NOPE"}')
    master.leading, master.leader = False, None
    with pytest.raises(ServiceUnavailable):
        scheduler.read_calls(master, "application/json; charset=utf-8", "*/*", REVIVE)
