"""Master failover under chaos: kill -9 the leading master, N rounds, and time the recovery.

* a real ZooKeeper (one server, from :mod:`mesonb.testing.zookeeper`) and ``--masters``
  real ``mesonb master --zk`` processes (``--zk-session-timeout``, default 1 s: a tight but
  realistic setting; Mesos's default is 10 s);
* ``--agents`` simulated agents in one helper process. Each has the real agent's
  :class:`mesonb.agent.master_link.MasterLink` (its WebSocket, its registration back-off,
  and its move to a new leader after a random spread when ZooKeeper names one); only the
  tasks are simulated. One shared :class:`mesonb.discovery.LeaderDetector` watches
  ZooKeeper for all of them (a real agent has its own). When its link breaks an agent
  re-registers with the leader with its agent id, its running tasks and their frameworks
  (REGISTER with ``agent_id``, ``tasks[]``, ``frameworks[]``), then re-sends
  unacknowledged status updates;
* a framework (mesonb's SchedulerDriver on the zk:// URL, failover_timeout 1 hour)
  launches ``--tasks-per-agent`` long-running tasks on every agent.

Each round kills the leader with SIGKILL while the tasks run, and measures from the kill
to (a) another master serving as leader and (b) every agent re-registered with it (the
agents' REGISTERED times) and the new leader's ``/master/state`` showing every agent
active and every task RUNNING. The killed master is restarted as a standby before the
next round. It prints medians and maxima, and tasks lost (any status other than
RUNNING reaching the framework, or a task not RUNNING on the last leader). Nothing is
asserted: these are figures.

Then ``--agent-rounds`` rounds of kill -9 on real agents: ``--real-agents`` real
``mesonb agent --master zk://...`` processes (each on a fixed port and its own
``--work-dir``) and a second framework (checkpoint: true, failover_timeout 1 hour)
running ``--tasks-per-real-agent`` long ``sleep`` command tasks on each. Each round
kills one agent with SIGKILL (its executors, in their own sessions, live on) and restarts
it at once on the same port and work dir; it measures from the kill to the leader's
``/master/state`` showing that agent re-registered (a new ``reregistered_time``), active,
with all its tasks RUNNING. Tasks lost: any terminal, LOST, UNREACHABLE, GONE or DROPPED
status reaching the framework, or a task not RUNNING on the leader at the end.

Detecting a kill -9 is bounded by ZooKeeper: the dead leader's ephemeral znode goes only
when its session expires. The server checks expiry once per tickTime, and grants no
session shorter than two ticks; the bench's server ticks every 500 ms (the test
ZooKeeper's default), or half the session timeout when that is shorter. A session then
expires between 2/3 of the timeout (the client's last heartbeat) and the timeout plus a
tick after the kill.

    python bench/bench_failover.py [--rounds 5] [--agents 100] [--zk-session-timeout 1]
                                   [--agent-rounds 3] [--real-agents 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import getpass
import http.client
import logging
import multiprocessing
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mesonb.agent.master_link import MasterLink
from mesonb.discovery import LeaderDetector
from mesonb.frameworks.driver import SchedulerDriver
from mesonb.protocol.agent import AgentCall, MasterCommand
from mesonb.protocol.resources import Resources
from mesonb.testing.processes import Daemon, get_json, kill_processes_under, wait_for
from mesonb.testing.zookeeper import ZooKeeperServer

BAD_STATES = {"TASK_KILLED", "TASK_KILLING", "TASK_LOST", "TASK_FAILED", "TASK_ERROR",
              "TASK_DROPPED", "TASK_GONE", "TASK_UNREACHABLE", "TASK_GONE_BY_OPERATOR"}
# a task that should survive an agent's kill -9 must see none of these
AGENT_BAD_STATES = BAD_STATES | {"TASK_FINISHED"}


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- simulated agents (own process) ---------------------------------------------------
class SimAgent:
    """The master's side of a real agent: its :class:`MasterLink` (connection, back-off,
    moving to the leader ZooKeeper names after a random spread, as ``mesonb agent`` does),
    with tasks and executors simulated: RUN_TASK is answered with STARTING and RUNNING."""

    def __init__(self, i: int, resources: list[dict[str, Any]], registered_at: Any,
                 registrations: Any, address: str) -> None:
        self.i = i
        self.info = {"hostname": f"sim{i}", "port": 5051, "resources": resources}
        self.agent_id: str | None = None
        self.tasks: dict[str, dict[str, Any]] = {}  # task id -> AgentTask
        self.frameworks: dict[str, dict[str, Any]] = {}
        self.unacked: dict[str, dict[str, Any]] = {}  # status uuid -> STATUS_UPDATE call
        self.registered_at = registered_at
        self.registrations = registrations
        self.link = MasterLink(address, on_open=self._open, on_command=self._command,
                               on_close=lambda: None)

    def send(self, call: dict[str, Any]) -> None:
        self.link.send(AgentCall.from_json(call))

    def update(self, fid: str, tid: str, state: str) -> dict[str, Any]:
        status = {"task_id": {"value": tid}, "state": state, "source": "SOURCE_EXECUTOR",
                  "uuid": base64.b64encode(uuid.uuid4().bytes).decode(),
                  "timestamp": time.time()}
        if self.agent_id:
            status["agent_id"] = {"value": self.agent_id}
        self.tasks[tid]["state"] = state
        self.tasks[tid]["latest_status"] = status
        call = {"type": "STATUS_UPDATE", "status_update": {
            "framework_id": {"value": fid}, "status": status}}
        self.unacked[status["uuid"]] = call
        return call

    def _open(self) -> None:
        body: dict[str, Any] = {"version": "1.11.0", "agent_info": dict(self.info)}
        if self.agent_id:
            body["agent_id"] = {"value": self.agent_id}
            body["tasks"] = list(self.tasks.values())
            body["frameworks"] = list(self.frameworks.values())
        self.send({"type": "REGISTER", "register": body})

    def _command(self, command: MasterCommand) -> None:
        msg = command.to_json()
        kind = msg["type"]
        if kind == "REGISTERED":
            self.agent_id = msg["registered"]["agent_id"]["value"]
            self.registered_at[self.i] = time.monotonic()
            self.registrations[self.i] += 1
            self.link.backoff.reset()
            for call in self.unacked.values():  # as the agent's status update manager
                self.send(call)
        elif kind == "RUN_TASK":
            run = msg["run_task"]
            fid = run["framework_info"]["id"]["value"]
            task = run["task"]
            tid = task["task_id"]["value"]
            self.frameworks[fid] = run["framework_info"]
            self.tasks[tid] = {"framework_id": {"value": fid}, "task": task,
                               "state": "TASK_STAGING"}
            self.send(self.update(fid, tid, "TASK_STARTING"))
            self.send(self.update(fid, tid, "TASK_RUNNING"))
        elif kind == "ACKNOWLEDGE":
            self.unacked.pop(msg["acknowledge"]["uuid"], None)
        elif kind == "PING":
            self.send({"type": "PONG"})


async def _agents_main(zk_url: str, count: int, registered_at: Any,
                       registrations: Any) -> None:
    raise_fd_limit()
    logging.basicConfig(level=logging.ERROR)  # the links' reconnection warnings: 100 each
    loop = asyncio.get_running_loop()
    agents: list[SimAgent] = []
    first = loop.create_future()

    def on_change(address: str | None) -> None:
        if address is not None and not first.done():
            first.set_result(address)
        for agent in agents:
            agent.link._leader_changed(address)  # what each agent's own watch calls

    # One watch for all (a real agent has its own ZooKeeper session; 100 of them would
    # pass the test ZooKeeper's per-client connection limit).
    detector = LeaderDetector(zk_url, on_change, loop=loop, session_timeout=10.0)
    await asyncio.to_thread(detector.start, 30.0)
    resources = Resources.parse("cpus:64;mem:262144;disk:100000").to_json()
    address = await first
    agents += [SimAgent(i, resources, registered_at, registrations, address)
               for i in range(count)]
    for agent in agents:
        agent.link.start()
    while True:
        await asyncio.sleep(3600)


def agents_process(zk_url: str, count: int, registered_at: Any, registrations: Any) -> None:
    asyncio.run(_agents_main(zk_url, count, registered_at, registrations))


# -- the framework --------------------------------------------------------------------
class Launcher:
    def __init__(self, per_agent: int) -> None:
        self.per_agent = per_agent
        self.launched = 0
        self.statuses: dict[str, list[str]] = {}
        self.subscribed_at: list[float] = []
        self.framework_ids: set[str] = set()
        self.driver: SchedulerDriver | None = None
        self.seen_agents: set[str] = set()
        self.res = Resources.parse("cpus:0.01;mem:32").to_json()

    def on_subscribed(self, body: dict[str, Any]) -> None:
        self.subscribed_at.append(time.monotonic())
        self.framework_ids.add(body["framework_id"]["value"])

    async def on_offers(self, offers: list[dict[str, Any]]) -> None:
        assert self.driver is not None
        for offer in offers:
            agent = offer["agent_id"]["value"]
            if agent in self.seen_agents:
                await self.driver.decline([offer["id"]["value"]], 3600)
                continue
            self.seen_agents.add(agent)
            tasks = []
            for _ in range(self.per_agent):
                self.launched += 1
                tasks.append({"name": "f", "task_id": {"value": f"t{self.launched}"},
                              "agent_id": offer["agent_id"], "command": {"value": "x"},
                              "resources": self.res})
            await self.driver.launch([offer["id"]["value"]], tasks, refuse_seconds=3600)

    def on_update(self, status: dict[str, Any]) -> None:
        self.statuses.setdefault(status["task_id"]["value"], []).append(status["state"])

    def running(self) -> int:
        return sum(1 for s in self.statuses.values() if s and s[-1] == "TASK_RUNNING")

    def bad(self) -> dict[str, list[str]]:
        return {t: s for t, s in self.statuses.items() if BAD_STATES & set(s)}


# -- masters --------------------------------------------------------------------------
def serving(master: Daemon) -> bool:
    if master.proc.poll() is not None or master.port is None:
        return False
    conn = http.client.HTTPConnection(master.host or "127.0.0.1", master.port, timeout=2)
    try:
        conn.request("POST", "/api/v1/scheduler", body=b"{}",
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status not in (307, 503)
    except OSError:
        return False
    finally:
        conn.close()


def start_master(work: Path, name: str, zk_url: str, session_timeout: float) -> Daemon:
    master = Daemon(["master", "--port", "0", "--work-dir", str(work / name), "--zk", zk_url,
                     "--zk-session-timeout", f"{session_timeout:g}",
                     "--agent-reregister-timeout", "120", "--log-level", "WARNING",
                     "--allocation-interval", "0.5"], work / f"{name}.log")
    master.wait_listening()
    return master


def the_leader(masters: list[Daemon], timeout: float = 30.0) -> Daemon:
    return wait_for(lambda: (s := [m for m in masters if serving(m)]) and len(s) == 1
                    and s[0], timeout, 0.01, "one serving leader")


async def run(args: argparse.Namespace, work: Path, zk: ZooKeeperServer) -> None:
    url = zk.url("/mesonb")
    names = [f"m{i}" for i in range(args.masters)]
    masters: dict[str, Daemon] = {}
    try:
        for n in names:
            masters[n] = start_master(work, n, url, args.zk_session_timeout)
        if args.rounds > 0:
            await master_rounds(args, work, url, masters)
        if args.agent_rounds > 0:
            await agent_rounds(args, work, url, masters)
    finally:
        for m in masters.values():
            m.stop()
        kill_processes_under(work)  # executors and their tasks


async def master_rounds(args: argparse.Namespace, work: Path, url: str,
                        masters: dict[str, Daemon]) -> None:
    registered_at = multiprocessing.Array("d", args.agents, lock=False)
    registrations = multiprocessing.Array("i", args.agents, lock=False)
    sims = multiprocessing.Process(target=agents_process,
                                   args=(url, args.agents, registered_at, registrations),
                                   daemon=True)
    sims.start()
    driver = None
    try:
        leader = await asyncio.to_thread(the_leader, list(masters.values()))
        await asyncio.to_thread(
            wait_for, lambda: all(registrations[i] for i in range(args.agents)), 60, 0.05,
            "every agent registered")
        launcher = Launcher(args.tasks_per_agent)
        driver = SchedulerDriver(url, {"user": getpass.getuser(), "name": "bench-failover",
                                       "failover_timeout": 3600}, launcher)
        launcher.driver = driver
        await driver.start()
        total = args.agents * args.tasks_per_agent
        while launcher.running() < total:
            await asyncio.sleep(0.05)
        print(f"{args.agents} simulated agents, {total} tasks RUNNING, {args.masters} masters, "
              f"ZooKeeper session timeout {args.zk_session_timeout:g}s; {args.rounds} rounds "
              "of kill -9 on the leader")

        leads, rereg, resub, state_ok = [], [], [], []
        for r in range(1, args.rounds + 1):
            before = [registrations[i] for i in range(args.agents)]
            subs_before = len(launcher.subscribed_at)
            killed = next(n for n, m in masters.items() if m is leader)
            t0 = time.monotonic()
            leader.kill()
            rest = [m for n, m in masters.items() if n != killed]
            leader = await asyncio.to_thread(the_leader, rest, 60)
            lead_s = time.monotonic() - t0
            await asyncio.to_thread(
                wait_for, lambda b=before: all(registrations[i] > b[i]
                                               for i in range(args.agents)),
                120, 0.01, "every agent re-registered")
            rereg_s = max(registered_at[i] for i in range(args.agents)) - t0

            def consistent(m: Daemon = leader) -> bool:
                state = get_json(m.url + "/master/state", timeout=10)
                active = sum(1 for s in state["slaves"] if s["active"])
                tasks = [t for f in state["frameworks"] for t in f["tasks"]]
                return active == args.agents and len(tasks) == total and all(
                    t["state"] == "TASK_RUNNING" for t in tasks)

            await asyncio.to_thread(wait_for, consistent, 60, 0.02, "the new leader's state")
            state_s = time.monotonic() - t0
            while len(launcher.subscribed_at) <= subs_before:
                await asyncio.sleep(0.01)
            resub_s = launcher.subscribed_at[-1] - t0
            leads.append(lead_s)
            rereg.append(max(lead_s, rereg_s))
            state_ok.append(state_s)
            resub.append(resub_s)
            print(f"round {r}: leader {lead_s:5.2f}s  agents re-registered {rereg_s:5.2f}s  "
                  f"state complete {state_s:5.2f}s  framework re-subscribed {resub_s:5.2f}s  "
                  f"tasks lost so far {len(launcher.bad())}")
            masters[killed].stop()
            masters[killed] = await asyncio.to_thread(start_master, work, killed, url,
                                                      args.zk_session_timeout)

        final = get_json(leader.url + "/master/state", timeout=10)
        on_master = {t["id"]: t["state"] for f in final["frameworks"] for t in f["tasks"]}
        missing = [f"t{n}" for n in range(1, total + 1) if on_master.get(f"t{n}") !=
                   "TASK_RUNNING"]
        lost = set(launcher.bad()) | set(missing)

        def fig(name: str, xs: list[float]) -> None:
            print(f"{name:<52} median {statistics.median(xs):5.2f}s   max {max(xs):5.2f}s")

        print()
        print(f"failover over {args.rounds} rounds, {args.agents} agents, {total} tasks, "
              f"ZooKeeper session timeout {args.zk_session_timeout:g}s")
        fig("kill -9 -> new leader serving", leads)
        fig("kill -9 -> leader serving AND all agents re-registered", rereg)
        fig("kill -9 -> new leader's state has all agents and tasks", state_ok)
        fig("kill -9 -> framework re-subscribed", resub)
        print(f"{'tasks lost':<52} {len(lost)}   (goal: median < 2 s with 100 agents, 0 lost; "
              "Mesos: 4-8 s)")
        if driver is not None:
            await driver.stop(teardown=True)
            driver = None
    finally:
        if driver is not None:
            await driver.stop()
        sims.terminate()
        sims.join(5)


# -- agent rounds: real agents, kill -9 and restart on the same work dir ---------------
class Sleeper:
    """Launches ``per_agent`` long ``sleep`` tasks on each of the given (real) agents."""

    def __init__(self, per_agent: int) -> None:
        self.per_agent = per_agent
        self.wanted: set[str] = set()  # agent ids to launch on
        self.launched: dict[str, str] = {}  # task id -> agent id
        self.statuses: dict[str, list[str]] = {}
        self.log: list[tuple[float, str, str, str]] = []  # (time, task, state, reason)
        self.driver: SchedulerDriver | None = None
        self.res = Resources.parse("cpus:0.1;mem:32").to_json()

    async def on_offers(self, offers: list[dict[str, Any]]) -> None:
        assert self.driver is not None
        for offer in offers:
            agent = offer["agent_id"]["value"]
            if agent not in self.wanted or agent in self.launched.values():
                await self.driver.decline([offer["id"]["value"]], 3600)
                continue
            tasks = []
            for _ in range(self.per_agent):
                tid = f"s{len(self.launched) + 1}"
                self.launched[tid] = agent
                tasks.append({"name": tid, "task_id": {"value": tid},
                              "agent_id": offer["agent_id"],
                              "command": {"value": "sleep 3600"}, "resources": self.res})
            await self.driver.launch([offer["id"]["value"]], tasks, refuse_seconds=3600)

    def on_update(self, status: dict[str, Any]) -> None:
        tid = status["task_id"]["value"]
        self.statuses.setdefault(tid, []).append(status["state"])
        self.log.append((time.monotonic(), tid, status["state"],
                         status.get("reason", "") + " " + status.get("message", "")))

    def running(self) -> int:
        return sum(1 for s in self.statuses.values() if s and s[-1] == "TASK_RUNNING")

    def bad(self) -> dict[str, list[str]]:
        return {t: s for t, s in self.statuses.items() if AGENT_BAD_STATES & set(s)}


def task_processes(agent: Daemon) -> dict[str, set[int]]:
    """Per task on ``agent`` (its /state): the pids working in its executor's sandbox."""
    state = get_json(agent.url + "/state", timeout=10)
    dirs = {t["id"]: e["directory"] for f in state["frameworks"] for e in f["executors"]
            for t in e["tasks"] if t["state"] == "TASK_RUNNING"}
    out: dict[str, set[int]] = {t: set() for t in dirs}
    for proc in psutil.process_iter(["pid", "cwd"]):
        cwd = proc.info.get("cwd") or ""
        for t, d in dirs.items():
            if cwd == d or cwd.startswith(d + "/"):
                out[t].add(proc.pid)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_agent(work: Path, name: str, zk_url: str, port: int, index: int) -> Daemon:
    first = 32000 + index * 100
    agent = Daemon(["agent", "--master", zk_url, "--port", str(port),
                    "--work-dir", str(work / name),
                    "--resources", f"cpus:2;mem:2048;disk:4096;ports:[{first}-{first + 99}]",
                    "--log-level", "INFO"], work / f"{name}.log")
    agent.wait_listening()
    return agent


def agent_id_of(work: Path, name: str) -> str:
    return (work / name / "meta/slaves/latest").readlink().name


def slave_view(masters: list[Daemon], agent_id: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The leader's /master/state entry for ``agent_id`` and its tasks' states."""
    leader = the_leader(masters, 30)
    state = get_json(leader.url + "/master/state", timeout=10)
    slave = next((s for s in state["slaves"] if s["id"] == agent_id), None)
    tasks = [t["state"] for f in state["frameworks"] for t in f["tasks"]
             if t["slave_id"] == agent_id]
    return slave, tasks


async def agent_rounds(args: argparse.Namespace, work: Path, url: str,
                       masters: dict[str, Daemon]) -> None:
    names = [f"a{i}" for i in range(args.real_agents)]
    ports = {n: free_port() for n in names}
    agents: dict[str, Daemon] = {}
    driver = None
    ms = list(masters.values())
    try:
        for i, n in enumerate(names):
            agents[n] = await asyncio.to_thread(start_agent, work, n, url, ports[n], i)
        ids = {n: await asyncio.to_thread(wait_for, lambda n=n: (work / n / "meta/slaves/latest")
                                          .is_symlink() and agent_id_of(work, n), 30, 0.05,
                                          f"agent {n} registered")
               for n in names}
        sleeper = Sleeper(args.tasks_per_real_agent)
        sleeper.wanted = set(ids.values())
        driver = SchedulerDriver(url, {"user": getpass.getuser(), "name": "bench-agent-failover",
                                       "checkpoint": True, "failover_timeout": 3600}, sleeper)
        sleeper.driver = driver
        await driver.start()
        total = args.real_agents * args.tasks_per_real_agent
        deadline = time.monotonic() + 60
        while sleeper.running() < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {sleeper.running()}/{total} tasks RUNNING: "
                                   f"{sleeper.statuses}")
            await asyncio.sleep(0.05)
        print()
        print(f"{args.real_agents} real agents (zk://), {total} sleep tasks RUNNING (checkpoint, "
              f"failover_timeout 1 h); {args.agent_rounds} rounds of kill -9 on an agent and "
              "a restart on its work dir")

        back, lost_per_round = [], []
        for r in range(1, args.agent_rounds + 1):
            name = names[(r - 1) % len(names)]
            aid = ids[name]
            mine = sorted(t for t, a in sleeper.launched.items() if a == aid)
            slave, _ = await asyncio.to_thread(slave_view, ms, aid)
            rereg_before = slave.get("reregistered_time") if slave else None
            bad_before = len(sleeper.bad())
            procs_before = await asyncio.to_thread(task_processes, agents[name])
            t0 = time.monotonic()
            agents[name].kill()
            agents[name] = await asyncio.to_thread(start_agent, work, name, url, ports[name],
                                                   names.index(name))
            up_s = time.monotonic() - t0

            def recovered(aid: str = aid, before: Any = rereg_before,
                          count: int = len(mine)) -> bool:
                slave, tasks = slave_view(ms, aid)
                return bool(slave and slave["active"]
                            and slave.get("reregistered_time") not in (None, before)
                            and len(tasks) == count
                            and all(t == "TASK_RUNNING" for t in tasks))

            try:
                await asyncio.to_thread(wait_for, recovered, 120, 0.02,
                                        f"agent {name} re-registered with its tasks RUNNING")
                back_s = time.monotonic() - t0
            except TimeoutError as exc:
                print(f"round {r}: {exc}")
                back_s = float("inf")
            now_ids = agent_id_of(work, name)
            if now_ids != aid:
                print(f"round {r}: agent {name} came back with a new id {now_ids} (was {aid})")
            # late statuses: an executor that does not re-subscribe is killed after the
            # agent's --executor-reregistration-timeout (2 s), its task FAILED
            await asyncio.sleep(args.settle)
            lost_round = len(sleeper.bad()) - bad_before
            procs_after = await asyncio.to_thread(task_processes, agents[name])
            for t in mine:
                gone = procs_before.get(t, set()) - procs_after.get(t, set())
                if t not in procs_after or gone or not procs_before.get(t):
                    print(f"round {r}: task {t}: not RUNNING on the restarted agent's /state or "
                          f"its processes changed (before {sorted(procs_before.get(t, ()))}, "
                          f"after {sorted(procs_after.get(t, ()))})")
            back.append(back_s)
            lost_per_round.append(lost_round)
            print(f"round {r}: agent {name} ({len(mine)} tasks) process listening {up_s:5.2f}s  "
                  f"re-registered, tasks RUNNING {back_s:5.2f}s  tasks lost this round "
                  f"{lost_round}")
            for when, tid, state, why in sleeper.log:
                if when >= t0 and state in AGENT_BAD_STATES:
                    print(f"    {tid}: {state} {why.strip()} at +{when - t0:.2f}s")

        leader = await asyncio.to_thread(the_leader, ms)
        final = get_json(leader.url + "/master/state", timeout=10)
        on_master = {t["id"]: t["state"] for f in final["frameworks"] for t in f["tasks"]}
        missing = [t for t in sleeper.launched if on_master.get(t) != "TASK_RUNNING"]
        lost = set(sleeper.bad()) | set(missing)
        finite = [x for x in back if x != float("inf")] or [float("inf")]

        print()
        print(f"agent kill -9 over {args.agent_rounds} rounds, {args.real_agents} real agents, "
              f"{total} tasks")
        print(f"{'kill -9 -> agent re-registered, its tasks RUNNING':<52} median "
              f"{statistics.median(finite):5.2f}s   max {max(back):5.2f}s")
        print(f"{'tasks lost':<52} {len(lost)}   (goal: 0 lost; executors and their tasks' "
              "processes the same before and after, else a line per task above)")
        if lost:
            for t in sorted(lost):
                print(f"    {t}: statuses {sleeper.statuses.get(t)}, on the leader "
                      f"{on_master.get(t)}")
        await driver.stop(teardown=True)
        driver = None
    finally:
        if driver is not None:
            await driver.stop()
        for a in agents.values():
            a.stop()
        kill_processes_under(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--masters", type=int, default=3)
    parser.add_argument("--tasks-per-agent", type=int, default=2)
    parser.add_argument("--zk-session-timeout", type=float, default=1.0)
    parser.add_argument("--agent-rounds", type=int, default=3,
                        help="rounds of kill -9 on a real agent (0: none)")
    parser.add_argument("--real-agents", type=int, default=3)
    parser.add_argument("--tasks-per-real-agent", type=int, default=2)
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds to wait after each agent round for late statuses")
    args = parser.parse_args()
    raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="mesonb-bench-failover-"))
    tick_ms = min(500, int(args.zk_session_timeout * 1000) // 2)
    zk = ZooKeeperServer(work / "zk", tick_ms=tick_ms)
    print(f"ZooKeeper session timeout {args.zk_session_timeout:g}s (server tickTime "
          f"{tick_ms} ms); {args.masters} masters, {args.agents} simulated agents, "
          f"{args.real_agents} real agents")
    try:
        zk.start()
        asyncio.run(run(args, work, zk))
    finally:
        zk.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
