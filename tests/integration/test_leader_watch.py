"""discovery.LeaderWatch, the one leader follower of the driver, the agent and the client,
against a real ZooKeeper."""

from __future__ import annotations

import asyncio
import json

import pytest

from mesonb.discovery import LeaderWatch
from mesonb.testing.zookeeper import zookeeper_jar

pytestmark = pytest.mark.skipif(zookeeper_jar() is None, reason="ZooKeeper is not installed")


def _info(port: int) -> bytes:
    return json.dumps({"id": f"m{port}", "ip": 0, "port": port, "hostname": "h",
                       "address": {"ip": "127.0.0.1", "port": port, "hostname": "h"}}).encode()


async def test_the_watch_waits_for_a_leader_and_follows_it_on_the_loop(zk, client):
    seen: list[str | None] = []
    loop = asyncio.get_running_loop()
    reports_on_loop: list[bool] = []

    def on_change(address: str | None) -> None:
        reports_on_loop.append(asyncio.get_running_loop() is loop)
        seen.append(address)

    watch = LeaderWatch(zk.url("/watch"), on_change)
    assert await watch.start(timeout=10)
    try:
        waiting = asyncio.ensure_future(watch.wait(timeout=10))
        await asyncio.sleep(0)
        assert not waiting.done()  # nobody leads yet
        first = client.create("/watch/json.info_", _info(5051), ephemeral=True, sequence=True)
        assert await waiting == "127.0.0.1:5051"
        client.create("/watch/json.info_", _info(5052), ephemeral=True, sequence=True)
        client.delete(first)  # the next contender leads
        deadline = loop.time() + 10
        while watch.leader != "127.0.0.1:5052":
            assert loop.time() < deadline, seen
            await watch.changed(0.5)
        assert seen[-1] == "127.0.0.1:5052" and all(reports_on_loop)
    finally:
        await watch.stop()
    assert not watch.watching


async def test_an_unreachable_zookeeper_falls_back_or_raises():
    spec = "zk://127.0.0.1:1/nowhere"  # nothing listens on port 1
    watch = LeaderWatch(spec)
    assert await watch.start(timeout=0.5) is False  # the caller looks the leader up instead
    with pytest.raises(Exception):  # noqa: B017 - whatever kazoo raises, unchanged
        await LeaderWatch(spec).start(timeout=0.5, fallback=False)
    with pytest.raises(ValueError):
        LeaderWatch("zk://h:2181")  # no path
