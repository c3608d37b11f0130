"""A new leader recovering its registry keeps new connections waiting instead of
answering 503: an agent sent there by ZooKeeper would otherwise fall into its
registration back-off (seconds) for a recovery of milliseconds."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import time
from pathlib import Path

import pytest

from mesonb.config import MasterConfig
from mesonb.master.daemon import MasterDaemon
from mesonb.master.registry import MemoryStore
from mesonb.protocol.agent import AGENT_PATH
from mesonb.testing.zookeeper import ZooKeeperServer, zookeeper_jar

pytestmark = pytest.mark.skipif(zookeeper_jar() is None, reason="ZooKeeper is not installed")

UPGRADE = (f"GET {AGENT_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n").encode()


class HeldLoad(MemoryStore):
    """A registry whose recovery (``load``) waits until released."""

    def __init__(self) -> None:
        super().__init__()
        self.loading = threading.Event()
        self.gate = threading.Event()

    def load(self):
        self.loading.set()
        assert self.gate.wait(30), "the held registry load was never released"
        return super().load()


async def until(condition, timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def read_status(sock: socket.socket) -> str:
    sock.settimeout(15)
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def accept_queue(port: int) -> int:
    """Connections the kernel holds for ``port``'s listening socket, not yet accepted."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:  # LISTEN
            return int(fields[4].split(":")[1], 16)
    return 0


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")
async def test_connections_wait_for_the_recovery_instead_of_503(tmp_path):
    zk = ZooKeeperServer(tmp_path / "zk")
    daemons: list[MasterDaemon] = []
    store = HeldLoad()
    probe = barrier = None
    try:
        await asyncio.to_thread(zk.start)
        config = dict(port=0, zk=zk.url("/mesonb"), zk_session_timeout=4, work_dir=tmp_path)
        first = MasterDaemon(MasterConfig(**config), on_abort=lambda reason: None)
        await first.start()
        daemons.append(first)
        await until(lambda: first.master.leading, what="the first master to lead")
        second = MasterDaemon(MasterConfig(**config), on_abort=lambda reason: None,
                              registry_store=store)
        await second.start()
        daemons.append(second)
        await until(lambda: second.master.leader == first.address, what="the standby")
        barrier = http.client.HTTPConnection("127.0.0.1", second.port, timeout=10)

        def round_trip() -> int:
            """A request on a connection the standby accepted before: one loop turn."""
            barrier.request("GET", "/master/state")
            response = barrier.getresponse()
            response.read()
            return response.status

        assert await asyncio.to_thread(round_trip) == 200

        await first.stop()  # leaves the election: the standby leads and recovers
        await until(store.loading.is_set, what="the new leader's registry recovery")
        # An agent opens its link now, while the recovery is under way...
        probe = socket.create_connection(("127.0.0.1", second.port), timeout=5)
        probe.sendall(UPGRADE)
        assert accept_queue(second.port) == 1
        await asyncio.to_thread(round_trip)  # the master's loop has run meanwhile
        # ...and it waits, not accepted (so not answered 503), until the master leads.
        assert accept_queue(second.port) == 1
        assert not second.master.leading
        store.gate.set()
        status = await asyncio.to_thread(read_status, probe)
        assert status == "HTTP/1.1 101 Switching Protocols"
        assert second.master.leading
    finally:
        store.gate.set()
        for sock in (probe, barrier):
            if sock is not None:
                sock.close()
        for daemon in daemons:
            await daemon.stop()
        await asyncio.to_thread(zk.stop)
