"""The web UI at scale: a master with 10,000 simulated agents and 100,000 tasks, read by
headless Chromium.

The master is a real :class:`~mesonb.master.daemon.MasterDaemon` serving HTTP on a loopback
port (in a thread of this process); the agents and the framework are simulated in its
loop, as in ``bench_master.py``: agents register through the agent-message code, the
framework takes offers through ``ACCEPT`` calls, and every status update goes through the
master's agent-message handling (so the UI sees exactly the events it would see live).
Headless Chromium (Debian's ``chromium``, through Playwright) then loads ``/`` and reports:

* **time to interactive**: from navigation to the home page showing the agent count and
  the first page of the Active Tasks table (goal: at most 2 s);
* **status update to screen**: from handing a status update to the master to its text on
  screen (goal: p95 at most 1 s), on a task's page and on the home page's counts, while
  ``--churn`` other updates a second keep the feed busy;
* the page's weight (HTML, script and style; goal: under 500 KB) and the snapshot's size.

    python bench/bench_ui.py [--agents 10000] [--tasks 100000] [--samples 30]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mesonb.config import MasterConfig
from mesonb.gctune import tune_for_daemon
from mesonb.master.daemon import MasterDaemon
from mesonb.master.master import Master
from mesonb.protocol.agent import Register, load_call
from mesonb.protocol.mesos import AgentInfo
from mesonb.protocol.resources import Resources
from mesonb.protocol.scheduler import Call
from mesonb.webui.handlers import STATIC_DIR

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]


class SimulatedCluster:
    """A master daemon on its own loop thread, with simulated agents and one framework."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.daemon = MasterDaemon(MasterConfig(
            port=0, allocation_interval=0.05, agent_ping_timeout=3600.0,
            heartbeat_interval=3600.0, max_completed_tasks_per_framework=1000))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.framework_id = ""
        self.stream_id = str(uuid.uuid4())
        self.offers: list[dict[str, Any]] = []
        self.running: list[tuple[str, str]] = []  # (agent id, task id)

    def run(self, coro: Any, timeout: float = 3600) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> str:
        self.thread.start()
        self.run(self.daemon.start())
        return self.daemon.url

    @property
    def master(self) -> Master:
        assert self.daemon.master is not None
        return self.daemon.master

    async def populate(self, agents: int, tasks: int) -> None:
        master = self.master
        resources = Resources.parse("cpus:64;mem:262144;disk:1000000").to_json()
        for i in range(agents):
            info = AgentInfo(hostname=f"sim{i}", port=5051, resources=resources)
            master.agents.register(Register(agent_info=info, version="1.11.0"),
                                   lambda msg: None, lambda: None)
            if i % 500 == 0:
                await asyncio.sleep(0)
        while sum(a.active for a in master.book.agents.values()) < agents:
            await asyncio.sleep(0.01)

        def to_framework(event: dict[str, Any]) -> None:
            if event.get("type") == "OFFERS":
                self.offers.extend(event["offers"]["offers"])

        call = Call.parse({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "bench", "name": "bench-ui"}}})
        framework = master.calls.subscribe(call, self.stream_id, to_framework, lambda r: None)
        assert framework is not None
        self.framework_id = framework.id
        task_res = Resources.parse("cpus:0.1;mem:32").to_json()
        per_offer = max(1, tasks // agents)
        launched = 0
        while launched < tasks:
            if not self.offers:
                await asyncio.sleep(0.01)
                continue
            batch, self.offers = self.offers, []
            for offer in batch:
                if launched >= tasks:
                    break
                agent_id = offer["agent_id"]["value"]
                infos = []
                for _ in range(min(per_offer, tasks - launched)):
                    task_id = f"task-{launched:06d}"
                    launched += 1
                    infos.append({"name": f"bench {launched % 97}", "task_id": {"value": task_id},
                                  "agent_id": {"value": agent_id},
                                  "command": {"value": "sleep 1000"}, "resources": task_res})
                    self.running.append((agent_id, task_id))
                master.calls.handle(Call.parse(json.dumps({
                    "type": "ACCEPT", "framework_id": {"value": self.framework_id},
                    "accept": {"offer_ids": [offer["id"]], "operations": [
                        {"type": "LAUNCH", "launch": {"task_infos": infos}}],
                        "filters": {"refuse_seconds": 3600}}})), self.stream_id)
            await asyncio.sleep(0)
        for n, (agent_id, task_id) in enumerate(self.running):
            for state in ("TASK_STARTING", "TASK_RUNNING"):
                self.update(agent_id, task_id, state)
            if n % 1000 == 0:
                await asyncio.sleep(0)

    def update(self, agent_id: str, task_id: str, state: str) -> None:
        """One status update from an agent (call on the master's loop)."""
        text = json.dumps({"type": "STATUS_UPDATE", "status_update": {
            "framework_id": {"value": self.framework_id},
            "status": {"task_id": {"value": task_id}, "state": state,
                       "uuid": base64.b64encode(uuid.uuid4().bytes).decode(),
                       "source": "SOURCE_EXECUTOR", "timestamp": time.time()}}})
        agent = self.master.book.agents[agent_id]
        self.master.agents.handle(agent, load_call(text))

    def update_soon(self, agent_id: str, task_id: str, state: str) -> None:
        self.loop.call_soon_threadsafe(self.update, agent_id, task_id, state)

    async def churn(self, per_second: int, stop: threading.Event) -> None:
        """Keep the feed busy: RUNNING updates (health re-sends) on random tasks."""
        while not stop.is_set() and per_second > 0:
            for agent_id, task_id in random.sample(self.running, min(per_second // 10,
                                                                     len(self.running))):
                self.update(agent_id, task_id, "TASK_RUNNING")
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        self.run(self.daemon.stop(), 60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def page_weight() -> int:
    return sum(f.stat().st_size for f in STATIC_DIR.iterdir() if f.is_file())


def measure(agents: int, tasks: int, samples: int, churn_per_second: int,
            chromium: str, screenshot: str | Path = "bench_ui.png") -> dict[str, Any]:
    """Run the benchmark; the figures by name (seconds and bytes)."""
    from playwright.sync_api import sync_playwright

    cluster = SimulatedCluster()
    url = cluster.start()
    t0 = time.perf_counter()
    cluster.run(cluster.populate(agents, tasks))
    populate_s = time.perf_counter() - t0
    stop_churn = threading.Event()
    snapshot_bytes: list[int] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("websocket", lambda ws: ws.on(
                "framereceived", lambda frame: snapshot_bytes.append(len(frame))
                if not snapshot_bytes else None))
            start = time.perf_counter()
            page.goto(url + "/")
            page.wait_for_function(
                f"document.querySelector('#agents-activated')?.textContent === '{agents}'"
                f" && document.querySelectorAll('#active-tasks tbody tr').length >= "
                f"{min(25, tasks)}", polling="raf", timeout=120_000)
            tti = time.perf_counter() - start

            churn = asyncio.run_coroutine_threadsafe(cluster.churn(churn_per_second, stop_churn),
                                                     cluster.loop)
            task_delays, home_delays = [], []
            targets = random.sample(cluster.running, samples * 2)
            for agent_id, task_id in targets[:samples]:
                page.evaluate(f"location.hash = '#/tasks/{cluster.framework_id}/{task_id}'")
                page.wait_for_function(
                    "document.querySelector('#task-info')?.textContent.includes('Running')",
                    polling="raf", timeout=30_000)
                sent = time.perf_counter()
                cluster.update_soon(agent_id, task_id, "TASK_FINISHED")
                page.wait_for_function(
                    "document.querySelector('#task-info')?.textContent.includes('Finished')",
                    polling="raf", timeout=30_000)
                task_delays.append(time.perf_counter() - sent)
            page.evaluate("location.hash = '#/'")
            page.wait_for_selector("#tasks-finished", timeout=30_000)
            for agent_id, task_id in targets[samples:]:
                done = int(page.inner_text("#tasks-finished"))
                sent = time.perf_counter()
                cluster.update_soon(agent_id, task_id, "TASK_FINISHED")
                page.wait_for_function(
                    f"+document.querySelector('#tasks-finished')?.textContent > {done}",
                    polling="raf", timeout=30_000)
                home_delays.append(time.perf_counter() - sent)
            stop_churn.set()
            churn.result(10)
            page.screenshot(path=str(screenshot))
            browser.close()
    finally:
        stop_churn.set()
        cluster.stop()
    return {"populate_s": populate_s, "tti_s": tti, "page_bytes": page_weight(),
            "snapshot_bytes": (snapshot_bytes or [0])[0], "task_delays_s": task_delays,
            "home_delays_s": home_delays}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--churn", type=int, default=500, help="other updates a second")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--screenshot", default=str(Path(tempfile.gettempdir()) / "bench_ui.png"),
                        help="where the page is saved once loaded (default: the temp dir)")
    args = parser.parse_args()
    tune_for_daemon()  # as `mesonb master` does before it starts
    figures = measure(args.agents, args.tasks, args.samples, args.churn, args.chromium,
                      screenshot=args.screenshot)

    def row(label: str, value: str, goal: str = "") -> None:
        print(f"{label:<46}{value:>14}   {goal}")

    print("mesonb web UI, headless Chromium against a master with simulated agents")
    row("agents", f"{args.agents:,}")
    row("tasks (running)", f"{args.tasks:,}")
    row("populating the master", f"{figures['populate_s']:.1f}s")
    row("page weight (HTML + JS + CSS)", f"{figures['page_bytes'] / 1024:.0f} KB",
        "(goal: < 500 KB)")
    row("first snapshot over the feed", f"{figures['snapshot_bytes'] / 1e6:.1f} MB")
    row("time to interactive", f"{figures['tti_s']:.2f}s", "(goal: <= 2 s)")
    for label, delays in (("update -> screen, task page", figures["task_delays_s"]),
                          ("update -> screen, home page counts", figures["home_delays_s"])):
        row(f"{label} p50", f"{statistics.median(delays) * 1000:.0f}ms")
        row(f"{label} p95", f"{percentile(delays, 0.95) * 1000:.0f}ms", "(goal: <= 1 s)")
        row(f"{label} max", f"{max(delays) * 1000:.0f}ms")
    row("other updates during the samples", f"{args.churn}/s")
    print(f"screenshot: {args.screenshot}")


if __name__ == "__main__":
    main()
