"""``Cluster("zk://...")``: the notebook client finds the leading master in a real
ZooKeeper and sends every master call (operator API, state, the framework) to it."""

from __future__ import annotations

import http.client
from pathlib import Path

import pytest

from mesonb import Cluster
from mesonb.testing.ha import ZooKeeperCluster
from mesonb.testing.processes import Daemon, get_json, wait_for
from mesonb.testing.zookeeper import zookeeper_jar

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(zookeeper_jar() is None, reason="ZooKeeper is not installed"),
]


def status_of(master: Daemon) -> int:
    host, port = master.address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("POST", "/api/v1/scheduler", body=b"{}",
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_cluster_from_zk_url_talks_to_the_leader(tmp_path: Path) -> None:
    ha = ZooKeeperCluster(tmp_path)
    cluster = None
    try:
        url = ha.start().url
        masters = ha.start_masters(2)
        wait_for(lambda: (s := sorted(status_of(m) == 307 for m in masters))
                            == [False, True] and s, 20, what="one leader, one standby")
        [leader] = [m for m in masters if status_of(m) != 307]
        ha.start_agent()
        wait_for(lambda: len(get_json(leader.url + "/master/state")["slaves"]) == 1, 20,
                 what="the agent on the leader")

        cluster = Cluster(url)
        assert cluster.address == url
        assert cluster._master.url == leader.url
        assert cluster.submit(sum, [1, 2, 3], cpus=0.1, mem="64MiB").result(60) == 6
        assert cluster.run("echo zk", cpus=0.1, mem="32MiB").result(60).stdout.strip() == "zk"
        agents = cluster.agents()  # the operator API, on the leader
        assert len(agents) == 1 and agents["cpus_total"].iloc[0] == 2
        frameworks = cluster.frameworks()
        assert cluster.framework_id in set(frameworks["framework_id"])
        # the framework the client registered is on the leader, with a failover timeout
        [mine] = [f for f in get_json(leader.url + "/master/state")["frameworks"]
                  if f["id"] == cluster.framework_id]
        assert mine["failover_timeout"] == 3600
    finally:
        if cluster is not None:
            cluster.close()
        ha.stop()
