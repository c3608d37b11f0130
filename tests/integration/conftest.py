"""Fixtures shared by the integration tests: a real ZooKeeper server for a test module (a
module that defines its own `zk` keeps it) and a kazoo client of it per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from mesonb.testing.zookeeper import ZooKeeperServer


@pytest.fixture(scope="module")
def zk() -> Iterator[ZooKeeperServer]:
    server = ZooKeeperServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(zk: ZooKeeperServer) -> Iterator[KazooClient]:
    c = KazooClient(zk.connect_string)
    c.start(10)
    try:
        yield c
    finally:
        c.stop()
        c.close()
