"""The dataflow framework on a cluster of real processes: shuffle data never passes
through the master, and an agent killed (with its processes) in the middle of a job costs
only the partitions it held."""

from __future__ import annotations

import contextlib
import operator
import socket
import threading
import time

import pytest

from mesonb.frameworks.dataflow import Dataflow
from mesonb.testing.processes import (
    Daemon,
    ProcessCluster,
    get_json,
    kill_processes_under,
    wait_for,
)
from mesonb.testing.zookeeper import ZooKeeperServer, zookeeper_jar

pytestmark = pytest.mark.slow
# Room for one executor (1 cpu + a little for the executor) per agent, not two.
RESOURCES = "cpus:1.5;mem:2048;disk:4096"


@pytest.fixture
def cluster(tmp_path):
    with ProcessCluster(tmp_path, agents=2, agent_resources=RESOURCES) as c:
        yield c


class CountingProxy:
    """A TCP proxy in front of the master that counts the bytes passing both ways: every
    framework and agent reaches the master through it."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.bytes = 0
        self._lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                with self._lock:
                    self.bytes += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.close()


def test_shuffle_data_does_not_pass_through_the_master(tmp_path):
    master = Daemon(["master", "--port", "0", "--work-dir", str(tmp_path / "master")],
                    tmp_path / "master.log")
    daemons, proxy = [master], None
    try:
        master.wait_listening()
        proxy = CountingProxy(master.address)
        for i in range(2):
            agent = Daemon(["agent", "--master", proxy.address, "--port", "0", "--work-dir",
                            str(tmp_path / f"agent{i}"), "--resources", RESOURCES],
                           tmp_path / f"agent{i}.log")
            daemons.append(agent)
            agent.wait_listening()
        wait_for(lambda: len(get_json(master.url + "/master/state")["slaves"]) == 2, 20,
                 what="two agents")
        with Dataflow(proxy.address, executors=2, cpus=1, mem="512MiB",
                      progress=False) as flow:
            flow.parallelize(range(10), 8).count()  # executors up
            wait_for(lambda: len(flow.pool.alive()) == 2, 30, what="two executors")

            def shuffle(payload: int) -> int:
                before = proxy.bytes
                ds = flow.parallelize(range(8), 8).flat_map(
                    lambda i: ((j, "x" * payload) for j in range(i * 2000, (i + 1) * 2000)))
                assert ds.group_by_key(8).count() == 16000
                return proxy.bytes - before

            assert proxy.bytes > 0  # the framework and the agents reach the master here
            small = shuffle(1)
            large = shuffle(2000)  # 32 MB shuffled
            written = flow.stages().groupby("job_id").bytes_written.sum()
            assert written.iloc[-1] > 30e6 and written.iloc[-2] < 1e6
            # Tasks and shuffles go between the driver and the executors: the master
            # sees no more of a 32 MB shuffle than of a tiny one.
            assert large < small + 64 * 1024, (small, large)
    finally:
        if proxy is not None:
            proxy.close()
        for d in daemons:
            d.stop()
        kill_processes_under(tmp_path)


def _slow(values):
    time.sleep(0.15)
    return sum(values)


def test_agent_killed_mid_job_recomputes_only_its_partitions(cluster):
    with Dataflow(cluster.address, executors=2, cpus=1, mem="512MiB", progress=False,
                  idle_timeout=None) as flow:
        flow.parallelize(range(10), 8).count()
        wait_for(lambda: len(flow.pool.alive()) == 2, 30, what="two executors")
        data = flow.parallelize(range(4000), 8).map(lambda x: (x % 40, x))
        job = data.group_by_key(4).map_values(_slow)
        outcome: dict = {}

        def run() -> None:
            try:
                outcome["value"] = dict(job.collect())
            except BaseException as exc:
                outcome["error"] = exc

        known = len(flow.record.stages)  # those of earlier jobs
        thread = threading.Thread(target=run)
        thread.start()

        def map_stage_done() -> bool:
            return any(s.kind == "shuffle map" and s.tasks_done == 8
                       for s in flow.record.stages[known:])

        wait_for(map_stage_done, 30, what="the map stage")
        [stage] = [s for s in flow.dag.map_stages.values() if s.partitions == 8
                   and s.node.name == "map"]
        victim = flow.pool.alive()[0]
        held = sum(1 for out in stage.outputs if out and out[0] == victim.executor_id)
        index = next(i for i, a in enumerate(cluster.agents)
                     if victim.agent_id in {s["id"] for s in cluster.state()["slaves"]
                                            if str(a.port) in s["pid"]})
        killed_at = time.time()
        cluster.agents[index].kill()  # kill -9, with its executor
        kill_processes_under(cluster.directory / f"agent{index}")
        thread.join(60)
        assert not thread.is_alive()
        assert "error" not in outcome, outcome.get("error")
        expected: dict[int, int] = {}
        for x in range(4000):
            expected[x % 40] = expected.get(x % 40, 0) + x
        assert outcome["value"] == expected
        [(lost_id, reason, noticed)] = flow.pool.lost
        assert lost_id == victim.executor_id
        assert noticed - killed_at < 3.0, reason
        record = flow.jobs().iloc[-1]
        assert record.status == "succeeded"
        assert record.executors_lost == 1
        assert held > 0 and record.recomputed == held  # only the lost map outputs


@pytest.mark.skipif(zookeeper_jar() is None, reason="ZooKeeper is not installed")
def test_dataflow_from_a_zk_url(tmp_path):
    zk = ZooKeeperServer(tmp_path / "zk")
    daemons: list[Daemon] = []
    try:
        zk.start()
        url = zk.url("/mesonb")
        master = Daemon(["master", "--port", "0", "--work-dir", str(tmp_path / "m"),
                         "--zk", url], tmp_path / "m.log")
        daemons.append(master)
        master.wait_listening()
        agent = Daemon(["agent", "--master", url, "--port", "0", "--work-dir",
                        str(tmp_path / "agent"), "--resources", "cpus:2;mem:2048"],
                       tmp_path / "agent.log")
        daemons.append(agent)
        agent.wait_listening()
        wait_for(lambda: len(get_json(master.url + "/master/state")["slaves"]) == 1, 20,
                 what="the agent")
        with Dataflow(url, executors=1, cpus=1, mem="256MiB", progress=False) as flow:
            pairs = flow.parallelize([(i % 3, i) for i in range(30)], 3)
            assert dict(pairs.reduce_by_key(operator.add).collect()) == \
                {k: sum(i for i in range(30) if i % 3 == k) for k in range(3)}
            names = {f["name"] for f in get_json(master.url + "/master/state")["frameworks"]}
            assert "mesonb-dataflow" in names
    finally:
        for d in daemons:
            d.stop()
        kill_processes_under(tmp_path)
        zk.stop()
