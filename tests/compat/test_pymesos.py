"""An unchanged pymesos 0.3.15 framework against real mesonb master and agent processes.

This is how we know the v1 scheduler API is right: pymesos parses the SUBSCRIBE stream
itself, reads nested OFFERS bodies, acknowledges updates implicitly, and sends KILL and
RECONCILE without agent ids.
"""

from __future__ import annotations

import getpass
import threading
import uuid
from collections import defaultdict

import pymesos  # installed by tests/compat/install_pymesos.py (.ci/run does it)
import pytest

from mesonb.testing.processes import ProcessCluster, get_json, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.compat]

TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
            "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"}


class Recorder(pymesos.Scheduler):
    """Launches the tasks it is given on the first offers that fit, records every update."""

    def __init__(self, tasks: dict[str, dict]):
        self.to_launch = dict(tasks)
        self.lock = threading.Lock()
        self.states: dict[str, list[str]] = defaultdict(list)
        self.statuses: list[dict] = []
        self.offers_seen = 0
        self.framework_id: str | None = None
        self.errors: list[str] = []

    def registered(self, driver, framework_id, master_info):
        self.framework_id = framework_id["value"]

    def resourceOffers(self, driver, offers):
        with self.lock:
            self.offers_seen += len(offers)
            for offer in offers:
                if not self.to_launch:
                    driver.declineOffer(offer["id"], {"refuse_seconds": 3600})
                    continue
                cpus = sum(r["scalar"]["value"] for r in offer["resources"]
                           if r["name"] == "cpus")
                batch = []
                for task_id, spec in list(self.to_launch.items()):
                    if cpus < 0.1:
                        break
                    cpus -= 0.1
                    batch.append({
                        "name": task_id,
                        "task_id": {"value": task_id},
                        "agent_id": offer["agent_id"],
                        "command": spec,
                        "resources": [
                            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                        ],
                    })
                    del self.to_launch[task_id]
                driver.launchTasks(offer["id"], batch, {"refuse_seconds": 1})
            if not self.to_launch:
                driver.suppressOffers()

    def statusUpdate(self, driver, status):
        with self.lock:
            self.states[status["task_id"]["value"]].append(status["state"])
            self.statuses.append(status)

    def error(self, driver, message):
        self.errors.append(message)

    def state_of(self, task_id: str) -> str | None:
        with self.lock:
            seen = self.states.get(task_id)
            return seen[-1] if seen else None

    def statuses_of(self, task_id: str) -> list[dict]:
        with self.lock:
            return [s for s in self.statuses if s["task_id"]["value"] == task_id]


@pytest.fixture
def cluster(tmp_path):
    with ProcessCluster(tmp_path, agents=1) as cluster:
        yield cluster


def start_driver(scheduler, master: str, **info):
    framework = {"user": getpass.getuser(), "name": "pymesos-compat", "failover_timeout": 60,
                 **info}
    driver = pymesos.MesosSchedulerDriver(scheduler, framework, master, use_addict=False)
    driver.start()
    return driver


def test_pymesos_framework_runs_kills_and_reconciles_command_tasks(cluster):
    marker = uuid.uuid4().hex
    sched = Recorder({
        "ok": {"shell": True, "value": f"echo {marker}; echo $GREETING >&2",
               "environment": {"variables": [{"name": "GREETING", "value": "hej"}]}},
        "fails": {"shell": True, "value": "exit 3"},
        "argv": {"shell": False, "value": "/bin/echo", "arguments": ["echo", "a b"]},
        "long": {"shell": True, "value": "sleep 120"},
    })
    driver = start_driver(sched, cluster.address)
    try:
        wait_for(lambda: sched.state_of("ok") == "TASK_FINISHED", 30, what="ok finished",)
        assert sched.states["ok"] == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
        wait_for(lambda: sched.state_of("fails") == "TASK_FAILED", 30, what="fails failed")
        failed = sched.statuses_of("fails")[-1]
        assert failed["message"] == "Command exited with status 3"
        assert failed["source"] == "SOURCE_EXECUTOR"
        wait_for(lambda: sched.state_of("argv") == "TASK_FINISHED", 30, what="argv finished")
        every = sched.statuses_of("ok")
        assert all(s.get("uuid") and s["agent_id"]["value"] for s in every)

        wait_for(lambda: sched.state_of("long") == "TASK_RUNNING", 30, what="long running")
        driver.reconcileTasks([])  # implicit: every non-terminal task
        wait_for(lambda: any(s.get("reason") == "REASON_RECONCILIATION"
                             for s in sched.statuses_of("long")), 15, what="reconciliation")
        # "ok" ended and pymesos acknowledged it: Mesos's master no longer knows it, and
        # without an agent id a framework that is not PARTITION_AWARE hears TASK_LOST.
        driver.reconcileTasks([{"task_id": {"value": "ok"}}])
        wait_for(lambda: any(s.get("reason") == "REASON_RECONCILIATION"
                             for s in sched.statuses_of("ok")), 15, what="explicit reconcile")
        assert sched.statuses_of("ok")[-1]["state"] == "TASK_LOST"

        driver.killTask({"value": "long"})
        wait_for(lambda: sched.state_of("long") == "TASK_KILLED", 30, what="long killed")

        # The sandbox holds the task's output, served by the agent's files API.
        state = cluster.state()
        (framework,) = [f for f in state["frameworks"] if f["id"] == sched.framework_id]
        finished = {t["id"]: t for t in framework["completed_tasks"]}
        assert finished["ok"]["state"] == "TASK_FINISHED"
        assert finished["long"]["state"] == "TASK_KILLED"
        agent_url = cluster.agents[0].url
        agent_state = get_json(agent_url + "/state")
        directories = [
            e["directory"]
            for f in agent_state["frameworks"] + agent_state.get("completed_frameworks", [])
            for e in f["executors"] + f.get("completed_executors", [])
            if e["id"] == "ok"
        ]
        assert directories, agent_state
        out = get_json(f"{agent_url}/files/read?path={directories[0]}/stdout&offset=0")
        assert marker in out["data"]
        err = get_json(f"{agent_url}/files/read?path={directories[0]}/stderr&offset=0")
        assert "hej" in err["data"]  # the task saw its CommandInfo.environment
        assert sched.errors == []
    finally:
        driver.stop()
        driver.join()
    wait_for(lambda: any(f["id"] == sched.framework_id
                         for f in cluster.state()["completed_frameworks"]), 15,
             what="framework torn down")


def test_pymesos_finds_the_master_through_version_and_gets_offers_again_after_revive(cluster):
    sched = Recorder({})
    driver = start_driver(sched, cluster.address)
    try:
        wait_for(lambda: sched.offers_seen >= 1, 20, what="first offer")
        seen = sched.offers_seen
        driver.reviveOffers()
        wait_for(lambda: sched.offers_seen > seen, 20, what="offer after revive")
    finally:
        driver.stop()
        driver.join()
