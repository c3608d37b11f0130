"""CPU per no-op call with ``Cluster.local()``: the client's process against its children.

In local mode the client, the master and the agent share one process (one event loop
thread, plus the user's thread that submits and waits); the functions executor and its
workers are its children. This prints, for a burst of N no-op calls (all submitted, then
gathered) and a loop of M calls (one at a time), the calls per second and the CPU
microseconds per call of the main process and of the children, read with ``psutil``
around each: CPU time does not grow when other processes load the machine, so the
figures hold on a busy VM where wall-clock rates do not. The local side of
:mod:`bench_remote_cpu`.

    python bench/bench_local_cpu.py [--burst 5000] [--loop 1000] [--py-spy FILE]

``--py-spy FILE`` records a raw py-spy profile of the main process during the burst
(``pip install py-spy`` first; not a dependency of mesonb).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from mesonb import Cluster


def noop() -> None:
    return None


def cpu_seconds() -> tuple[float, float]:
    """(this process, its children now) user + system CPU seconds."""
    me = psutil.Process()
    times = me.cpu_times()
    children = 0.0
    for child in me.children(recursive=True):
        try:
            t = child.cpu_times()
            children += t.user + t.system
        except psutil.Error:
            pass
    return times.user + times.system, children


def report(title: str, n: int, seconds: float, before: tuple[float, float],
           after: tuple[float, float]) -> None:
    main, children = ((a - b) / n * 1e6 for a, b in zip(after, before, strict=True))
    print(f"{title}: {n} calls in {seconds:.2f} s ({n / seconds:.0f}/s); CPU us per call: "
          f"main process {main:.0f}, children {children:.0f}, all {main + children:.0f}",
          flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--loop", type=int, default=1000)
    parser.add_argument("--py-spy", type=Path, default=None, dest="py_spy")
    args = parser.parse_args()
    cluster = Cluster.local()
    try:
        for _ in range(200):
            cluster.submit(noop).result(60)
        spy = None
        if args.py_spy:
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(os.getpid()),
                 "-r", "500", "--threads", "-f", "raw", "-o", str(args.py_spy)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # py-spy has no ready signal
        before, t = cpu_seconds(), time.perf_counter()
        cluster.gather([cluster.submit(noop) for _ in range(args.burst)], timeout=300,
                       progress=False)
        report("burst", args.burst, time.perf_counter() - t, before, cpu_seconds())
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        if args.loop:
            before, t = cpu_seconds(), time.perf_counter()
            for _ in range(args.loop):
                cluster.submit(noop).result(60)
            report("loop", args.loop, time.perf_counter() - t, before, cpu_seconds())
    finally:
        cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
