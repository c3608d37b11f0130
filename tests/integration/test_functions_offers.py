"""How the functions framework uses its offers: what a launch leaves is declined for a
while (no allocation run and OFFERS event per call), and new work revives it at once."""

from __future__ import annotations

import os
import time

import pytest

from mesonb import Cluster
from mesonb.frameworks.functions import scheduler as functions_scheduler

pytestmark = pytest.mark.slow


def wait_for(path: str) -> bool:
    while not os.path.exists(path):  # the task's own work: until the test lets it finish
        time.sleep(0.02)
    return True


def test_the_rest_of_an_offer_is_declined_and_revived_for_new_work(monkeypatch, tmp_path):
    monkeypatch.setattr(functions_scheduler, "REMAINDER_REFUSE", 60.0)
    gate = tmp_path / "go"
    # warm=False: no warm-up call, whose own remainder filter this test would see first
    with Cluster.local(agents=1, resources="cpus:2;mem:2048", warm=False) as cluster:
        blocker = cluster.submit(wait_for, str(gate), cpus=0.5, mem=64)
        master = cluster.local.master.master
        framework = master.book.frameworks[cluster.framework_id]
        deadline = time.monotonic() + 30
        while not framework.filters:  # the launch declined the agent's rest
            assert time.monotonic() < deadline, "no refuse filter after the launch"
            time.sleep(0.01)
        (flt,) = framework.filters.values()
        assert flt.refuse_until - master.clock.monotonic() > 30  # REMAINDER_REFUSE
        assert flt.resources.get("cpus") == pytest.approx(2 - 0.5)  # the executor is uncharged

        # The rest of the agent is filtered and no offer is held: a new call REVIVEs,
        # long before the filter would end.
        started = time.monotonic()
        assert cluster.submit(abs, -3, cpus=0.5, mem=64).result(20) == 3
        assert time.monotonic() - started < 15
        gate.touch()
        assert blocker.result(30) is True



def test_calls_made_one_after_another_wait_for_the_offer_on_its_way(tmp_path):
    """A script's loop (each call submitted when the last returned), against a master and
    an agent in processes of their own: the ended call's agent is offered again by
    itself, so calls do not REVIVE (an HTTP call and an allocation run each)."""
    import json
    import urllib.request

    from mesonb.testing.processes import ProcessCluster

    processes = ProcessCluster(tmp_path, agents=1, agent_resources="cpus:2;mem:2048;disk:1024")
    processes.start()
    try:
        def revives() -> float:
            url = f"http://{processes.address}/metrics/snapshot"
            with urllib.request.urlopen(url, timeout=10) as answer:
                return json.load(answer)["master/messages_revive_offers"]

        with Cluster(processes.address) as cluster:
            assert cluster.submit(abs, -1).result(60) == 1
            before = revives()
            for i in range(40):
                assert cluster.submit(abs, -i).result(20) == i
            assert revives() - before <= 4  # was about one call in two
    finally:
        processes.stop()
