"""10,000 instances of one app persist in a real ZooKeeper (each znode under its 1 MB
limit) and a newly elected framework loads them all back."""

from __future__ import annotations

import json

import pytest
from kazoo.client import KazooClient

from mesonb.frameworks.marathon.core import MarathonCore
from mesonb.frameworks.marathon.instance_fsm import InstanceState
from mesonb.frameworks.marathon.instances import Instance, new_task_id
from mesonb.frameworks.marathon.operations import Operations
from mesonb.frameworks.marathon.storage import ZooKeeperStore
from mesonb.testing.clock import FakeClock
from mesonb.testing.zookeeper import zookeeper_jar

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(zookeeper_jar() is None, reason="ZooKeeper is not installed")]
COUNT = 10_000


async def test_ten_thousand_instances_survive_in_zookeeper(client: KazooClient) -> None:
    clock = FakeClock()
    core = MarathonCore(ZooKeeperStore(client, "/marathon-big"), clock=clock.monotonic)
    await Operations(core).create_app({"id": "/big", "cmd": "sleep 600", "instances": COUNT,
                                       "cpus": 0.001, "mem": 1})
    app = core.apps["/big"].definition
    for i in range(COUNT):
        core.add_instance(Instance(new_task_id("/big"), "/big", app.version, app.version,
                                   f"agent-{i % 50}", f"host-{i % 50}", "127.0.0.1",
                                   [31000 + i % 100], "*", InstanceState.RUNNING,
                                   "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:01.000Z"))
    core._dirty.add("/big")
    await core.flush()
    assert not core._dirty  # every write went through

    base = "/marathon-big/state/instances/%2Fbig"
    sizes = [len(client.get(f"{base}/{shard}")[0]) for shard in client.get_children(base)]
    assert max(sizes) < 1024 * 1024 and sum(sizes) > 2 * 1024 * 1024

    fresh = MarathonCore(ZooKeeperStore(client, "/marathon-big"), clock=clock.monotonic)
    await fresh.load()
    assert set(fresh.instances) == set(core.instances)
    some = next(iter(core.instances.values()))
    assert json.dumps(fresh.instances[some.id].to_store(), sort_keys=True) == \
        json.dumps(some.to_store(), sort_keys=True)
    assert fresh.apps["/big"].definition.instances == COUNT
