"""Leader detection against a real ZooKeeper: resolve_master and LeaderDetector."""

from __future__ import annotations

import json
import queue

import pytest

from mesonb.discovery import LeaderDetector, resolve_master
from mesonb.testing.zookeeper import zookeeper_jar

pytestmark = pytest.mark.skipif(zookeeper_jar() is None, reason="ZooKeeper is not installed")


def _info(ip: str, port: int) -> bytes:
    return json.dumps({"id": f"m{port}", "ip": 0, "port": port, "hostname": "h",
                       "address": {"ip": ip, "port": port, "hostname": "h"}}).encode()


async def test_resolve_master_picks_lowest_sequence(zk, client):
    path = "/resolve"
    client.create(f"{path}/json.info_", _info("127.0.0.1", 5051), ephemeral=True,
                  sequence=True, makepath=True)
    client.create(f"{path}/json.info_", _info("127.0.0.2", 5052), ephemeral=True, sequence=True)
    client.ensure_path(f"{path}/log_replicas")
    assert await resolve_master(zk.url(path), timeout=5) == "127.0.0.1:5051"


async def test_resolve_master_times_out_without_leader(zk):
    with pytest.raises(TimeoutError):
        await resolve_master(zk.url("/nobody"), timeout=0.5)


async def test_resolve_master_waits_for_a_leader(zk, client):
    import asyncio

    pending = asyncio.ensure_future(resolve_master(zk.url("/later"), timeout=10))
    await asyncio.sleep(0)  # let the detection start before anyone leads
    await asyncio.to_thread(client.create, "/later/json.info_", _info("10.0.0.9", 6000),
                            ephemeral=True, sequence=True, makepath=True)
    assert await pending == "10.0.0.9:6000"


def test_detector_follows_the_leader(zk, client):
    changes: queue.Queue[str | None] = queue.Queue()
    detector = LeaderDetector(zk.url("/follow"), changes.put)
    detector.start(timeout=10)
    try:
        assert changes.get(timeout=5) is None
        first = client.create("/follow/json.info_", _info("127.0.0.1", 1), ephemeral=True,
                              sequence=True, makepath=True)
        assert changes.get(timeout=5) == "127.0.0.1:1"
        client.create("/follow/json.info_", _info("127.0.0.1", 2), ephemeral=True, sequence=True)
        client.delete(first)
        assert changes.get(timeout=5) == "127.0.0.1:2"
        for child in client.get_children("/follow"):
            client.delete(f"/follow/{child}")
        assert changes.get(timeout=5) is None
    finally:
        detector.stop()
