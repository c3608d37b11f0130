"""Mesos's own v1 client libraries post to ``/master/api/v1`` and
``/master/api/v1/scheduler``: both answer as their short forms do."""

from __future__ import annotations

import json

import pytest
import requests

from mesonb import Cluster
from mesonb.protocol import recordio
from mesonb.testing.processes import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def master_url():
    with Cluster.local(agents=1) as cluster:
        yield f"http://{cluster.address}"


def test_operator_api_under_master_prefix(master_url):
    response = requests.post(master_url + "/master/api/v1", data='{"type": "GET_HEALTH"}',
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 200
    assert response.json() == {"type": "GET_HEALTH", "get_health": {"healthy": True}}


def test_scheduler_api_under_master_prefix(master_url):
    subscribe = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {
        "user": "me", "name": "paths"}}}
    with requests.post(master_url + "/master/api/v1/scheduler", data=json.dumps(subscribe),
                       headers={"Content-Type": "application/json",
                                "Accept": "application/json"},
                       stream=True, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["Mesos-Stream-Id"]
        decoder = recordio.Decoder()
        first = None
        for chunk in response.iter_content(None):
            events = list(decoder.feed_json(chunk))
            if events:
                first = events[0]
                break
        assert first is not None and first["type"] == "SUBSCRIBED"
        assert first["subscribed"]["framework_id"]["value"]


def _operator(url: str, body: dict) -> requests.Response:
    return requests.post(url + "/api/v1", data=json.dumps(body), timeout=10,
                         headers={"Content-Type": "application/json"})


def test_master_logging_level_for_a_duration(master_url):
    get = {"type": "GET_LOGGING_LEVEL"}
    assert _operator(master_url, get).json() == {"type": "GET_LOGGING_LEVEL",
                                                 "get_logging_level": {"level": 0}}
    answer = _operator(master_url, {"type": "SET_LOGGING_LEVEL", "set_logging_level": {
        "level": 1, "duration": {"nanoseconds": 300_000_000}}})
    assert answer.status_code == 200, answer.text
    assert _operator(master_url, get).json()["get_logging_level"]["level"] == 1
    wait_for(lambda: _operator(master_url, get).json()["get_logging_level"]["level"] == 0, 10,
             what="the master's level to revert")
    bad = _operator(master_url, {"type": "SET_LOGGING_LEVEL", "set_logging_level": {"level": 1}})
    assert bad.status_code == 400 and "duration" in bad.text
    toggled = requests.get(master_url + "/logging/toggle", timeout=10,
                           params={"level": "2", "duration": "1mins"})
    assert toggled.status_code == 200
    assert _operator(master_url, get).json()["get_logging_level"]["level"] == 2
    _operator(master_url, {"type": "SET_LOGGING_LEVEL", "set_logging_level": {
        "level": 0, "duration": {"nanoseconds": 1}}})
