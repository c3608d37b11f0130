"""The ZooKeeper registry store and its fence, on a real ZooKeeper: a master writes the
registry only while its election znode exists, so a deposed leader cannot overwrite what
the new one wrote."""

from __future__ import annotations

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from mesonb.master.registry import Registry, ZooKeeperStore
from mesonb.testing.processes import wait_for
from mesonb.testing.zookeeper import ZooKeeperServer, expire_session, zookeeper_jar

pytestmark = pytest.mark.skipif(zookeeper_jar() is None, reason="ZooKeeper is not installed")

AGENT = {"state": "admitted", "info": {"hostname": "h1", "port": 5051}}
MOVED = {"state": "unreachable", "info": {"hostname": "h1", "port": 5051}, "time": 3.0}


@pytest.fixture
def zk(tmp_path):
    server = ZooKeeperServer(tmp_path / "zk")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(zk):
    kazoo = KazooClient(zk.connect_string, timeout=10)
    try:
        kazoo.start(10)
        yield kazoo
    finally:
        kazoo.stop()
        kazoo.close()


def contend(client: KazooClient) -> str:
    """An election znode, as a master's contender creates it."""
    return client.create("/mesonb/json.info_", b"{}", ephemeral=True, sequence=True,
                         makepath=True)


def test_writes_are_refused_once_the_election_znode_is_gone(client):
    fence = [contend(client)]
    store = ZooKeeperStore(client, "/mesonb-registry", fence=lambda: fence[0])
    store.put("agents", "A1", AGENT)
    store.put("agents", "A2", AGENT)
    store.put("agents", "A1", MOVED)  # an existing znode: set_data
    store.put("frameworks", "F1", {"info": {"name": "fw"}})
    store.delete("frameworks", "F1")
    assert store.load() == {"agents": {"A1": MOVED, "A2": AGENT}, "frameworks": {}}

    client.delete(fence[0])  # this master no longer contends
    with pytest.raises(NoNodeError):
        store.put("agents", "A1", AGENT)  # set_data on an existing znode
    with pytest.raises(NoNodeError):
        store.put("agents", "A3", AGENT)  # create
    with pytest.raises(NoNodeError):
        store.delete("agents", "A2")
    fence[0] = None  # not contending at all: no unfenced writes either
    with pytest.raises(NoNodeError):
        store.put("agents", "A3", AGENT)
    assert store.load() == {"agents": {"A1": MOVED, "A2": AGENT}, "frameworks": {}}

    fence[0] = contend(client)  # contending again (a new znode): writes go through
    store.put("agents", "A3", AGENT)
    assert set(store.load()["agents"]) == {"A1", "A2", "A3"}


def test_a_deposed_leader_whose_session_expired_cannot_write(zk, client):
    fence = contend(client)
    registry = Registry(ZooKeeperStore(client, "/mesonb-registry", fence=lambda: fence))
    try:
        registry.admit_agent("A1", AGENT["info"]).result(10)
        expire_session(client, zk.connect_string)
        # kazoo opens a new session; the election znode went with the old one
        wait_for(lambda: client.connected and client.exists(fence) is None, 20,
                 what="a new session without the election znode")
        failed = registry.mark_unreachable("A1", AGENT["info"], 3.0)
        with pytest.raises(NoNodeError):
            failed.result(10)
        # retried, it is written again, and refused again (not taken as persisted)
        again = registry.mark_unreachable("A1", AGENT["info"], 3.0)
        assert again is not None
        with pytest.raises(NoNodeError):
            again.result(10)
        with pytest.raises(NoNodeError):
            registry.remove_agent("A1").result(10)
    finally:
        registry.close()
    reader = ZooKeeperStore(client, "/mesonb-registry")
    assert reader.load()["agents"] == {"A1": {"state": "admitted", "info": AGENT["info"]}}
