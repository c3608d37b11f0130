"""``DataFrame``: a lazy, partitioned pandas DataFrame on the dataflow executors.

Each partition is one pandas DataFrame. ``groupby().agg()`` aggregates each partition
first (sum, count, min, max, size; a mean as a sum and a count), shuffles those partial
results by a hash of the keys (the same in every process) and finishes each key in one
reduce partition; ``merge`` shuffles both sides by their keys. Results equal pandas'
(``to_pandas()`` puts group keys in order, as pandas' ``groupby`` does).

Example::

    df = flow.read_parquet("table/")
    df.query("v > 0").groupby("k").agg({"v": "sum", "w": "mean"}).to_pandas()
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .lineage import MapPartitionsNode, Node, ShuffleDependency, ShuffledNode
from .runner import Runner

AGGREGATIONS = ("sum", "mean", "count", "min", "max", "size")
# How each partial column is combined on the reduce side.
_COMBINE = {"sum": "sum", "count": "sum", "size": "sum", "min": "min", "max": "max"}


def hash_split(on: list[str]) -> Callable[[Iterator[Any], int], list[Any]]:
    """Map side: the rows of a partition's frames into ``n`` frames by a hash of ``on``."""

    def split(frames: Iterator[Any], n: int) -> list[Any]:
        import numpy as np
        import pandas as pd

        parts = list(frames)
        frame = parts[0] if len(parts) == 1 else pd.concat(parts)
        if n == 1:
            return [frame]
        hashes = _key_hashes(frame, on) % n
        # Small integers sort stably by radix: linear in the rows.
        buckets = hashes.astype(np.uint8 if n <= 256 else np.uint16 if n <= 65536 else np.int64)
        order = np.argsort(buckets, kind="stable")
        bounds = np.concatenate(([0], np.cumsum(np.bincount(buckets, minlength=n))))
        ordered = frame.take(order)
        return [ordered.iloc[bounds[b]:bounds[b + 1]] for b in range(n)]

    return split


def _key_hashes(frame: Any, on: list[str]) -> Any:
    """A hash per row of the ``on`` columns, the same in every process: one integer
    column is mixed by a multiplication (Fibonacci hashing), anything else goes through
    ``pandas.util.hash_pandas_object``."""
    import numpy as np
    import pandas as pd

    if len(on) == 1 and pd.api.types.is_integer_dtype(frame[on[0]].dtype):
        values = frame[on[0]].to_numpy().astype(np.uint64, copy=False)
        return (values * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(33)
    return pd.util.hash_pandas_object(frame[on], index=False).to_numpy()


def _concat(buckets: list[Any], meta: Any) -> Any:
    import pandas as pd

    frames = [b for b in buckets if len(b)]
    if not frames:
        return meta
    return frames[0] if len(frames) == 1 else pd.concat(frames)


class DataFrame:
    """A lazy DataFrame of ``flow`` (see the module docstring). ``meta`` is an empty
    pandas frame with its columns and dtypes."""

    def __init__(self, flow: Runner, node: Node, meta: Any, *, sort_index: bool = False,
                 series: bool = False) -> None:
        self.flow = flow
        self.node = node
        self.meta = meta
        self._sort_index = sort_index
        self._series = series

    def __repr__(self) -> str:
        return f"<DataFrame {self.node.name} #{self.node.id}: {self.node.partitions} " \
               f"partitions, columns {list(self.meta.columns)}>"

    @property
    def columns(self) -> list[str]:
        return list(self.meta.columns)

    @property
    def partitions(self) -> int:
        return self.node.partitions

    def map_partitions(self, fn: Callable[[Any], Any], meta: Any = None) -> DataFrame:
        """``fn(pandas frame) -> pandas frame`` on each partition; ``meta`` (an empty frame
        of the result) is found by calling ``fn`` on an empty one when not given."""
        node = MapPartitionsNode(self.node, lambda i, frames: [fn(f) for f in frames],
                                 "map_partitions")
        return DataFrame(self.flow, node, fn(self.meta) if meta is None else meta)

    def assign(self, **columns: Any) -> DataFrame:
        """New columns, as ``pandas.DataFrame.assign`` (values or ``fn(frame)``)."""
        return self.map_partitions(lambda f: f.assign(**columns))

    def query(self, expr: str) -> DataFrame:
        """The rows where ``expr`` holds, as ``pandas.DataFrame.query``."""
        return self.map_partitions(lambda f: f.query(expr))

    def __getitem__(self, columns: list[str]) -> DataFrame:
        if isinstance(columns, str):
            columns = [columns]
        cols = list(columns)
        return self.map_partitions(lambda f: f[cols])

    def groupby(self, by: str | list[str]) -> GroupBy:
        return GroupBy(self, [by] if isinstance(by, str) else list(by))

    def shuffle(self, on: str | list[str], partitions: int | None = None) -> DataFrame:
        """The rows hash-partitioned by ``on``: equal keys in one partition."""
        keys = [on] if isinstance(on, str) else list(on)
        n = partitions or self.flow._reducers(self.node.partitions)
        dep = ShuffleDependency(self.node, n, hash_split(keys))
        meta = self.meta
        node = ShuffledNode([dep], lambda b: [_concat(b[0], meta)], "shuffle")
        return DataFrame(self.flow, node, meta)

    def merge(self, other: DataFrame, on: str | list[str], how: str = "inner",
              partitions: int | None = None) -> DataFrame:
        """A database-style join on the ``on`` columns (``how``: inner, left, right,
        outer), as ``pandas.merge``; rows come in no particular order."""
        import pandas as pd

        if how not in ("inner", "left", "right", "outer"):
            raise ValueError(f"merge: how must be inner, left, right or outer, not {how!r}")
        keys = [on] if isinstance(on, str) else list(on)
        n = partitions or self.flow._reducers(max(self.node.partitions, other.node.partitions))
        deps = [ShuffleDependency(self.node, n, hash_split(keys)),
                ShuffleDependency(other.node, n, hash_split(keys))]
        left_meta, right_meta = self.meta, other.meta

        def join(buckets: list[list[Any]]) -> list[Any]:
            return [pd.merge(_concat(buckets[0], left_meta), _concat(buckets[1], right_meta),
                             on=keys, how=how)]

        meta = pd.merge(left_meta, right_meta, on=keys, how=how)
        return DataFrame(self.flow, ShuffledNode(deps, join, f"merge {how}"), meta)

    def persist(self) -> DataFrame:
        self.node.persisted = True
        return self

    def unpersist(self) -> DataFrame:
        self.node.persisted = False
        self.flow._unpersist(self.node)
        return self

    # -- actions -----------------------------------------------------------------------
    def to_pandas(self) -> Any:
        """The whole frame, in this process."""
        import pandas as pd

        frames = [f for part in self.flow._run(self.node, _frames, None, "to_pandas")
                  for f in part]
        frames = [f for f in frames if len(f)] or [self.meta]
        out = frames[0] if len(frames) == 1 else pd.concat(frames)
        if self._sort_index:
            out = out.sort_index()
        if self._series:
            out = out.iloc[:, 0]
            out.name = None
        return out

    def count(self) -> int:
        """The number of rows."""
        return sum(self.flow._run(self.node, _rows, None, "count"))

    __len__ = count

    def head(self, n: int = 5) -> Any:
        """The first ``n`` rows."""
        import pandas as pd

        out: list[Any] = []
        have = 0
        for i in range(self.node.partitions):
            [part] = self.flow._run(self.node, _frames, [i], f"head {n}")
            for f in part:
                out.append(f.iloc[: n - have])
                have += len(out[-1])
            if have >= n:
                break
        return pd.concat(out) if out else self.meta

    def save_parquet(self, directory: str) -> list[str]:
        """One parquet file per partition in ``directory`` (a path every executor sees)."""
        return write_parquet(self.flow, self.node, directory)


def _frames(i: int, it: Iterator[Any]) -> list[Any]:
    return list(it)


def _rows(i: int, it: Iterator[Any]) -> int:
    return sum(len(f) for f in it)


class GroupBy:
    """``df.groupby(by)``: aggregate with :meth:`agg` (or ``sum()``, ``mean()``...)."""

    def __init__(self, frame: DataFrame, by: list[str]) -> None:
        missing = [k for k in by if k not in frame.meta.columns]
        if missing:
            raise KeyError(f"groupby: no column {missing[0]!r}")
        self.frame = frame
        self.by = by

    def agg(self, spec: dict[str, str | list[str]], partitions: int | None = None
            ) -> DataFrame:
        """``{"column": "sum" | "mean" | "count" | "min" | "max" | "size" | [several]}``;
        the result is indexed by the group keys, as pandas'."""
        import pandas as pd

        wanted: list[tuple[str, str]] = []
        multi = False
        for col, funcs in spec.items():
            if col not in self.frame.meta.columns:
                raise KeyError(f"agg: no column {col!r}")
            if isinstance(funcs, str):
                funcs = [funcs]
            else:
                multi = True
            for fn in funcs:
                if fn not in AGGREGATIONS:
                    raise ValueError(f"agg: {fn!r} is not one of {', '.join(AGGREGATIONS)}")
                wanted.append((col, fn))
        by = self.by
        # Partial aggregates per column, before the shuffle: a mean is a sum and a count.
        partial: dict[str, list[str]] = {}
        for col, fn in wanted:
            for how in (("sum", "count") if fn == "mean" else (fn,)):
                if how not in partial.setdefault(col, []):
                    partial[col].append(how)
        names = [f"{col}\x00{how}" for col, hows in partial.items() for how in hows]
        combine = {name: _COMBINE[name.split("\x00")[1]] for name in names}

        def pre(frame: Any) -> Any:
            out = frame.groupby(by, sort=False, observed=True).agg(partial)
            out.columns = names
            return out.reset_index()

        def finish(frame: Any) -> Any:
            combined = frame.groupby(by, sort=True, observed=True).agg(combine)
            out = pd.DataFrame(index=combined.index)
            for col, fn in wanted:
                key = (col, fn) if multi else col
                if fn == "mean":
                    out[key] = combined[f"{col}\x00sum"] / combined[f"{col}\x00count"]
                else:
                    out[key] = combined[f"{col}\x00{fn}"]
            if multi:
                out.columns = pd.MultiIndex.from_tuples(out.columns)
            return out

        pre_frame = self.frame.map_partitions(pre)
        n = partitions or self.frame.flow._reducers(self.frame.node.partitions)
        dep = ShuffleDependency(pre_frame.node, n, hash_split(by))
        pre_meta = pre_frame.meta

        def reduce(buckets: list[list[Any]]) -> list[Any]:
            return [finish(_concat(buckets[0], pre_meta))]

        node = ShuffledNode([dep], reduce, "groupby agg")
        return DataFrame(self.frame.flow, node, finish(pre_meta), sort_index=True)

    def _all(self, fn: str) -> DataFrame:
        cols = [c for c in self.frame.meta.columns if c not in self.by]
        return self.agg({c: fn for c in cols})

    def sum(self) -> DataFrame:
        return self._all("sum")

    def mean(self) -> DataFrame:
        return self._all("mean")

    def count(self) -> DataFrame:
        return self._all("count")

    def min(self) -> DataFrame:
        return self._all("min")

    def max(self) -> DataFrame:
        return self._all("max")

    def size(self) -> DataFrame:
        """Rows per group (``to_pandas()`` gives a Series, as pandas')."""
        col = self.by[0]
        result = self.agg({col: "size"})
        result._series = True
        return result


def parquet_files(path: str) -> list[str]:
    """A parquet file, a directory of them, or a glob."""
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "*.parquet")))
    elif any(c in path for c in "*?["):
        files = sorted(glob.glob(path))
    else:
        files = [path] if os.path.exists(path) else []
    if not files:
        raise FileNotFoundError(f"read_parquet: no parquet file at {path!r}")
    return [os.path.abspath(f) for f in files]


def write_parquet(flow: Runner, node: Node, directory: str) -> list[str]:
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)

    def write(i: int, frames: Iterable[Any]) -> str:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        parts = list(frames)
        frame = pd.concat(parts) if parts else pd.DataFrame()
        path = os.path.join(directory, f"part-{i:05d}.parquet")
        pq.write_table(pa.Table.from_pandas(frame), path + ".tmp")
        os.replace(path + ".tmp", path)
        return path

    return flow._run(node, write, None, "save_parquet")
