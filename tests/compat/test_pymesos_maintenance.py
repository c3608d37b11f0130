"""An unchanged pymesos 0.3.15 framework meets maintenance: it gets inverse offers (and
their rescinds) through its own parsing of the event stream, answers with
``acceptInverseOffers``, and the operator sees the answer in the maintenance status."""

from __future__ import annotations

import threading
from typing import Any

import pymesos  # installed by tests/compat/install_pymesos.py (.ci/run does it)
import pytest
import requests
from test_pymesos import Recorder, start_driver

from mesonb.testing.processes import ProcessCluster, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.compat]


class Answering(Recorder):
    """Records inverse offers and rescinds; accepts every inverse offer after the first."""

    def __init__(self, tasks: dict[str, dict]):
        super().__init__(tasks)
        self.inverse: list[dict[str, Any]] = []
        self.rescinded: list[str] = []
        self.answer_lock = threading.Lock()

    def inverseOffers(self, driver: pymesos.MesosSchedulerDriver, offers: list[dict]) -> None:
        with self.answer_lock:
            self.inverse.extend(offers)
            if len(self.inverse) > 1:
                driver.acceptInverseOffers([o["id"] for o in offers])

    def inverseOfferRescinded(self, driver: pymesos.MesosSchedulerDriver,
                              offer_id: dict) -> None:
        self.rescinded.append(offer_id["value"])


def window(start_ns: int) -> dict[str, Any]:
    return {"windows": [{"machine_ids": [{"hostname": "box1"}],
                         "unavailability": {"start": {"nanoseconds": start_ns}}}]}


def test_pymesos_gets_inverse_offers_and_its_answer_is_shown(tmp_path):
    with ProcessCluster(tmp_path, agents=1, agent_args=["--hostname", "box1"]) as cluster:
        sched = Answering({"long": {"shell": True, "value": "sleep 120"}})
        driver = start_driver(sched, cluster.address)
        try:
            wait_for(lambda: sched.state_of("long") == "TASK_RUNNING", 30, what="the task")
            url = cluster.url + "/master/maintenance/schedule"
            assert requests.post(url, json=window(10**18), timeout=10).status_code == 200
            wait_for(lambda: sched.inverse, 20, what="an inverse offer")
            first = sched.inverse[0]
            assert first["unavailability"]["start"] == {"nanoseconds": 10**18}
            # A new window: the unanswered inverse offer is rescinded and a new one sent.
            assert requests.post(url, json=window(2 * 10**18), timeout=10).status_code == 200
            wait_for(lambda: first["id"]["value"] in sched.rescinded, 20, what="the rescind")
            wait_for(lambda: len(sched.inverse) > 1, 20, what="the second inverse offer")

            def accepted() -> bool:
                status = requests.get(cluster.url + "/master/maintenance/status",
                                      timeout=10).json()
                return any(s["status"] == "ACCEPT" for m in status["draining_machines"]
                           for s in m["statuses"])

            wait_for(accepted, 20, what="the ACCEPT in the maintenance status")
            assert sched.errors == []
        finally:
            driver.stop()
            driver.join()
