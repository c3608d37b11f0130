"""Master CPU per task over real sockets: a master process, simulated agents, a framework.

* the master is a real ``mesonb master`` process;
* ``--agents`` simulated agents live in one helper process, each with its own WebSocket
  link speaking the agent protocol: they answer RUN_TASK at once with TASK_STARTING and
  TASK_RUNNING (later TASK_FINISHED), retry nothing, and count acknowledgements;
* the framework is mesonb's SchedulerDriver (implicit acknowledgements over HTTP
  keep-alive, exactly what a framework pays), launching ``--tasks-per-agent`` tasks on
  each offer until ``--tasks`` are running, then finishing them.

It prints the master's CPU seconds (user + system, from psutil) divided by the tasks
that went through their whole life, and the placement rate. The helpers share the
machine's cores with the master, so wall-clock rates are lower bounds.

    python bench/bench_cluster.py [--agents 2000] [--tasks 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import getpass
import json
import multiprocessing
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import tornado.websocket

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.agent import AGENT_PATH
from mesonb.protocol.resources import Resources
from mesonb.testing.processes import Daemon


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- simulated agents (own process) ---------------------------------------------------
async def _agents_main(master: str, count: int, finish: Any, ready: Any, stats: Any) -> None:
    raise_fd_limit()
    resources = Resources.parse("cpus:64;mem:262144;disk:100000").to_json()
    links: list[tornado.websocket.WebSocketClientConnection] = []
    running: list[tuple[int, str, str]] = []
    readers: list[asyncio.Future[None]] = []

    def update(i: int, fid: str, tid: str, state: str) -> str:
        return json.dumps({"type": "STATUS_UPDATE", "status_update": {
            "framework_id": {"value": fid}, "status": {
                "task_id": {"value": tid}, "state": state, "source": "SOURCE_EXECUTOR",
                "uuid": base64.b64encode(uuid.uuid4().bytes).decode()}}})

    async def serve(i: int, conn: tornado.websocket.WebSocketClientConnection) -> None:
        while True:
            raw = await conn.read_message()
            if raw is None:
                return
            frame = json.loads(raw)
            replies = []
            for msg in frame if isinstance(frame, list) else [frame]:
                kind = msg["type"]
                if kind == "RUN_TASK":
                    fid = msg["run_task"]["framework_info"]["id"]["value"]
                    tid = msg["run_task"]["task"]["task_id"]["value"]
                    replies += [update(i, fid, tid, "TASK_STARTING"),
                                update(i, fid, tid, "TASK_RUNNING")]
                    running.append((i, fid, tid))
                elif kind == "ACKNOWLEDGE":
                    stats.value += 1
                elif kind == "PING":
                    replies.append('{"type":"PONG"}')
            if replies:  # like the real agent: one frame per turn
                conn.write_message("[" + ",".join(replies) + "]")

    for i in range(count):
        conn = await tornado.websocket.websocket_connect(
            f"ws://{master}{AGENT_PATH}", max_message_size=64 << 20)
        conn.write_message(json.dumps({"type": "REGISTER", "register": {
            "version": "1.11.0", "agent_info": {"hostname": f"sim{i}", "port": 5051,
                                                "resources": resources}}}))
        links.append(conn)
        readers.append(asyncio.ensure_future(serve(i, conn)))
    ready.set()
    while not finish.is_set():
        await asyncio.sleep(0.05)
    for i, fid, tid in running:
        links[i].write_message(update(i, fid, tid, "TASK_FINISHED"))
        if i % 200 == 0:
            await asyncio.sleep(0)
    while True:
        await asyncio.sleep(1)


def agents_process(master: str, count: int, finish: Any, ready: Any, stats: Any) -> None:
    asyncio.run(_agents_main(master, count, finish, ready, stats))


# -- the framework --------------------------------------------------------------------
class Launcher:
    def __init__(self, target: int, per_offer: int) -> None:
        self.target = target
        self.per_offer = per_offer
        self.launched = 0
        self.running = 0
        self.finished = 0
        self.suppressed = False
        self.driver: SchedulerDriver | None = None
        self.all_running = asyncio.Event()
        self.all_finished = asyncio.Event()
        self.res = Resources.parse("cpus:0.01;mem:32").to_json()

    async def on_offers(self, offers: list[dict[str, Any]]) -> None:
        assert self.driver is not None
        for offer in offers:
            count = min(self.per_offer, self.target - self.launched)
            if count <= 0:
                await self.driver.decline([offer["id"]["value"]], 3600)
                continue
            tasks = []
            for _ in range(count):
                self.launched += 1
                tasks.append({"name": "b", "task_id": {"value": f"t{self.launched}"},
                              "agent_id": offer["agent_id"], "command": {"value": "x"},
                              "resources": self.res})
            await self.driver.launch([offer["id"]["value"]], tasks, refuse_seconds=3600)
        if self.launched >= self.target and not self.suppressed:
            self.suppressed = True  # as Mesos advises: no offers while idle
            await self.driver.suppress()

    def on_update(self, status: dict[str, Any]) -> None:
        state = status["state"]
        if state == "TASK_RUNNING":
            self.running += 1
            if self.running >= self.target:
                self.all_running.set()
        elif state == "TASK_FINISHED":
            self.finished += 1
            if self.finished >= self.target:
                self.all_finished.set()


async def acks_reach(stats: Any, count: int, timeout: float = 600) -> None:
    """Wait until the agents got ``count`` acknowledgements: the work is really done."""
    deadline = time.monotonic() + timeout
    while stats.value < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"agents got {stats.value} of {count} acknowledgements")
        await asyncio.sleep(0.01)


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def run(args: argparse.Namespace, master: Daemon) -> None:
    stats = multiprocessing.Value("q", 0, lock=False)  # acknowledgements the agents got
    finish, ready = multiprocessing.Event(), multiprocessing.Event()
    sims = multiprocessing.Process(target=agents_process,
                                   args=(master.address, args.agents, finish, ready, stats),
                                   daemon=True)
    sims.start()
    try:
        t0 = time.perf_counter()
        cpu0 = cpu_seconds(master.pid)
        while not ready.is_set():
            await asyncio.sleep(0.05)
        register_s = time.perf_counter() - t0
        register_cpu = cpu_seconds(master.pid) - cpu0

        launcher = Launcher(args.tasks, max(1, args.tasks // args.agents))
        driver = SchedulerDriver(master.address, {"user": getpass.getuser(), "name": "bench"},
                                 launcher)
        launcher.driver = driver
        cpu1 = cpu_seconds(master.pid)
        t1 = time.perf_counter()
        await driver.start()
        await asyncio.wait_for(launcher.all_running.wait(), 1800)
        await acks_reach(stats, 2 * args.tasks)
        run_s = time.perf_counter() - t1
        run_cpu = cpu_seconds(master.pid) - cpu1
        rss = psutil.Process(master.pid).memory_info().rss / 2**20

        cpu2 = cpu_seconds(master.pid)
        t2 = time.perf_counter()
        finish.set()
        await asyncio.wait_for(launcher.all_finished.wait(), 1800)
        await acks_reach(stats, 3 * args.tasks)
        done_s = time.perf_counter() - t2
        done_cpu = cpu_seconds(master.pid) - cpu2
        await driver.stop(teardown=True)
    finally:
        sims.terminate()
        sims.join(5)

    n = args.tasks
    print(f"mesonb master over real sockets: {args.agents:,} simulated agents, {n:,} tasks")
    print(f"{'agents registered in':<48}{register_s:>9.2f}s   master CPU {register_cpu:.2f}s")
    print(f"{'tasks launched to RUNNING in':<48}{run_s:>9.2f}s   {n / run_s:>9,.0f} tasks/s")
    print(f"{'   master CPU per task (launch, 2 updates, 2 acks)':<48}"
          f"{run_cpu / n * 1e6:>8.0f}µs")
    print(f"{'tasks RUNNING -> FINISHED in':<48}{done_s:>9.2f}s   {n / done_s:>9,.0f} tasks/s")
    print(f"{'   master CPU per task (1 update, 1 ack)':<48}{done_cpu / n * 1e6:>8.0f}µs")
    print(f"{'master CPU per task, whole life':<48}{(run_cpu + done_cpu) / n * 1e6:>8.0f}µs"
          "   (goal: well under 200 µs)")
    print(f"{'master RSS with all tasks running':<48}{rss:>8.0f}MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=20000)
    args = parser.parse_args()
    raise_fd_limit()
    work = Path(f"/tmp/mesonb-bench-{uuid.uuid4().hex[:8]}")
    master = Daemon(["master", "--port", "0", "--work-dir", str(work), "--log-level", "WARNING",
                     "--allocation-interval", "1"], work / "master.log")
    try:
        master.wait_listening()
        asyncio.run(run(args, master))
    finally:
        master.stop()


if __name__ == "__main__":
    main()
