"""A group-by aggregation over a generated table with mesonb's dataflow DataFrame API.

    python examples/groupby.py [--rows 1000000] [--keys 1000] [--master HOST:PORT]

Writes the table as parquet files, reads them back on the executors, aggregates per key
and checks the result against pandas. Without ``--master`` it starts a local cluster.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mesonb import Cluster
from mesonb.frameworks.dataflow import Dataflow

SPEC = {"v": ["sum", "mean"], "w": ["min", "max", "count"]}


def write_table(directory: Path, rows: int, keys: int, files: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"k": rng.integers(0, keys, rows), "v": rng.random(rows),
                          "w": rng.integers(0, 100, rows)})
    for i in range(files):
        part = frame.iloc[i * rows // files:(i + 1) * rows // files]
        part.to_parquet(directory / f"part-{i}.parquet", index=False)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--master", help="HOST:PORT or zk://... (default: a local cluster)")
    parser.add_argument("--cpus", type=float, default=0.5, help="per executor (2 of them)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        frame = write_table(Path(tmp), args.rows, args.keys)
        cluster = None if args.master else Cluster.local(agents=2)
        try:
            make = (lambda **kw: Dataflow(args.master, **kw)) if args.master \
                else cluster.dataflow  # type: ignore[union-attr]
            flow = make(executors=2, cpus=args.cpus, mem="1GB")
            with flow:
                started = time.perf_counter()
                table = flow.read_parquet(tmp)              # one partition per file
                result = (table.query("v > 0.1")
                          .assign(w2=lambda f: f.w * 2)
                          .groupby("k").agg(SPEC)
                          .to_pandas())
                took = time.perf_counter() - started
                expected = frame.query("v > 0.1").groupby("k").agg(SPEC)
                pd.testing.assert_frame_equal(result, expected, check_exact=False)
                print(result.head())
                print(f"{len(result)} groups, equal to pandas; took {took:.2f}s")
                print(flow.stages()[["job_id", "kind", "dataset", "tasks_done",
                                     "bytes_written", "bytes_read"]].to_string(index=False))
        finally:
            if cluster is not None:
                cluster.close()


if __name__ == "__main__":
    main()
