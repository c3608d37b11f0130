"""The lineage graph: how each partition of a dataset is computed from its parents.

A :class:`Node` is one dataset of the graph, with a number of partitions and a
``compute(partition, ctx)`` that yields the partition's records. Nodes reach their parents
in two ways:

* *narrow*: partition ``i`` needs a few known partitions of a parent
  (:meth:`Node.narrow_parents`): ``map``, ``filter``, ``union`` ... run in the same task,
  pipelined, as in Spark;
* *shuffle*: a partition needs a bucket of every partition of the parent
  (:class:`ShuffleDependency`); the DAG scheduler cuts a stage there, and the parent's
  partitions are computed by map tasks that write their buckets into the executor's
  sandbox.

Nodes travel to executors with cloudpickle. What only the driver holds stays behind: the
data of ``parallelize`` partitions (sent with the task that reads it) and, across a
shuffle, the parent graph (the map stage ships it).

On an executor, ``ctx`` is the task's :class:`TaskContext`: the source inputs it was
sent, a fetcher for shuffle buckets, and the block store of persisted partitions.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

_ids = itertools.count(1)
_shuffle_ids = itertools.count(1)


class TaskContext(Protocol):
    """What a task running on an executor offers the nodes it computes."""

    partition: int

    def input(self, node_id: int, partition: int) -> Any: ...

    def fetch(self, shuffle_id: int, partition: int) -> list[Any]: ...

    def cached(self, node: Node, partition: int) -> list[Any] | None: ...

    def store(self, node: Node, partition: int, records: list[Any]) -> None: ...


class Node:
    """One dataset in the lineage graph (see the module docstring)."""

    def __init__(self, partitions: int, name: str) -> None:
        self.id = next(_ids)
        self.partitions = partitions
        self.name = name
        self.persisted = False

    def narrow_parents(self, partition: int) -> list[tuple[Node, int]]:
        """The parents' partitions that ``partition`` is computed from, in this task."""
        return []

    def shuffle_deps(self) -> list[ShuffleDependency]:
        """The shuffles this node reads (a stage boundary each)."""
        return []

    def narrow_nodes(self) -> list[Node]:
        """The parents computed in the same task as this node."""
        return []

    def compute(self, partition: int, ctx: TaskContext) -> Iterator[Any]:
        raise NotImplementedError

    def iterator(self, partition: int, ctx: TaskContext) -> Iterator[Any]:
        """The partition's records: from the block store when persisted and kept there,
        else computed (and stored, when persisted)."""
        if not self.persisted:
            return self.compute(partition, ctx)
        records = ctx.cached(self, partition)
        if records is None:
            records = list(self.compute(partition, ctx))
            ctx.store(self, partition, records)
        return iter(records)

    def __repr__(self) -> str:
        return f"<{self.name} #{self.id}: {self.partitions} partitions>"


class SourceNode(Node):
    """Records held by the driver (``parallelize``, ``from_pandas``): each task is sent the
    data of the partition it reads, never the whole."""

    def __init__(self, slices: list[Any], name: str = "parallelize") -> None:
        super().__init__(len(slices), name)
        self.slices = slices

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["slices"] = None
        return state

    def compute(self, partition: int, ctx: TaskContext) -> Iterator[Any]:
        return iter(ctx.input(self.id, partition))


class TextNode(Node):
    """Lines of text files; ``splits`` are ``(path, start, end)`` byte ranges, a line
    belonging to the split where it starts."""

    def __init__(self, splits: list[tuple[str, int, int]]) -> None:
        super().__init__(len(splits), "text")
        self.splits = splits

    def compute(self, partition: int, ctx: TaskContext) -> Iterator[str]:
        path, start, end = self.splits[partition]
        with open(path, "rb") as f:
            if start:
                f.seek(start - 1)
                f.readline()  # the line running into this split belongs to the one before
            pos = f.tell()
            data = f.read(max(0, end - pos)) if pos < end else b""
            if data and not data.endswith(b"\n"):
                data += f.readline()
        return iter(data.decode("utf-8", errors="replace").splitlines())


class WholeTextNode(Node):
    """One record ``(path, text)`` per file, a partition per file (Spark's
    ``wholeTextFiles``)."""

    def __init__(self, files: list[str]) -> None:
        super().__init__(len(files), "whole_text")
        self.files = files

    def compute(self, partition: int, ctx: TaskContext) -> Iterator[tuple[str, str]]:
        path = self.files[partition]
        with open(path, encoding="utf-8", errors="replace") as f:
            yield path, f.read()


class ParquetNode(Node):
    """One pandas DataFrame per parquet file (pyarrow)."""

    def __init__(self, files: list[str], columns: list[str] | None = None) -> None:
        super().__init__(len(files), "read_parquet")
        self.files = files
        self.columns = columns

    def compute(self, partition: int, ctx: TaskContext) -> Iterator[Any]:
        import pyarrow.parquet as pq

        yield pq.read_table(self.files[partition], columns=self.columns).to_pandas()


class MapPartitionsNode(Node):
    """``fn(partition_index, records) -> records`` over the parent's same partition."""

    def __init__(self, parent: Node, fn: Callable[[int, Iterator[Any]], Iterable[Any]],
                 name: str) -> None:
        super().__init__(parent.partitions, name)
        self.parent = parent
        self.fn = fn

    def narrow_parents(self, partition: int) -> list[tuple[Node, int]]:
        return [(self.parent, partition)]

    def narrow_nodes(self) -> list[Node]:
        return [self.parent]

    def compute(self, partition: int, ctx: TaskContext) -> Iterator[Any]:
        return iter(self.fn(partition, self.parent.iterator(partition, ctx)))


class UnionNode(Node):
    """The partitions of each parent, one after the other."""

    def __init__(self, parents: list[Node]) -> None:
        super().__init__(sum(p.partitions for p in parents), "union")
        self.parents = parents

    def _locate(self, partition: int) -> tuple[Node, int]:
        for parent in self.parents:
            if partition < parent.partitions:
                return parent, partition
            partition -= parent.partitions
        raise IndexError(partition)

    def narrow_parents(self, partition: int) -> list[tuple[Node, int]]:
        return [self._locate(partition)]

    def narrow_nodes(self) -> list[Node]:
        return list(self.parents)

    def compute(self, partition: int, ctx: TaskContext) -> Iterator[Any]:
        parent, index = self._locate(partition)
        return parent.iterator(index, ctx)


class ShuffleDependency:
    """A shuffle of ``parent`` into ``partitions`` buckets: a map task runs
    ``split(records, partitions)`` over one parent partition and gets one picklable bucket
    per reduce partition (combined already, for a map-side combine)."""

    def __init__(self, parent: Node, partitions: int,
                 split: Callable[[Iterator[Any], int], list[Any]]) -> None:
        self.shuffle_id = next(_shuffle_ids)
        self.parent = parent
        self.partitions = partitions
        self.split = split

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["parent"] = None  # the map stage ships the parent graph; readers need none
        return state

    def __repr__(self) -> str:
        return f"<shuffle {self.shuffle_id} of {self.parent!r} into {self.partitions}>"


class ShuffledNode(Node):
    """Reads one bucket from every map output of each of ``deps`` and makes records with
    ``merge(buckets_per_dep)`` (a list, one list of buckets per dependency)."""

    def __init__(self, deps: list[ShuffleDependency],
                 merge: Callable[[list[list[Any]]], Iterable[Any]], name: str) -> None:
        assert len({d.partitions for d in deps}) == 1
        super().__init__(deps[0].partitions, name)
        self.deps = deps
        self.merge = merge

    def shuffle_deps(self) -> list[ShuffleDependency]:
        return self.deps

    def compute(self, partition: int, ctx: TaskContext) -> Iterator[Any]:
        buckets = [ctx.fetch(dep.shuffle_id, partition) for dep in self.deps]
        return iter(self.merge(buckets))


def text_splits(paths: list[str], split_size: int) -> list[tuple[str, int, int]]:
    """One split per file, files over ``split_size`` bytes cut into several."""
    splits = []
    for path in paths:
        size = os.path.getsize(path)
        count = max(1, -(-size // split_size))
        step = -(-size // count) if size else 0
        for i in range(count):
            splits.append((path, i * step, min(size, (i + 1) * step)))
    return splits


def walk_narrow(node: Node, partition: int) -> Iterator[tuple[Node, int]]:
    """``(node, partition)`` and every parent partition it reaches without a shuffle."""
    stack = [(node, partition)]
    seen = set()
    while stack:
        item = stack.pop()
        if (item[0].id, item[1]) in seen:
            continue
        seen.add((item[0].id, item[1]))
        yield item
        stack.extend(item[0].narrow_parents(item[1]))


class MapWork:
    """A shuffle map stage's work: split a partition of ``node`` into ``dep``'s buckets."""

    def __init__(self, node: Node, dep: ShuffleDependency) -> None:
        self.node = node
        self.dep = dep


class ResultWork:
    """A result stage's work: ``func(partition, records)``, whose value goes to the driver."""

    def __init__(self, node: Node, func: Callable[[int, Iterator[Any]], Any]) -> None:
        self.node = node
        self.func = func
