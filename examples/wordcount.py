"""Word count over a directory of text files with mesonb's dataflow framework.

    python examples/wordcount.py [DIRECTORY] [--master HOST:PORT | zk://...] [--top 10]

Without ``--master`` it starts a local cluster (two agents) in this process; without a
directory it writes a small corpus to a temporary one first.
"""

from __future__ import annotations

import argparse
import operator
import random
import tempfile
import time
from pathlib import Path

from mesonb import Cluster
from mesonb.frameworks.dataflow import Dataflow

WORDS = ["mesos", "agent", "master", "offer", "task", "executor", "framework", "shuffle",
         "stage", "partition"]


def sample_corpus(directory: Path, files: int = 4, lines: int = 2000) -> None:
    rng = random.Random(7)
    for i in range(files):
        text = "\n".join(" ".join(rng.choices(WORDS, k=8)) for _ in range(lines))
        (directory / f"part-{i}.txt").write_text(text + "\n")


def word_count(flow: Dataflow, directory: str, top: int) -> list[tuple[str, int]]:
    counts = (flow.text(directory)                 # one partition per file
              .flat_map(str.split)
              .map(lambda word: (word, 1))
              .reduce_by_key(operator.add))        # combined per partition, then shuffled
    return counts.sort_by(lambda kv: kv[1], ascending=False).take(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", nargs="?")
    parser.add_argument("--master", help="HOST:PORT or zk://... (default: a local cluster)")
    parser.add_argument("--cpus", type=float, default=0.5, help="per executor (2 of them)")
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.directory
        if directory is None:
            directory = tmp
            sample_corpus(Path(tmp))
        cluster = None if args.master else Cluster.local(agents=2)
        try:
            make = (lambda **kw: Dataflow(args.master, **kw)) if args.master \
                else cluster.dataflow  # type: ignore[union-attr]
            flow = make(executors=2, cpus=args.cpus, mem="512MiB")
            with flow:
                started = time.perf_counter()
                for word, count in word_count(flow, directory, args.top):
                    print(f"{word:<16}{count:>10}")
                print(f"took {time.perf_counter() - started:.2f}s")
                print(flow.jobs()[["job_id", "description", "tasks_done", "duration"]]
                      .to_string(index=False))
        finally:
            if cluster is not None:
                cluster.close()


if __name__ == "__main__":
    main()
