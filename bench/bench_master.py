"""How much master CPU does a task cost, at 10,000 agents and 100,000 active tasks?

Drives the real Master in process with simulated agents and one framework. Every
message crosses the same parsing and serialising code it would on the wire: calls and
agent messages arrive as JSON text and are parsed; events and commands leave as JSON
text. Only the sockets are left out. The clock counts CPU time spent *inside the master*
(call handling, agent messages, allocation; ``time.thread_time``, so the figure does not
grow when other processes load the machine), not the simulated peers' own work.

Per task: one LAUNCH inside an ACCEPT, three status updates (STARTING, RUNNING,
FINISHED), three acknowledgements relayed to the agent.

    python bench/bench_master.py [--agents 10000] [--tasks-per-agent 10]
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import resource
import time
import uuid
from typing import Any

from mesonb.config import MasterConfig
from mesonb.master.master import Master
from mesonb.protocol import recordio
from mesonb.protocol.agent import load_call
from mesonb.protocol.mesos import AgentInfo
from mesonb.protocol.resources import Resources
from mesonb.protocol.scheduler import Call
from mesonb.testing.clock import FakeClock


class Meter:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self, fn: Any, *args: Any) -> Any:
        start = time.thread_time()
        try:
            return fn(*args)
        finally:
            self.seconds += time.thread_time() - start


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--tasks-per-agent", type=int, default=10)
    args = parser.parse_args()

    clock = FakeClock()
    master = Master(MasterConfig(), clock)
    pending: list[Any] = []
    master.attach(pending.append)
    meter = Meter()
    wire_bytes = [0]

    def to_agent(msg: Any) -> None:
        # The master hands its link a MasterCommand (or its JSON); a WebSocket link encodes
        # it, inside the master's time as the meter counts it.
        wire_bytes[0] += len(recordio.dumps(msg if isinstance(msg, dict) else msg.to_json()))

    offers: list[dict[str, Any]] = []

    def to_framework(event: dict[str, Any]) -> None:
        wire_bytes[0] += len(recordio.encode_json(event))
        if event["type"] == "OFFERS":
            offers.extend(event["offers"]["offers"])

    rss_before = rss_mb()
    started = time.perf_counter()
    agents = []
    per_agent = Resources.parse("cpus:32;mem:65536;disk:100000;ports:[31000-32000]").to_json()
    for i in range(args.agents):
        info = AgentInfo(hostname=f"agent{i}.sim", port=5051, resources=per_agent)
        from mesonb.protocol.agent import Register

        agent = meter(master.agents.register, Register(agent_info=info, version="1.11.0"),
                      to_agent, lambda: None)
        agents.append(agent)
    register_s = time.perf_counter() - started

    stream_id = str(uuid.uuid4())
    call = Call.parse({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
        "user": "bench", "name": "bench", "capabilities": [{"type": "PARTITION_AWARE"}]}}})
    framework = meter(master.calls.subscribe, call, stream_id, to_framework, lambda r: None)
    fid = framework.id

    def handle_call(payload: dict[str, Any]) -> None:
        text = json.dumps(payload)
        meter(lambda: master.calls.handle(Call.parse(text), stream_id))

    def agent_update(agent_id: str, task_id: str, state: str) -> str:
        status_uuid = base64.b64encode(uuid.uuid4().bytes).decode()
        text = json.dumps({"type": "STATUS_UPDATE", "status_update": {
            "framework_id": {"value": fid},
            "status": {"task_id": {"value": task_id}, "state": state, "uuid": status_uuid,
                       "source": "SOURCE_EXECUTOR", "timestamp": clock.time()}}})
        agent = master.book.agents[agent_id]
        meter(lambda: master.agents.handle(agent, load_call(text)))
        return status_uuid

    def ack(agent_id: str, task_id: str, status_uuid: str) -> None:
        handle_call({"type": "ACKNOWLEDGE", "framework_id": {"value": fid}, "acknowledge": {
            "agent_id": {"value": agent_id}, "task_id": {"value": task_id},
            "uuid": status_uuid}})

    def settle() -> None:
        while pending:
            meter(pending.pop(0))

    # -- phase 1: place the tasks, run them to RUNNING ----------------------------------
    task_res = Resources.parse("cpus:0.1;mem:32").to_json()
    gc.collect()
    meter.seconds = 0.0
    t0 = time.perf_counter()
    settle()
    launched: list[tuple[str, str]] = []
    while offers:
        batch, offers[:] = list(offers), []
        for offer in batch:
            agent_id = offer["agent_id"]["value"]
            tasks = []
            for k in range(args.tasks_per_agent):
                task_id = f"t-{agent_id[-6:]}-{len(launched)}-{k}"
                tasks.append({"name": "bench", "task_id": {"value": task_id},
                              "agent_id": {"value": agent_id},
                              "command": {"value": "sleep 1000"}, "resources": task_res})
                launched.append((agent_id, task_id))
            handle_call({"type": "ACCEPT", "framework_id": {"value": fid}, "accept": {
                "offer_ids": [offer["id"]], "operations": [
                    {"type": "LAUNCH", "launch": {"task_infos": tasks}}],
                "filters": {"refuse_seconds": 3600}}})
        settle()
    launch_master_s = meter.seconds
    for agent_id, task_id in launched:
        for state in ("TASK_STARTING", "TASK_RUNNING"):
            ack(agent_id, task_id, agent_update(agent_id, task_id, state))
    phase1_wall = time.perf_counter() - t0
    phase1_master = meter.seconds
    n = len(launched)
    running = master.task_count(__import__("mesonb.protocol.states").protocol.states.TaskState
                                .TASK_RUNNING)
    rss_full = rss_mb()

    # -- allocation cost with everything placed ------------------------------------------
    a0 = time.perf_counter()
    master.allocate()
    full_alloc_ms = (time.perf_counter() - a0) * 1000

    # -- phase 2: finish them ---------------------------------------------------------
    meter.seconds = 0.0
    t1 = time.perf_counter()
    for agent_id, task_id in launched:
        ack(agent_id, task_id, agent_update(agent_id, task_id, "TASK_FINISHED"))
    settle()
    phase2_wall = time.perf_counter() - t1
    phase2_master = meter.seconds

    total_master = phase1_master + phase2_master
    print(f"mesonb master, in process, simulated agents (pid {os.getpid()})")
    print(f"{'agents':<44}{args.agents:>12,}")
    print(f"{'tasks placed and run':<44}{n:>12,}")
    print(f"{'tasks RUNNING at once (peak)':<44}{running:>12,}")
    print(f"{'agent registration, total':<44}{register_s:>11.2f}s")
    print(f"{'placement (offers + ACCEPT/LAUNCH), master':<44}{launch_master_s:>11.2f}s"
          f"   {n / launch_master_s:>10,.0f} tasks/s")
    print(f"{'to RUNNING (launch+2 updates+2 acks), master':<44}{phase1_master:>11.2f}s"
          f"   {n / phase1_wall:>10,.0f} tasks/s wall")
    print(f"{'to FINISHED (1 update + 1 ack), master':<44}{phase2_master:>11.2f}s"
          f"   {n / phase2_wall:>10,.0f} tasks/s wall")
    print(f"{'master CPU per task, whole life':<44}{total_master / n * 1e6:>10.0f}µs"
          "   (goal: well under 200 µs)")
    print(f"{'allocation run over all agents (full)':<44}{full_alloc_ms:>10.1f}ms")
    print(f"{'process RSS with all tasks active':<44}{rss_full:>10.0f}MB"
          f"   (+{rss_full - rss_before:.0f} MB)")
    print(f"{'bytes on the wire (JSON), per task':<44}{wire_bytes[0] / n:>10.0f}B")


if __name__ == "__main__":
    main()
