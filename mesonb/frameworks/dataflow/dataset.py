"""``Dataset``: a lazy, partitioned collection of Python records (Spark's RDD).

Transformations return a new dataset and compute nothing; actions (``collect``,
``count``, ...) run a job on the executors. Pairs ``(key, value)`` are what the ``*_by_key``
operations and ``join`` work on.

Example::

    words = flow.text("corpus/").flat_map(str.split)
    counts = words.map(lambda w: (w, 1)).reduce_by_key(operator.add)
    counts.sort_by(lambda kv: -kv[1]).take(10)
"""

from __future__ import annotations

import functools
import itertools
import os
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import partitioning as parts
from .lineage import MapPartitionsNode, Node, ShuffleDependency, ShuffledNode, UnionNode
from .runner import Runner


def _map(fn: Callable[[Any], Any]) -> Callable[[int, Iterator[Any]], Iterable[Any]]:
    return lambda i, it: map(fn, it)


def _flat_map(fn: Callable[[Any], Iterable[Any]]) -> Callable[[int, Iterator[Any]], Iterable[Any]]:
    return lambda i, it: itertools.chain.from_iterable(map(fn, it))


def _filter(fn: Callable[[Any], Any]) -> Callable[[int, Iterator[Any]], Iterable[Any]]:
    return lambda i, it: filter(fn, it)


def _count(i: int, it: Iterator[Any]) -> int:
    return sum(1 for _ in it)


def _collect(i: int, it: Iterator[Any]) -> list[Any]:
    return list(it)


class Dataset:
    """A lazy dataset of ``flow`` (see the module docstring)."""

    def __init__(self, flow: Runner, node: Node) -> None:
        self.flow = flow
        self.node = node

    def __repr__(self) -> str:
        persisted = ", persisted" if self.node.persisted else ""
        return f"<Dataset {self.node.name} #{self.node.id}: " \
               f"{self.node.partitions} partitions{persisted}>"

    @property
    def partitions(self) -> int:
        """How many partitions it has (tasks per stage over it)."""
        return self.node.partitions

    def _derive(self, fn: Callable[[int, Iterator[Any]], Iterable[Any]],
                name: str) -> Dataset:
        return Dataset(self.flow, MapPartitionsNode(self.node, fn, name))

    # -- narrow transformations --------------------------------------------------------
    def map(self, fn: Callable[[Any], Any]) -> Dataset:
        """``fn(record)`` for each record."""
        return self._derive(_map(fn), "map")

    def flat_map(self, fn: Callable[[Any], Iterable[Any]]) -> Dataset:
        """The records of each ``fn(record)``, one after the other."""
        return self._derive(_flat_map(fn), "flat_map")

    def filter(self, fn: Callable[[Any], Any]) -> Dataset:
        """The records for which ``fn(record)`` is true."""
        return self._derive(_filter(fn), "filter")

    def map_partitions(self, fn: Callable[[Iterator[Any]], Iterable[Any]]) -> Dataset:
        """``fn(records of a partition)`` -> the new partition's records."""
        return self._derive(lambda i, it: fn(it), "map_partitions")

    def map_partitions_with_index(
            self, fn: Callable[[int, Iterator[Any]], Iterable[Any]]) -> Dataset:
        """``fn(partition index, records)`` -> the new partition's records."""
        return self._derive(fn, "map_partitions")

    def key_by(self, fn: Callable[[Any], Any]) -> Dataset:
        """Pairs ``(fn(record), record)``."""
        return self._derive(_map(lambda r: (fn(r), r)), "key_by")

    def map_values(self, fn: Callable[[Any], Any]) -> Dataset:
        """Pairs ``(k, fn(v))`` of pairs ``(k, v)``."""
        return self._derive(_map(lambda kv: (kv[0], fn(kv[1]))), "map_values")

    def keys(self) -> Dataset:
        return self._derive(_map(lambda kv: kv[0]), "keys")

    def values(self) -> Dataset:
        return self._derive(_map(lambda kv: kv[1]), "values")

    def union(self, *others: Dataset) -> Dataset:
        """This dataset's partitions, then each other's."""
        return Dataset(self.flow, UnionNode([self.node, *(o.node for o in others)]))

    # -- shuffles ----------------------------------------------------------------------
    def _shuffled(self, split: Callable[..., list[Any]],
                  merge: Callable[[list[list[Any]]], Iterable[Any]], partitions: int | None,
                  name: str) -> Dataset:
        n = _partitions(partitions, self.flow._reducers(self.node.partitions))
        dep = ShuffleDependency(self.node, n, split)
        return Dataset(self.flow, ShuffledNode([dep], merge, name))

    def reduce_by_key(self, fn: Callable[[Any, Any], Any],
                      partitions: int | None = None) -> Dataset:
        """Pairs ``(k, v)`` -> one ``(k, fn(fn(v1, v2), v3)...)`` per key, combined on the
        map side before the shuffle."""
        return self._shuffled(parts.reduce_split(fn), parts.combine_merge(fn), partitions,
                              "reduce_by_key")

    def combine_by_key(self, create: Callable[[Any], Any],
                       merge_value: Callable[[Any, Any], Any],
                       merge_combiners: Callable[[Any, Any], Any],
                       partitions: int | None = None) -> Dataset:
        """Pairs ``(k, v)`` -> ``(k, combiner)``, as Spark's ``combineByKey``."""
        return self._shuffled(parts.combine_split(create, merge_value),
                              parts.combine_merge(merge_combiners), partitions,
                              "combine_by_key")

    def group_by_key(self, partitions: int | None = None) -> Dataset:
        """Pairs ``(k, v)`` -> ``(k, [v, ...])``, values in the order met."""
        return self._shuffled(parts.group_split, parts.group_merge, partitions,
                              "group_by_key")

    def join(self, other: Dataset, how: str = "inner",
             partitions: int | None = None) -> Dataset:
        """Pairs ``(k, (v, w))`` for each ``(k, v)`` here and ``(k, w)`` in ``other``;
        ``how="left_outer"`` also gives ``(k, (v, None))`` where ``other`` has no ``k``."""
        if how not in ("inner", "left_outer"):
            raise ValueError(f"join: how must be 'inner' or 'left_outer', not {how!r}")
        n = _partitions(partitions, self.flow._reducers(max(self.node.partitions,
                                                            other.node.partitions)))
        deps = [ShuffleDependency(self.node, n, parts.group_split),
                ShuffleDependency(other.node, n, parts.group_split)]
        return Dataset(self.flow, ShuffledNode(deps, parts.join_merge(how), f"join {how}"))

    def left_outer_join(self, other: Dataset, partitions: int | None = None) -> Dataset:
        return self.join(other, "left_outer", partitions)

    def distinct(self, partitions: int | None = None) -> Dataset:
        """Each record once (records must be hashable)."""
        pairs = self.map(lambda r: (r, None))
        return pairs._shuffled(parts.reduce_split(_first), parts.combine_merge(_first),
                               partitions, "distinct").keys()

    def repartition(self, partitions: int) -> Dataset:
        """The same records in ``partitions`` even partitions (a shuffle)."""
        return self._shuffled(parts.even_split, parts.chain_merge, partitions, "repartition")

    def sort_by(self, key: Callable[[Any], Any], ascending: bool = True,
                partitions: int | None = None) -> Dataset:
        """Sorted by ``key(record)``: range-partitioned (the ranges come from a sample,
        one small job run now), then sorted in each partition; a global order."""
        n = _partitions(partitions, self.node.partitions)
        per_partition = max(1, 20 * n // max(1, self.node.partitions))

        def sample(i: int, it: Iterator[Any]) -> list[Any]:
            keys = [key(r) for r in it]
            rng = random.Random(i)
            return rng.sample(keys, min(len(keys), per_partition))

        samples = self.flow._run(self.node, sample, None, "sort_by sample")
        bounds = parts.range_bounds([k for s in samples for k in s], n)
        return self._shuffled(parts.range_split(key, bounds, ascending),
                              parts.sort_merge(key, ascending), n, "sort_by")

    # -- persistence -------------------------------------------------------------------
    def persist(self) -> Dataset:
        """Keep the partitions in the executors' memory once computed (spilled to their
        sandboxes past a limit), for the next actions."""
        self.node.persisted = True
        return self

    cache = persist

    def unpersist(self) -> Dataset:
        """Drop the persisted partitions."""
        self.node.persisted = False
        self.flow._unpersist(self.node)
        return self

    # -- actions -----------------------------------------------------------------------
    def collect(self) -> list[Any]:
        """Every record, in partition order."""
        return [r for part in self.flow._run(self.node, _collect, None, "collect")
                for r in part]

    def count(self) -> int:
        return sum(self.flow._run(self.node, _count, None, "count"))

    def reduce(self, fn: Callable[[Any, Any], Any]) -> Any:
        """``fn`` folded over every record (ValueError when there is none)."""
        def fold(i: int, it: Iterator[Any]) -> tuple[bool, Any]:
            for first in it:
                return True, functools.reduce(fn, it, first)
            return False, None

        partials = [value for some, value in self.flow._run(self.node, fold, None, "reduce")
                    if some]
        if not partials:
            raise ValueError("reduce of an empty dataset")
        return functools.reduce(fn, partials)

    def take(self, n: int) -> list[Any]:
        """The first ``n`` records, reading as few partitions as it can."""
        out: list[Any] = []
        scanned, step = 0, 1
        total = self.node.partitions
        while len(out) < n and scanned < total:
            wanted = list(range(scanned, min(total, scanned + step)))
            got = self.flow._run(self.node, _head(n - len(out)), wanted, f"take {n}")
            for part in got:
                out.extend(part[: n - len(out)])
            scanned += len(wanted)
            step *= 4
        return out

    def first(self) -> Any:
        got = self.take(1)
        if not got:
            raise ValueError("first of an empty dataset")
        return got[0]

    def to_pandas(self) -> Any:
        """A pandas DataFrame of the records (tuples and dicts become columns)."""
        import pandas as pd

        return pd.DataFrame(self.collect())

    def save_text(self, directory: str) -> list[str]:
        """One file ``part-NNNNN`` per partition in ``directory`` (a path every executor
        sees), a line per record; the files' paths."""
        directory = os.path.abspath(directory)
        os.makedirs(directory, exist_ok=True)

        def write(i: int, it: Iterator[Any]) -> str:
            path = os.path.join(directory, f"part-{i:05d}")
            with open(path + ".tmp", "w") as f:
                for r in it:
                    f.write(f"{r}\n")
            os.replace(path + ".tmp", path)
            return path

        return self.flow._run(self.node, write, None, "save_text")

    def save_parquet(self, directory: str) -> list[str]:
        """One parquet file per partition in ``directory`` (pyarrow); records are dicts
        or tuples (columns ``0``, ``1``, ...)."""
        import pandas as pd

        from .dataframe import write_parquet

        def frames(i: int, it: Iterator[Any]) -> Iterable[Any]:
            rows = list(it)
            frame = pd.DataFrame(rows)
            frame.columns = [str(c) for c in frame.columns]
            return [frame]

        return write_parquet(self.flow, MapPartitionsNode(self.node, frames, "to frame"),
                             directory)


def _head(n: int) -> Callable[[int, Iterator[Any]], list[Any]]:
    return lambda i, it: list(itertools.islice(it, n))


def _first(a: Any, b: Any) -> Any:
    return a


def _partitions(given: int | None, default: int) -> int:
    n = default if given is None else given
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"partitions: expected a positive integer, not {given!r}")
    return n
