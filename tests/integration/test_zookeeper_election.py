"""In-process masters contending in a real ZooKeeper; the session-expiry fault injector."""

from __future__ import annotations

import asyncio
import time

import pytest

from mesonb.config import MasterConfig
from mesonb.master.daemon import MasterDaemon
from mesonb.testing.zookeeper import ZooKeeperServer, expire_session, zookeeper_jar

pytestmark = pytest.mark.skipif(zookeeper_jar() is None, reason="ZooKeeper is not installed")


async def until(condition, timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_expired_leader_aborts_and_standby_takes_over(tmp_path):
    zk = ZooKeeperServer(tmp_path / "zk")
    daemons: list[MasterDaemon] = []
    aborts: list[str] = []
    try:
        await asyncio.to_thread(zk.start)
        for _ in range(2):
            config = MasterConfig(port=0, zk=zk.url("/mesonb"), zk_session_timeout=4,
                                  work_dir=tmp_path)
            daemon = MasterDaemon(config, on_abort=aborts.append)
            await daemon.start()
            daemons.append(daemon)
        first, second = daemons
        await until(lambda: first.master.leading, what="the first master to lead")
        await until(lambda: second.master.leader == first.address, what="the standby")
        assert not second.master.leading
        await asyncio.to_thread(expire_session, first.contender.client, zk.connect_string)
        await until(lambda: aborts, what="the leader to abort")
        assert "expired" in aborts[0] and not first.master.leading
        await until(lambda: second.master.leading, what="the standby to lead")
        assert second.master.leader is None
    finally:
        for daemon in daemons:
            await daemon.stop()
        await asyncio.to_thread(zk.stop)
