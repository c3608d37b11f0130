"""The test ZooKeeper starts even when another process takes its port first.

:func:`mesonb.testing.zookeeper.free_port` closes its socket before Java binds the port;
these tests make that race happen every time by handing out a port that is taken."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from mesonb.testing import zookeeper
from mesonb.testing.zookeeper import ZooKeeperEnsemble, ZooKeeperServer, zookeeper_jar

pytestmark = pytest.mark.skipif(zookeeper_jar() is None, reason="ZooKeeper is not installed")


@pytest.fixture
def squatter() -> Iterator[int]:
    """A port another process (here: a plain socket) listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def hand_out(monkeypatch, taken: int, at: int = 0) -> None:
    """``free_port()`` returns ``taken`` on its call number ``at``, then free ports."""
    real, calls = zookeeper.free_port, [0]

    def free_port() -> int:
        calls[0] += 1
        return taken if calls[0] == at + 1 else real()

    monkeypatch.setattr(zookeeper, "free_port", free_port)


def works(connect_string: str) -> bool:
    client = KazooClient(connect_string, timeout=10)
    client.start(10)
    try:
        client.create("/probe", b"x")
        return client.get("/probe")[0] == b"x"
    finally:
        client.stop()
        client.close()


def test_server_moves_to_a_new_port_when_its_port_was_taken(tmp_path, monkeypatch, squatter):
    hand_out(monkeypatch, squatter)
    server = ZooKeeperServer(tmp_path / "zk")
    assert server.client_port == squatter
    try:
        server.start(timeout=20)
        assert server.client_port != squatter
        assert works(server.connect_string)
    finally:
        server.stop()


def test_another_zookeeper_on_the_port_is_not_taken_for_ours(tmp_path, monkeypatch):
    with ZooKeeperServer(tmp_path / "other") as other:
        hand_out(monkeypatch, other.client_port)
        server = ZooKeeperServer(tmp_path / "zk")
        try:
            server.start(timeout=20)
            assert server.client_port != other.client_port
            assert server.running and other.running
        finally:
            server.stop()


def test_ensemble_starts_again_on_new_ports(tmp_path, monkeypatch, squatter):
    # calls 0-5: the peer and election ports of 3 nodes; call 6: node 1's client port
    hand_out(monkeypatch, squatter, at=6)
    ensemble = ZooKeeperEnsemble(3, tmp_path / "zk")
    assert ensemble.nodes[0].client_port == squatter
    try:
        ensemble.start(timeout=30)
        assert squatter not in [n.client_port for n in ensemble.nodes]
        assert works(ensemble.connect_string)
    finally:
        ensemble.stop()
