"""An unchanged pymesos 0.3.15 framework reserves resources, creates a persistent volume
and launches a task that writes into it, all in one ACCEPT; after the agent restarts, a
second task on the same volume reads the data back (real master and agent processes)."""

from __future__ import annotations

import getpass
import threading
from collections import defaultdict
from typing import Any

import pymesos  # installed by tests/compat/install_pymesos.py (.ci/run does it)
import pytest

from mesonb.testing.processes import ProcessCluster, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.compat]
ROLE = "db"


def reservation() -> list[dict[str, Any]]:
    return [{"type": "DYNAMIC", "role": ROLE, "principal": "pymesos"}]


def scalar(name: str, value: float) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value},
            "reservations": reservation()}


VOLUME = {**scalar("disk", 64), "disk": {
    "persistence": {"id": "pg-data", "principal": "pymesos"},
    "volume": {"container_path": "pgdata", "mode": "RW"}}}


class VolumeUser(pymesos.Scheduler):
    """First offer: RESERVE + CREATE + LAUNCH(writer). Once told to, launches the reader
    on an offer that holds the volume."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.states: dict[str, list[str]] = defaultdict(list)
        self.messages: dict[str, str] = {}
        self.created = False
        self.read_now = False
        self.read_launched = False
        self.offers_with_volume = 0

    def task(self, task_id: str, agent_id: dict[str, str], command: str) -> dict[str, Any]:
        return {"name": task_id, "task_id": {"value": task_id}, "agent_id": agent_id,
                "command": {"shell": True, "value": command},
                "resources": [scalar("cpus", 0.1), scalar("mem", 32), VOLUME]}

    def resourceOffers(self, driver, offers):
        with self.lock:
            for offer in offers:
                has_volume = any((r.get("disk") or {}).get("persistence")
                                 for r in offer["resources"])
                self.offers_with_volume += has_volume
                if not self.created:
                    self.created = True
                    driver.acceptOffers([offer["id"]], [
                        {"type": "RESERVE", "reserve": {"resources": [
                            scalar("cpus", 0.5), scalar("mem", 64), scalar("disk", 128)]}},
                        {"type": "CREATE", "create": {"volumes": [VOLUME]}},
                        {"type": "LAUNCH", "launch": {"task_infos": [self.task(
                            "writer", offer["agent_id"],
                            "echo written-before-restart > pgdata/file.txt")]}},
                    ], {"refuse_seconds": 1})
                elif self.read_now and has_volume and not self.read_launched:
                    self.read_launched = True
                    driver.launchTasks(offer["id"], [self.task(
                        "reader", offer["agent_id"],
                        'test "$(cat pgdata/file.txt)" = written-before-restart')],
                        {"refuse_seconds": 1})
                else:
                    driver.declineOffer(offer["id"], {"refuse_seconds": 1})

    def statusUpdate(self, driver, status):
        with self.lock:
            task_id = status["task_id"]["value"]
            self.states[task_id].append(status["state"])
            self.messages[task_id] = status.get("message", "")

    def last(self, task_id: str) -> str | None:
        with self.lock:
            seen = self.states.get(task_id)
            return seen[-1] if seen else None


def test_pymesos_reserves_creates_a_volume_and_reads_it_back_after_an_agent_restart(tmp_path):
    cluster = ProcessCluster(tmp_path, agents=1, agent_resources="cpus:2;mem:1024;disk:1024")
    sched = VolumeUser()
    driver = None
    try:
        cluster.start()
        framework = {"user": getpass.getuser(), "name": "pymesos-volumes", "role": ROLE,
                     "principal": "pymesos", "failover_timeout": 60}
        driver = pymesos.MesosSchedulerDriver(sched, framework, cluster.address,
                                              use_addict=False)
        driver.start()
        wait_for(lambda: sched.last("writer") in ("TASK_FINISHED", "TASK_FAILED",
                                                  "TASK_ERROR"), 30, what="the writer")
        assert sched.last("writer") == "TASK_FINISHED", sched.messages
        volume_file = (tmp_path / "agent0" / "volumes" / "roles" / ROLE / "pg-data"
                       / "file.txt")
        assert volume_file.read_text() == "written-before-restart\n"

        cluster.agents[0].kill()
        cluster.agents.clear()
        cluster.start_agent(0)
        cluster.wait_agents(1)
        with sched.lock:
            sched.read_now = True
        driver.reviveOffers()
        wait_for(lambda: sched.last("reader") in ("TASK_FINISHED", "TASK_FAILED",
                                                  "TASK_ERROR"), 30, what="the reader")
        assert sched.last("reader") == "TASK_FINISHED", sched.messages
        slaves = cluster.state()["slaves"]
        assert slaves[0]["reserved_resources"][ROLE]["disk"] == 128
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        if driver is not None:
            driver.stop()
        cluster.stop()
