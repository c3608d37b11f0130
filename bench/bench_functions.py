"""The same small workloads on mesonb, Dask's LocalCluster and Ray (when installed).

    .venv/bin/python bench/bench_functions.py [--latency 200] [--tasks 5000]

Prints one table: local cluster start time, no-op submit->result latency (median and
p99), throughput of no-op tasks, and 8 tasks of 0.5 s CPU on 2 workers; the ratio
columns are the other system's figure over mesonb's (for latency and time, above 1
means mesonb is faster; for throughput, below 1). Dask and Ray are optional
(``pip install "dask[distributed]" ray``); missing ones print "not installed".
mesonb tasks ask for ``cpus=0.01, mem=64`` so that the no-op workloads are not limited by
the agents' resources; the CPU workload asks for ``cpus=0.5``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def noop() -> None:
    return None


def burn(seconds: float = 0.5) -> int:
    end = time.process_time() + seconds
    n = 0
    while time.process_time() < end:
        n += 1
    return n


def measure(name: str, start: Callable[[], Any], submit: Callable[..., Any],
            result: Callable[[Any], Any], stop: Callable[[Any], None], args: Any,
            cpu_opts: dict[str, Any]) -> dict[str, float]:
    t = time.perf_counter()
    handle = start()
    figures = {"start_s": time.perf_counter() - t}
    try:
        for _ in range(10):  # warm up executors and workers
            result(submit(handle, noop, {}))
        lat = []
        for _ in range(args.latency):
            t = time.perf_counter()
            result(submit(handle, noop, {}))
            lat.append(time.perf_counter() - t)
        lat.sort()
        figures["lat_median_ms"] = statistics.median(lat) * 1e3
        figures["lat_p99_ms"] = lat[int(len(lat) * 0.99) - 1] * 1e3
        t = time.perf_counter()
        futures = [submit(handle, noop, {}) for _ in range(args.tasks)]
        for f in futures:
            result(f)
        figures["tasks_per_s"] = args.tasks / (time.perf_counter() - t)
        t = time.perf_counter()
        futures = [submit(handle, burn, cpu_opts) for _ in range(8)]
        for f in futures:
            result(f)
        figures["cpu_8x0.5s_s"] = time.perf_counter() - t
    finally:
        stop(handle)
    print(f"  {name}: " + ", ".join(f"{k}={v:.4g}" for k, v in figures.items()), flush=True)
    return figures


def run_mesonb(args: argparse.Namespace) -> dict[str, float]:
    from mesonb import Cluster

    small = {"cpus": 0.01, "mem": 64}
    return measure(
        "mesonb", lambda: Cluster.local(agents=2),
        lambda c, fn, opts: c.submit(fn, **(opts or small)),
        lambda f: f.result(120), lambda c: c.close(), args, {"cpus": 0.45, "mem": 64})


def run_dask(args: argparse.Namespace) -> dict[str, float] | None:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        return None

    def start() -> Any:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        return cluster, Client(cluster)

    def stop(handle: Any) -> None:
        handle[1].close()
        handle[0].close()

    return measure("dask", start, lambda h, fn, opts: h[1].submit(fn, pure=False),
                   lambda f: f.result(120), stop, args, {})


def run_ray(args: argparse.Namespace) -> dict[str, float] | None:
    try:
        import ray
    except ImportError:
        return None
    remotes: dict[Any, Any] = {}

    def submit(_: Any, fn: Any, opts: Any) -> Any:
        if fn not in remotes:
            remotes[fn] = ray.remote(fn)
        return remotes[fn].remote()

    return measure("ray", lambda: ray.init(num_cpus=2, include_dashboard=False),
                   submit, lambda f: ray.get(f, timeout=120), lambda _: ray.shutdown(),
                   args, {})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=int, default=200, help="latency samples")
    parser.add_argument("--tasks", type=int, default=5000, help="tasks for throughput")
    args = parser.parse_args()
    results = {"mesonb": run_mesonb(args), "dask": run_dask(args), "ray": run_ray(args)}
    base = results["mesonb"]
    rows = [("local cluster start (s)", "start_s"), ("latency median (ms)", "lat_median_ms"),
            ("latency p99 (ms)", "lat_p99_ms"), (f"throughput, {args.tasks} no-ops (/s)",
                                                 "tasks_per_s"),
            ("8 x 0.5 s CPU on 2 cores (s)", "cpu_8x0.5s_s")]
    header = f"{'':32} {'mesonb':>10}" + "".join(
        f" {n:>10} {n + '/mesonb':>12}" for n in ("dask", "ray"))
    print("\n" + header)
    for label, key in rows:
        line = f"{label:32} {base[key]:>10.4g}"
        for name in ("dask", "ray"):
            other = results[name]
            if other is None:
                line += f" {'not installed':>23}"
            else:
                line += f" {other[key]:>10.4g} {other[key] / base[key]:>12.2f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
