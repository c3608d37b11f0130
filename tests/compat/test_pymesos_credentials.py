"""An unchanged pymesos framework authenticates with its principal and secret (HTTP Basic,
as pymesos sends them) against a master started with a Mesos credentials file and runs a
task. (A wrong secret is refused with 401, tests/integration/test_security_acls.py; pymesos
answers a refused SUBSCRIBE by interrupting its main thread, so it is not driven here.)"""

from __future__ import annotations

import getpass
import json
import os
import threading

import pymesos  # installed by tests/compat/install_pymesos.py
import pytest

from mesonb.testing.processes import ProcessCluster, get_json, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.compat]

SECRET = "agents-and-operators"


class OneTask(pymesos.Scheduler):
    """Launches one short command task on the first offer; records its states."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.framework_id: str | None = None
        self.states: list[str] = []
        self.launched = False

    def registered(self, driver, framework_id, master_info):
        self.framework_id = framework_id["value"]

    def resourceOffers(self, driver, offers):
        with self.lock:
            for offer in offers:
                if self.launched:
                    driver.declineOffer(offer["id"], {"refuse_seconds": 3600})
                    continue
                self.launched = True
                driver.launchTasks(offer["id"], [{
                    "name": "hello", "task_id": {"value": "hello"}, "agent_id": offer["agent_id"],
                    "command": {"shell": True, "value": "echo hello"},
                    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                                  {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]}])

    def statusUpdate(self, driver, status):
        with self.lock:
            self.states.append(status["state"])


@pytest.fixture
def cluster(tmp_path):
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"credentials": [
        {"principal": "analytics", "secret": "s3cret"}]}))
    os.chmod(credentials, 0o600)
    env = {**os.environ, "MESONB_SECRET": SECRET}
    with ProcessCluster(tmp_path, agents=1, env=env,
                        master_args=["--credentials", str(credentials)]) as cluster:
        yield cluster


def start(scheduler: OneTask, master: str, secret: str) -> pymesos.MesosSchedulerDriver:
    driver = pymesos.MesosSchedulerDriver(
        scheduler, {"user": getpass.getuser(), "name": "authenticated", "principal": "analytics"},
        master, use_addict=False, principal="analytics", secret=secret)
    driver.start()
    return driver


def test_pymesos_authenticates_with_its_principal_and_secret(cluster):
    scheduler = OneTask()
    driver = start(scheduler, cluster.address, "s3cret")
    try:
        wait_for(lambda: "TASK_FINISHED" in scheduler.states, 30, what="the task finished")
        state = get_json(f"http://{cluster.address}/master/state",
                         headers={"Authorization": f"Bearer {SECRET}"})
        (framework,) = [f for f in state["frameworks"] if f["id"] == scheduler.framework_id]
        assert framework["principal"] == "analytics"
    finally:
        driver.stop()
        driver.join()
