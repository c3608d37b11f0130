"""Masters as real processes contending in a real 3-node ZooKeeper ensemble, and the
local-disk registry across a single master's restart."""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from mesonb.discovery import choose_leader, master_address
from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.resources import Resources
from mesonb.testing.processes import Daemon, ProcessCluster, get_json, wait_for
from mesonb.testing.zookeeper import ZooKeeperEnsemble, zookeeper_jar

pytestmark = pytest.mark.slow
needs_zookeeper = pytest.mark.skipif(zookeeper_jar() is None, reason="ZooKeeper is not installed")


def probe(address: str, path: str = "/api/v1/scheduler") -> tuple[int, str | None]:
    """(status, Location) of a scheduler call, without following redirects."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("POST", path, body=b"{}", headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("Location")
    finally:
        conn.close()


def leaders(masters: list[Daemon]) -> list[Daemon]:
    """Masters that serve (not 307/503); a dead one counts as not leading."""
    out = []
    for m in masters:
        if m.proc.poll() is not None:
            continue
        try:
            status, _ = probe(m.address)
        except OSError:
            continue
        if status not in (307, 503):
            out.append(m)
    return out


def pymesos_choice(client: KazooClient, path: str) -> str:
    """pymesos's detector: min() over all children except log_replicas, then address."""
    children = [c for c in client.get_children(path) if c != "log_replicas"]
    data, _ = client.get(f"{path}/{min(children)}")
    return master_address(data)


def start_master(tmp_path: Path, name: str, zk_url: str, *extra: str) -> Daemon:
    daemon = Daemon(["master", "--port", "0", "--work-dir", str(tmp_path / name), "--zk", zk_url,
                     "--zk-session-timeout", "2", *extra], tmp_path / f"{name}.log")
    return daemon


@needs_zookeeper
def test_three_masters_elect_one_and_fail_over(tmp_path):
    ensemble = ZooKeeperEnsemble(3, tmp_path / "zk")
    masters: list[Daemon] = []
    client = None
    try:
        ensemble.start()
        url = ensemble.url("/mesonb")
        masters = [start_master(tmp_path, f"m{i}", url) for i in range(3)]
        for m in masters:
            m.wait_listening()
        [leader] = wait_for(lambda: (ls := leaders(masters)) and len(ls) == 1 and ls, 20,
                            what="exactly one leader")
        client = KazooClient(ensemble.connect_string)
        client.start(10)
        children = wait_for(lambda: (c := client.get_children("/mesonb")) and len(c) == 3 and c,
                            10, what="three contenders")
        assert len(children) == 3 and all(c.startswith("json.info_") for c in children)
        assert choose_leader(children) == min(children)
        assert pymesos_choice(client, "/mesonb") == leader.address
        for standby in (m for m in masters if m is not leader):
            _status, location = wait_for(
                lambda s=standby: (r := probe(s.address)) and r[0] == 307 and r, 10,
                what="a standby's redirect")
            assert location == f"//{leader.address}/api/v1/scheduler"
        # An agent admitted by the leader is written to the registry, which lives beside
        # (not under) the election path.
        agent = Daemon(["agent", "--master", leader.address, "--port", "0", "--work-dir",
                        str(tmp_path / "agent"), "--resources", "cpus:1;mem:256"],
                       tmp_path / "agent.log")
        masters.append(agent)  # stopped in finally with the masters
        agent.wait_listening()
        [_agent_id] = wait_for(lambda: client.exists("/mesonb-registry/agents") and
                              client.get_children("/mesonb-registry/agents"), 20,
                              what="the agent in the ZooKeeper registry")
        assert client.get_children("/mesonb") == children
        agent.kill()  # gone without UNREGISTER: stays admitted in the registry

        started = time.monotonic()
        leader.kill()
        rest = [m for m in masters if m is not leader]
        [new] = wait_for(lambda: (ls := leaders(rest)) and len(ls) == 1 and ls, 20,
                         what="a new leader")
        failover = time.monotonic() - started
        print(f"failover after kill -9: {failover:.2f}s")
        assert failover < 10  # session timeout 2 s, plus detection
        wait_for(lambda: pymesos_choice(client, "/mesonb") == new.address, 10,
                 what="ZooKeeper naming the new leader")
        assert "recovered from the registry: 1 agents to re-register" in new.output()
        other = next(m for m in rest if m is not new)
        wait_for(lambda: probe(other.address) == (307, f"//{new.address}/api/v1/scheduler"), 10,
                 what="the remaining standby redirecting to the new leader")
    finally:
        if client is not None:
            client.stop()
            client.close()
        for m in masters:
            m.stop()
        ensemble.stop()


@needs_zookeeper
def test_leader_that_loses_its_session_exits(tmp_path):
    ensemble = ZooKeeperEnsemble(3, tmp_path / "zk")
    masters: list[Daemon] = []
    try:
        ensemble.start()
        url = ensemble.url("/mesonb")
        masters = [start_master(tmp_path, f"m{i}", url) for i in range(2)]
        for m in masters:
            m.wait_listening()
        [leader] = wait_for(lambda: (ls := leaders(masters)) and len(ls) == 1 and ls, 20,
                            what="one leader")
        [standby] = [m for m in masters if m is not leader]
        # Freeze the leader past its 2 s session timeout (a long GC pause, a stuck host):
        # ZooKeeper expires its session and the standby takes over.
        leader.signal(signal.SIGSTOP)
        wait_for(lambda: leaders([standby]), 20, what="the standby to lead")
        leader.signal(signal.SIGCONT)
        code = wait_for(lambda: leader.proc.poll(), 20, what="the old leader to exit")
        assert code == 1
        assert "ZooKeeper session expired" in leader.output() or "session timeout" in \
            leader.output()
    finally:
        for m in masters:
            m.signal(signal.SIGCONT)
            m.stop()
        ensemble.stop()


def test_single_master_restart_keeps_its_registry(tmp_path):
    cluster = ProcessCluster(tmp_path, agents=1,
                             master_args=["--agent-reregister-timeout", "2"])
    try:
        cluster.start()
        [agent] = cluster.wait_agents(1)
        master_dir = tmp_path / "master"
        assert (master_dir / "registry" / "agents").is_dir()
        # the agent goes away for good, then the master restarts on the same work dir
        cluster.agents[0].kill()
        cluster.master.stop()
        port = cluster.master.port
        cluster.master = Daemon(["master", "--port", str(port), "--work-dir", str(master_dir),
                                 "--agent-reregister-timeout", "2"], tmp_path / "master2.log")
        cluster.master.wait_listening()

        def unreachable():
            state = get_json(cluster.url + "/master/state")
            return state["unreachable_slaves"] == 1

        wait_for(unreachable, 15, what="the missing agent to become unreachable")
        assert "recovered from the registry: 1 agents to re-register" in cluster.master.output()
        records = master_dir / "registry" / "agents"
        record = wait_for(lambda: (r := json.loads(next(records.glob("*.json")).read_text()))
                          and r["state"] == "unreachable" and r, 5, what="the registry record")
        assert record["info"]["id"]["value"] == agent["id"]
    finally:
        cluster.stop()


class Launcher:
    """Launches one long task on its first offer and records every status."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.launched = False
        self.statuses: list[dict] = []
        self.subscriptions = 0
        self.driver: SchedulerDriver | None = None

    def on_subscribed(self, body: dict) -> None:
        self.subscriptions += 1

    async def on_offers(self, offers: list[dict]) -> None:
        assert self.driver is not None
        for offer in offers:
            if self.launched:
                await self.driver.decline([offer["id"]["value"]], 3600)
                continue
            self.launched = True
            await self.driver.launch([offer["id"]["value"]], [{
                "name": self.task_id, "task_id": {"value": self.task_id},
                "agent_id": offer["agent_id"], "command": {"value": "sleep 300"},
                "resources": Resources.parse("cpus:0.1;mem:32").to_json()}])

    def on_update(self, status: dict) -> None:
        self.statuses.append(status)

    def states(self) -> list[str]:
        return [s["state"] for s in self.statuses]


async def until(condition, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_agent_unreachable_before_a_master_restart_returns_to_the_new_master(tmp_path):
    """The agent is marked unreachable, then the master restarts on its local registry;
    when the agent returns, the partition-aware framework sees its task RUNNING again and
    the other framework (told TASK_LOST) sees its task killed."""
    master_args = ["--agent-ping-timeout", "1", "--max-agent-ping-timeouts", "2"]
    cluster = ProcessCluster(tmp_path, agents=1, master_args=master_args)
    aware, plain = Launcher("aware-task"), Launcher("plain-task")
    drivers: list[SchedulerDriver] = []
    agent = None
    try:
        cluster.start()
        agent = cluster.agents[0]
        for launcher, capabilities in ((aware, [{"type": "PARTITION_AWARE"}]), (plain, [])):
            launcher.driver = SchedulerDriver(cluster.address, {
                "user": "tester", "name": launcher.task_id, "failover_timeout": 120,
                "capabilities": capabilities}, launcher)
            drivers.append(launcher.driver)
            await launcher.driver.start()
        await until(lambda: "TASK_RUNNING" in aware.states() and
                    "TASK_RUNNING" in plain.states(), 30, "both tasks running")

        agent.signal(signal.SIGSTOP)  # silent: the master marks it unreachable
        await until(lambda: "TASK_UNREACHABLE" in aware.states() and
                    "TASK_LOST" in plain.states(), 30, "the agent marked unreachable")
        records = tmp_path / "master" / "registry" / "agents"
        [record] = [json.loads(p.read_text()) for p in records.glob("*.json")]
        assert record["state"] == "unreachable"  # written before the frameworks heard

        port = cluster.master.port
        cluster.master.stop()
        cluster.master = Daemon(["master", "--port", str(port), "--work-dir",
                                 str(tmp_path / "master"), *master_args],
                                tmp_path / "master2.log")
        cluster.master.wait_listening()
        await until(lambda: aware.subscriptions >= 2 and plain.subscriptions >= 2, 30,
                    "both frameworks re-subscribed with the new master")

        agent.signal(signal.SIGCONT)
        await until(lambda: "TASK_KILLED" in plain.states(), 30,
                    "the task of the framework that was told TASK_LOST killed")
        await until(lambda: aware.states()[-1] == "TASK_RUNNING", 30,
                    "the partition-aware framework's task RUNNING again")
        assert aware.statuses[-1]["reason"] == "REASON_AGENT_REREGISTERED"
        assert plain.states()[-2:] == ["TASK_LOST", "TASK_KILLED"]
        state = await asyncio.to_thread(cluster.state)
        assert [s["active"] for s in state["slaves"]] == [True]
        tasks = {t["id"]: t["state"] for f in state["frameworks"] for t in f["tasks"]}
        assert tasks == {"aware-task": "TASK_RUNNING"}
    finally:
        if agent is not None:
            agent.signal(signal.SIGCONT)
        for driver in drivers:
            await driver.stop(teardown=True)
        cluster.stop()
