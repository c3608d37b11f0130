"""mesonb's dataflow against dask and one plain Python/pandas process, on the same data.

    .venv/bin/python bench/bench_dataflow.py                    # ~150 MB text, 20 M rows
    .venv/bin/python bench/bench_dataflow.py --text-mb 15 --files 8 --rows 2000000  # quick

Data (generated once into ``--data``, reused when the sizes match): a Zipf-distributed
text corpus of ``--text-mb`` MB in ``--files`` files, and a parquet table of ``--rows``
rows x 3 columns (``k``: ``--keys`` keys, ``v`` float, ``w`` int) in 16 files.

Workloads, each timed once after a warm-up: word count (mesonb over lines as records
through ``flat_map``/``map``/``reduce_by_key``, and with ``Counter(text.split())`` per
file of ``whole_text``; dask.bag ``str.split().flatten().frequencies()``; Python the same
``Counter`` per file),
a group-by ``{"v": "sum", "w": "mean"}`` on the table held in memory (persisted), and a
full hash shuffle of the table by ``k`` (mesonb ``shuffle``, dask ``shuffle``; pandas:
the same split into buckets in one process). mesonb runs 2 executors x 1 cpu on a
cluster of real processes (a master, three agents: two run the executors, one is spare);
dask a ``LocalCluster(n_workers=2, threads_per_worker=1)``. Last, the shuffle again with
one agent killed (kill -9, with its executor) once the map stage is done, against the
fault-free time: the lost map outputs are recomputed, and a new executor starts on the
spare agent.

Prints each time and the ratio of each peer to mesonb (above 1: mesonb is faster).
"""

from __future__ import annotations

import argparse
import glob
import json
import operator
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


# -- data -------------------------------------------------------------------------------
def make_text(directory: Path, mb: float, files: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = np.array(["".join(rng.choice(letters, rng.integers(2, 10)))
                      for _ in range(100_000)], dtype=object)
    per_file = int(mb * 2**20 / files)
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        out, size = [], 0
        while size < per_file:
            idx = (rng.zipf(1.3, 100_000) - 1) % len(vocab)
            words = vocab[idx]
            lines = [" ".join(words[j:j + 12]) for j in range(0, len(words), 12)]
            chunk = "\n".join(lines) + "\n"
            out.append(chunk)
            size += len(chunk)
        (directory / f"part-{i:03d}.txt").write_text("".join(out)[:per_file].rsplit("\n", 1)[0]
                                                     + "\n")


def make_table(directory: Path, rows: int, keys: int, files: int = 16, seed: int = 2) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        n = rows // files + (1 if i < rows % files else 0)
        frame = pd.DataFrame({"k": rng.integers(0, keys, n), "v": rng.random(n),
                              "w": rng.integers(0, 1000, n)})
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False),
                       directory / f"part-{i:03d}.parquet")


def ensure_data(args: argparse.Namespace) -> tuple[Path, Path]:
    root = Path(args.data)
    stamp = root / "sizes.json"
    sizes = {"text_mb": args.text_mb, "files": args.files, "rows": args.rows,
             "keys": args.keys}
    if not stamp.exists() or json.loads(stamp.read_text()) != sizes:
        print(f"generating data under {root} ...", flush=True)
        t = time.perf_counter()
        for old in glob.glob(str(root / "*" / "*")):
            os.unlink(old)
        make_text(root / "text", args.text_mb, args.files)
        make_table(root / "table", args.rows, args.keys)
        stamp.write_text(json.dumps(sizes))
        print(f"  generated in {time.perf_counter() - t:.1f}s", flush=True)
    return root / "text", root / "table"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    value = fn()
    return time.perf_counter() - t, value


# -- one plain process ------------------------------------------------------------------
def plain(text: Path, table: Path, buckets: int) -> dict[str, Any]:
    def wordcount() -> Counter:
        counts: Counter = Counter()
        for path in sorted(text.iterdir()):
            counts.update(path.read_text().split())
        return counts

    out: dict[str, Any] = {}
    out["wordcount"], out["counts"] = timed(wordcount)
    frame = pd.read_parquet(table)
    out["groupby"], out["grouped"] = timed(
        lambda: frame.groupby("k").agg({"v": "sum", "w": "mean"}))

    def shuffle() -> int:
        h = pd.util.hash_pandas_object(frame[["k"]], index=False).to_numpy() % buckets
        order = np.argsort(h, kind="stable")
        parts = np.split(frame.take(order), np.searchsorted(h[order], np.arange(1, buckets)))
        return sum(len(p) for p in parts)

    out["shuffle"], _ = timed(shuffle)
    return out


# -- mesonb -----------------------------------------------------------------------------
def _file_counts(path_text: tuple[str, str]) -> Any:
    return Counter(path_text[1].split()).items()


def mesonb_runs(text: Path, table: Path, buckets: int, reference: dict[str, Any]
                ) -> dict[str, Any]:
    from mesonb.frameworks.dataflow import Dataflow
    from mesonb.testing.processes import ProcessCluster, kill_processes_under, wait_for

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dataflow-") as tmp, \
            ProcessCluster(Path(tmp), agents=3,
                           agent_resources="cpus:1.5;mem:6000;disk:8000") as cluster, \
            Dataflow(cluster.address, executors=2, cpus=1, mem="4GB", progress=False,
                     idle_timeout=None) as flow:
        flow.parallelize(range(4), 4).count()
        wait_for(lambda: len(flow.pool.alive()) == 2, 60, what="two executors")
        lines = flow.text(str(text))
        lines.count()  # warm-up: the page cache and both executors
        t, counts = timed(lambda: dict(lines.flat_map(str.split).map(lambda w: (w, 1))
                                       .reduce_by_key(operator.add).collect()))
        assert counts == reference["counts"], "word counts differ"
        out["wordcount records"] = t
        files = flow.whole_text(str(text))
        t, counts = timed(lambda: dict(files.flat_map(_file_counts)
                                       .reduce_by_key(operator.add).collect()))
        assert counts == reference["counts"], "word counts differ"
        out["wordcount"] = t

        df = flow.read_parquet(str(table)).persist()
        rows = df.count()
        out["groupby"], grouped = timed(
            lambda: df.groupby("k").agg({"v": "sum", "w": "mean"}).to_pandas())
        pd.testing.assert_frame_equal(grouped, reference["grouped"], check_exact=False)
        out["shuffle"], n = timed(lambda: df.shuffle("k", buckets).count())
        assert n == rows
        out["shuffle"], n = timed(lambda: df.shuffle("k", buckets).count())

        # One agent killed once the map stage is done.
        shuffled = df.shuffle("k", buckets)
        known = len(flow.record.stages)  # stages of earlier jobs
        done: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: done.setdefault("n", shuffled.count()))
        began = time.perf_counter()
        thread.start()

        def maps_done() -> bool:
            return any(s.kind == "shuffle map" and s.tasks_done >= df.partitions
                       for s in flow.record.stages[known:])

        wait_for(maps_done, 120, interval=0.005, what="the map stage")
        victim = flow.pool.alive()[0]
        state = cluster.state()
        [slave] = [s for s in state["slaves"] if s["id"] == victim.agent_id]
        index = next(i for i, a in enumerate(cluster.agents) if f":{a.port}" in slave["pid"])
        cluster.agents[index].kill()
        kill_processes_under(Path(tmp) / f"agent{index}")
        thread.join()
        out["shuffle, agent killed"] = time.perf_counter() - began
        assert done.get("n") == rows, "wrong count after the fault"
        out["recomputed"] = int(flow.jobs().iloc[-1].recomputed)
        out["lost"] = list(flow.pool.lost)
        if os.environ.get("BENCH_DEBUG"):
            print(flow.jobs().iloc[-1], flow.stages().tail(3).T, flow.pool.lost, sep="\n")
    return out


# -- dask ---------------------------------------------------------------------------------
def dask_runs(text: Path, table: Path, buckets: int) -> dict[str, Any] | None:
    try:
        import dask.bag as db
        import dask.dataframe as dd
        from distributed import Client, LocalCluster
    except ImportError:
        return None
    out: dict[str, Any] = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        bag = db.read_text(str(text / "*.txt"))
        bag.count().compute()
        out["wordcount"], _ = timed(
            lambda: dict(bag.str.split().flatten().frequencies().compute()))
        ddf = client.persist(dd.read_parquet(str(table)))
        len(ddf)
        out["groupby"], _ = timed(
            lambda: ddf.groupby("k").agg({"v": "sum", "w": "mean"}).compute())
        out["shuffle"], _ = timed(  # sizes of the shuffled partitions: every row moves
            lambda: ddf.shuffle("k", npartitions=buckets).map_partitions(len).compute())
    return out


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(tempfile.gettempdir(),
                                                       "mesonb-bench-dataflow"))
    parser.add_argument("--text-mb", type=float, default=150.0)
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--buckets", type=int, default=16, help="shuffle partitions")
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()
    text, table = ensure_data(args)
    print(f"load before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus", flush=True)
    reference = plain(text, table, args.buckets)
    print("python/pandas done", flush=True)
    mesonb = mesonb_runs(text, table, args.buckets, reference)
    print("mesonb done", flush=True)
    dask = None if args.no_dask else dask_runs(text, table, args.buckets)
    print(f"load after: {os.getloadavg()[0]:.2f}\n")
    goals = {"wordcount": 3.0, "groupby": 1.0, "shuffle": 2.5}
    print(f"{'workload':<24}{'mesonb s':>10}{'goal':>7}{'dask s':>9}{'dask/m':>8}"
          f"{'python s':>10}{'py/m':>7}")
    for name in ("wordcount records", "wordcount", "groupby", "shuffle",
                 "shuffle, agent killed"):
        ours = mesonb[name]
        key = name.split(" ")[0].rstrip(",")
        theirs = dask.get(key) if dask and name in ("wordcount", "groupby", "shuffle") else None
        py = reference.get(key) if name in ("wordcount", "groupby", "shuffle") else None
        goal = goals.get(name)
        print(f"{name:<24}{ours:>10.2f}{_fmt(goal, 'g'):>7}{_fmt(theirs):>9}"
              f"{_fmt(theirs and theirs / ours):>8}{_fmt(py):>10}{_fmt(py and py / ours):>7}")
    ratio = mesonb["shuffle, agent killed"] / mesonb["shuffle"]
    print(f"\nagent killed mid-shuffle: {ratio:.2f}x the fault-free time (goal <= 1.5x), "
          f"{mesonb['recomputed']} map partitions recomputed")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
