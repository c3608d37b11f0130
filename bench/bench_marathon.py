"""Marathon on mesonb: deployment times on a local cluster of real processes.

A ``mesonb master``, ``--agents`` ``mesonb agent`` processes and ``mesonb marathon``
run on this machine with their default settings (what users run); every instance is a
real ``sleep`` process started by an agent (Marathon's command tasks, which the agent
runs itself). ``--shared-executor`` and ``--master-args`` measure other settings, and
``BENCH_MARATHON_LOG_LEVEL=DEBUG`` keeps the framework's log for a timeline.

1. One app of ``--instances`` (500) instances (``sleep``, cpus 0.001, mem 8, no ports):
   the time from ``POST /v2/apps`` until all are running and its deployment succeeded.
   Marathon's figure for the same: 14.2 s on 189 agents (its performance README).
2. With ZooKeeper installed (``--no-failover`` skips it), two marathon instances elect a
   leader; kill -9 of the leader with those instances running: the time until the
   standby serves ``/v2/apps``, and how many tasks survived (all, none killed).
3. Marathon's scale matrix: n apps x 1 instance and 1 app x n instances for n = 50, 100, ...
   500 (``--matrix 50,100`` to shorten), printing per-app and overall deployment time,
   failed deployments and ``GET /v2/groups`` p50/p99 latency while it deploys, the columns
   of Marathon's performance README.

    python bench/bench_marathon.py [--agents 4] [--instances 500] [--matrix 50,100,...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mesonb.testing.processes import Daemon, ProcessCluster, wait_for
from mesonb.testing.zookeeper import ZooKeeperServer, zookeeper_jar

APP = {"cmd": "sleep 3600", "cpus": 0.001, "mem": 8, "portDefinitions": []}


class Events:
    """Reads ``/v2/events`` in a thread: when each deployment succeeded or failed."""

    def __init__(self, url: str) -> None:
        self.done: dict[str, tuple[float, str]] = {}
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self._answer = requests.get(url + "/v2/events", stream=True, timeout=None,
                                    params={"event_type": ["deployment_success",
                                                           "deployment_failed",
                                                           "event_stream_attached"]},
                                    headers={"Accept": "text/event-stream"})
        threading.Thread(target=self._read, daemon=True).start()
        self.ready.wait(10)

    def _read(self) -> None:
        try:
            for line in self._answer.iter_lines():
                if not line.startswith(b"data:"):
                    continue
                event = json.loads(line[5:])
                if event["eventType"] == "event_stream_attached":
                    self.ready.set()
                    continue
                with self.lock:
                    self.done[event["id"]] = (time.perf_counter(), event["eventType"])
        except Exception:  # closed at the end
            return

    def wait(self, ids: list[str], timeout: float) -> dict[str, tuple[float, str]]:
        wait_for(lambda: all(i in self.done for i in ids), timeout, interval=0.01,
                 what=f"{len(ids)} deployments")
        with self.lock:
            return {i: self.done[i] for i in ids}

    def close(self) -> None:
        self._answer.close()


class GroupsLatency:
    """Polls ``GET /v2/groups`` while a deployment runs; p50/p99 of the answers."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            started = time.perf_counter()
            session.get(self.url + "/v2/groups", timeout=30).raise_for_status()
            self.samples.append(time.perf_counter() - started)
            self._stop.wait(0.1)

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        self._thread.join(30)
        ordered = sorted(self.samples) or [0.0]
        return (statistics.median(ordered),
                ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))])


def post(url: str, path: str, body: Any) -> requests.Response:
    answer = requests.post(url + path, json=body, timeout=60)
    if answer.status_code >= 300:
        raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:300]}")
    return answer


def clear(url: str, master: str, timeout: float = 300.0) -> None:
    """Delete every app and wait until the master shows no task of ours running."""
    requests.delete(url + "/v2/groups/?force=true", timeout=60)
    wait_for(lambda: requests.get(url + "/v2/deployments", timeout=30).json() == [], timeout,
             interval=0.1, what="the deletions")

    def no_tasks() -> bool:
        state = requests.get(master + "/master/state", timeout=30).json()
        return not any(f["tasks"] for f in state["frameworks"])

    wait_for(no_tasks, timeout, interval=0.2, what="the tasks to end")


def cpu_seconds(cluster: ProcessCluster, marathon: Daemon) -> dict[str, float]:
    """User + system CPU of the daemons (agents with their executors and tasks)."""
    def of(pid: int, children: bool) -> float:
        try:
            proc = psutil.Process(pid)
            procs = [proc, *proc.children(recursive=True)] if children else [proc]
            return sum(sum(p.cpu_times()[:2]) for p in procs)
        except psutil.Error:
            return 0.0

    assert cluster.master is not None
    return {"master": of(cluster.master.pid, False), "marathon": of(marathon.pid, False),
            "agents": sum(of(a.pid, False) for a in cluster.agents),
            "executors+tasks": sum(of(a.pid, True) - of(a.pid, False) for a in cluster.agents)}


def one_big_app(url: str, events: Events, instances: int, timeout: float) -> float:
    started = time.perf_counter()
    answer = post(url, "/v2/apps", {"id": "/big", "instances": instances, **APP})
    deployment = answer.headers["Marathon-Deployment-Id"]
    when, kind = events.wait([deployment], timeout)[deployment]
    app = requests.get(url + "/v2/apps/big", timeout=30).json()["app"]
    if kind != "deployment_success" or app["tasksRunning"] != instances:
        raise RuntimeError(f"the deployment ended with {kind}, {app['tasksRunning']} running")
    return when - started


def matrix_row(url: str, events: Events, apps: int, instances: int, timeout: float
               ) -> dict[str, Any]:
    latency = GroupsLatency(url)
    started = time.perf_counter()
    posted: dict[str, float] = {}
    for i in range(apps):
        app_id = f"/m/a{i}"
        t = time.perf_counter()
        answer = post(url, "/v2/apps", {"id": app_id, "instances": instances, **APP})
        posted[answer.headers["Marathon-Deployment-Id"]] = t
    results = events.wait(list(posted), timeout)
    p50, p99 = latency.stop()
    per_app = [results[d][0] - t for d, t in posted.items()]
    return {"apps": apps, "instances": instances,
            "per_app_s": statistics.mean(per_app),
            "overall_s": max(r[0] for r in results.values()) - started,
            "failed": sum(r[1] != "deployment_success" for r in results.values()),
            "groups_p50_ms": p50 * 1000, "groups_p99_ms": p99 * 1000}


def start_marathon(directory: Path, master: str, name: str, flags: list[str]) -> Daemon:
    level = os.environ.get("BENCH_MARATHON_LOG_LEVEL", "WARNING")
    daemon = Daemon(["marathon", "--master", master, "--port", "0", "--log-level", level,
                     *flags], directory / f"{name}.log")
    daemon.wait_listening()
    return daemon


def failover(first: Daemon, second: Daemon, instances: int) -> tuple[float, int, int]:
    """kill -9 of the leader: seconds until the standby serves /v2/apps, tasks before and
    after (the same ones when none was killed)."""
    before = {t["id"] for t in get(first.url, "/v2/apps/big/tasks")["tasks"]}
    first.kill()
    killed_at = time.perf_counter()

    def serving() -> bool:
        answer = requests.get(second.url + "/v2/apps", timeout=2)
        return answer.status_code == 200 and bool(answer.json()["apps"])

    wait_for(serving, 30, interval=0.02, what="the new leader")
    took = time.perf_counter() - killed_at

    def running() -> set[str]:
        return {t["id"] for t in get(second.url, "/v2/apps/big/tasks")["tasks"]
                if t["state"] == "TASK_RUNNING"}

    # Reconciliation confirms the tasks one by one: count what runs once all the old ones
    # are confirmed, or what runs after 10 s if some never are.
    with contextlib.suppress(TimeoutError):  # some were lost: the count below says how many
        wait_for(lambda: before <= running(), 10, interval=0.1, what="reconciliation")
    return took, len(before), len(before & running())


def get(url: str, path: str) -> Any:
    answer = requests.get(url + path, timeout=30)
    answer.raise_for_status()
    return answer.json()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--matrix", default="50,100,150,200,250,300,350,400,450,500",
                        help="the n of the scale matrix (comma separated; '' skips it)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--shared-executor", action="store_true",
                        help="one shared default executor per agent runs the instances as "
                             "task groups (default: Marathon's, a command task each)")
    parser.add_argument("--master-args", default="",
                        help="extra flags for the master (default: none, its defaults)")
    parser.add_argument("--no-failover", action="store_true",
                        help="skip kill -9 of the leading marathon (two instances on "
                             "ZooKeeper) after the big app")
    args = parser.parse_args()
    sizes = [int(n) for n in args.matrix.split(",") if n.strip()]
    directory = Path(tempfile.mkdtemp(prefix="bench-marathon-"))
    use_zk = not args.no_failover and zookeeper_jar() is not None
    executor = ["--shared-executor"] if args.shared_executor else []
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(ProcessCluster(
            directory, agents=args.agents, agent_resources="cpus:64;mem:262144;disk:100000",
            master_args=args.master_args.split()))
        flags = [*executor, "--work-dir", str(directory / "marathon")]
        if use_zk:
            zk = stack.enter_context(ZooKeeperServer(directory / "zk", tick_ms=200))
            flags = [*executor, "--zk", zk.url("/marathon"), "--zk-session-timeout", "2"]
        daemons = [start_marathon(directory, cluster.address, "m1", flags)]
        stack.callback(lambda: [d.stop() for d in daemons])
        url = daemons[0].url
        wait_for(lambda: get(url, "/v2/info")["frameworkId"], 30, what="a subscription")
        if use_zk:
            daemons.append(start_marathon(directory, cluster.address, "m2", flags))
        events = Events(url)
        extra = " + a shared executor" if executor else ""
        print(f"cluster: 1 master, {args.agents} agents, {len(daemons)} marathon: processes on "
              f"this machine, default settings{extra}", flush=True)
        before = cpu_seconds(cluster, daemons[0])
        took = one_big_app(url, events, args.instances, args.timeout)
        print(f"1 app x {args.instances} instances: all running and the deployment "
              f"succeeded in {took:.2f} s (Marathon: 14.2 s on 189 agents)", flush=True)
        after = cpu_seconds(cluster, daemons[0])
        print("  CPU seconds meanwhile: " + ", ".join(
            f"{k} {after[k] - before.get(k, 0.0):.2f}" for k in after), flush=True)
        events.close()
        if use_zk:
            took, count, kept = failover(daemons[0], daemons[1], args.instances)
            print(f"kill -9 of the leading marathon with {count} instances: the standby served "
                  f"/v2/apps after {took:.2f} s (ZooKeeper session 2 s); {kept} of {count} "
                  "tasks still running, the same ones", flush=True)
            url = daemons[1].url
        events = Events(url)
        clear(url, cluster.url)
        if sizes:
            print(f"{'apps':>5} {'inst':>5} {'per app s':>10} {'overall s':>10} "
                  f"{'failed':>7} {'groups p50 ms':>14} {'p99 ms':>8}", flush=True)
        for n in sizes:
            for apps, instances in ((n, 1), (1, n)):
                row = matrix_row(url, events, apps, instances, args.timeout)
                print(f"{row['apps']:>5} {row['instances']:>5} {row['per_app_s']:>10.2f} "
                      f"{row['overall_s']:>10.2f} {row['failed']:>7} "
                      f"{row['groups_p50_ms']:>14.1f} {row['groups_p99_ms']:>8.1f}",
                      flush=True)
                clear(url, cluster.url)
        events.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
