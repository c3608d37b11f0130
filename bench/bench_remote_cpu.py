"""CPU per no-op call in remote mode, per process (master, agent, executors, client).

Starts ``mesonb master`` and ``mesonb agent`` as their own processes, connects a
``Cluster("host:port")``, warms up, then runs a burst of N no-op calls (all submitted,
then gathered) and a loop of M calls (one at a time), reading each process's
``psutil`` CPU times around each, and for the burst the times each process's threads were
put on a CPU (wake-ups) and how idle the machine was. CPU time does not grow when other
processes load the machine, so the figures hold on a busy VM where wall-clock rates do not.

    python bench/bench_remote_cpu.py [--burst 2000] [--loop 400] [--py-spy DIR]

``--py-spy DIR`` records a flame graph of the master and the agent during the burst
(``pip install py-spy`` first; not a dependency of mesonb).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from mesonb import Cluster
from mesonb.testing.processes import ProcessCluster


def noop() -> None:
    return None


def cpu_of(procs: dict[str, list[psutil.Process]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, group in procs.items():
        total = 0.0
        for p in group:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        out[name] = total
    return out


def wakeups_of(procs: dict[str, list[psutil.Process]]) -> dict[str, int]:
    """Times each group's threads were put on a CPU so far (``/proc/PID/task/*/schedstat``,
    third field): each is a wake-up after blocking, or a preemption. Fewer per call means
    bigger batches per hop, and less time lost to waking an idle CPU."""
    out: dict[str, int] = {}
    for name, group in procs.items():
        total = 0
        for p in group:
            try:
                tids = os.listdir(f"/proc/{p.pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    with open(f"/proc/{p.pid}/task/{tid}/schedstat") as f:
                        total += int(f.read().split()[2])
                except (OSError, IndexError, ValueError):
                    pass
        out[name] = total
    return out


def processes(cluster: ProcessCluster) -> dict[str, list[psutil.Process]]:
    assert cluster.master is not None
    agent = psutil.Process(cluster.agents[0].pid)
    return {
        "master": [psutil.Process(cluster.master.pid)],
        "agent": [agent],
        "executors": agent.children(recursive=True),
        "client": [psutil.Process(os.getpid())],
    }


def report(title: str, n: int, seconds: float, before: dict[str, float],
           after: dict[str, float], woken: dict[str, int] | None = None) -> None:
    per = {k: (after[k] - before[k]) / n * 1e3 for k in before}
    parts = ", ".join(f"{k} {v:.3f}" for k, v in per.items())
    print(f"{title}: {n} calls in {seconds:.2f} s ({n / seconds:.0f}/s); "
          f"CPU ms per call: {parts}, all {sum(per.values()):.3f}", flush=True)
    if woken:
        parts = ", ".join(f"{k} {v / n:.2f}" for k, v in woken.items())
        print(f"{title}: times on a CPU per call: {parts}, "
              f"all {sum(woken.values()) / n:.2f}", flush=True)


def idle_of() -> tuple[int, int]:
    """The machine's (all, idle + iowait) jiffies so far, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--loop", type=int, default=400)
    parser.add_argument("--py-spy", type=Path, default=None, dest="py_spy")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # the agent's own resources, as `mesonb agent` detects them on this machine
        cluster = ProcessCluster(Path(tmp), agents=1, agent_resources="")
        cluster.start()
        try:
            c = Cluster(cluster.address)
            try:
                for _ in range(50):
                    c.submit(noop).result(60)
                c.gather([c.submit(noop) for _ in range(200)], progress=False)
                procs = processes(cluster)
                spies = []
                if args.py_spy:
                    args.py_spy.mkdir(parents=True, exist_ok=True)
                    for name in ("master", "agent"):
                        pid = procs[name][0].pid
                        spies.append(subprocess.Popen(
                            [str(Path(sys.executable).parent / "py-spy"), "record",
                             "-p", str(pid), "-r", "250", "--gil", "-f", "raw", "-o",
                             str(args.py_spy / f"{name}.txt")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                    time.sleep(1.0)
                before, woken, idle = cpu_of(procs), wakeups_of(procs), idle_of()
                t = time.perf_counter()
                c.gather([c.submit(noop) for _ in range(args.burst)], timeout=300, progress=False)
                seconds = time.perf_counter() - t
                after, idle_after = wakeups_of(procs), idle_of()
                report("burst", args.burst, seconds, before, cpu_of(procs),
                       {k: after[k] - woken[k] for k in after})
                idle_share = (idle_after[1] - idle[1]) / max(idle_after[0] - idle[0], 1)
                print(f"burst: the machine was idle {idle_share:.0%} of the time", flush=True)
                for spy in spies:
                    spy.send_signal(2)
                    spy.wait(30)
                if args.loop:
                    samples = []
                    before = cpu_of(procs)
                    t0 = time.perf_counter()
                    for _ in range(args.loop):
                        t = time.perf_counter()
                        c.submit(noop).result(60)
                        samples.append(time.perf_counter() - t)
                    report("loop", args.loop, time.perf_counter() - t0, before,
                           cpu_of(procs))
                    print(f"loop: median {statistics.median(samples) * 1e3:.2f} ms",
                          flush=True)
            finally:
                c.close()
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
