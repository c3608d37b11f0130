"""The dashboard of a ``zk://`` cluster follows a master failover: when the leader dies
its operator stream breaks, and it subscribes again to the new leader it finds in a real
ZooKeeper (real master and agent processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesonb import Cluster
from mesonb.testing.ha import ZooKeeperCluster, leading
from mesonb.testing.processes import get_json, wait_for
from mesonb.testing.zookeeper import zookeeper_jar

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(zookeeper_jar() is None, reason="ZooKeeper is not installed"),
]


def test_dashboard_follows_the_new_leader(tmp_path: Path) -> None:
    ha = ZooKeeperCluster(tmp_path)
    cluster = None
    try:
        url = ha.start().url
        first = ha.start_master("m1")
        wait_for(lambda: leading(first), 20, what="m1 to lead")
        second = ha.start_master("m2")
        ha.start_agent()
        wait_for(lambda: len(get_json(first.url + "/master/state")["slaves"]) == 1, 20,
                 what="the agent on m1")

        cluster = Cluster(url)
        dash = cluster.dashboard(reconnect_for=60)
        dash.wait_subscribed(30)
        assert dash.url == first.url and len(dash.model.agents) == 1

        first.kill()  # the leader dies; its ZooKeeper session expires after 2 s
        assert dash.wait(lambda m: dash.reconnects >= 1 and dash.connected
                         and dash.url == second.url and len(m.agents) == 1, 60)
        assert dash.error is None and not dash.stopped
        assert dash.status.startswith(f"live from {second.url}")
        # and it follows the new leader's events
        fut = cluster.submit(abs, -4, cpus=0.1, mem=64)
        assert fut.result(60) == 4
        assert dash.wait(lambda m: m.tasks.get(fut.task_id, {}).get("state")
                         == "TASK_FINISHED", 30)
        dash.stop()
    finally:
        if cluster is not None:
            cluster.close()
        ha.stop()
