"""How records are split into shuffle buckets (map side) and merged (reduce side).

Each ``*_split`` builds the ``split(records, n) -> buckets`` of a
:class:`~.lineage.ShuffleDependency`; each ``*_merge`` the reduce side's
``merge(buckets_per_dep) -> records``. Keys go to bucket ``hash(key) % n``: executors run
with one ``PYTHONHASHSEED``, so a key lands in the same bucket whichever executor maps it
(as PySpark requires). Splits are deterministic, so a map partition recomputed after a
loss writes the same buckets as before.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_MISSING = object()


def _bucket(combined: dict[Any, Any], n: int) -> list[Any]:
    """One dict per reduce partition: each key in bucket ``hash(key) % n``."""
    if n == 1:
        return [combined]
    buckets: list[dict[Any, Any]] = [{} for _ in range(n)]
    for k, c in combined.items():
        buckets[hash(k) % n][k] = c
    return buckets


def combine_split(create: Callable[[Any], Any],
                  merge_value: Callable[[Any, Any], Any]) -> Callable[..., list[Any]]:
    """Pairs ``(k, v)`` combined per key (the map-side combine), then put in buckets: a
    key is hashed once per map partition, not once per record."""

    def split(records: Iterator[tuple[Any, Any]], n: int) -> list[Any]:
        combined: dict[Any, Any] = {}
        for k, v in records:
            if k in combined:
                combined[k] = merge_value(combined[k], v)
            else:
                combined[k] = create(v)
        return _bucket(combined, n)

    return split


def reduce_split(fn: Callable[[Any, Any], Any]) -> Callable[..., list[Any]]:
    """The map-side combine of ``reduce_by_key(fn)``."""

    def split(records: Iterator[tuple[Any, Any]], n: int) -> list[Any]:
        combined: dict[Any, Any] = {}
        get = combined.get
        missing = _MISSING
        for k, v in records:
            old = get(k, missing)
            combined[k] = v if old is missing else fn(old, v)
        return _bucket(combined, n)

    return split


def combine_merge(merge_combiners: Callable[[Any, Any], Any]
                  ) -> Callable[[list[list[Any]]], Iterable[Any]]:
    """Reduce side of a combine: one dict of every bucket's combiners, merged per key."""

    def merge(buckets: list[list[Any]]) -> Iterable[Any]:
        out: dict[Any, Any] = {}
        for bucket in buckets[0]:
            if not out:
                out = dict(bucket)
                continue
            for k, c in bucket.items():
                out[k] = merge_combiners(out[k], c) if k in out else c
        return out.items()

    return merge


def group_split(records: Iterator[tuple[Any, Any]], n: int) -> list[Any]:
    """Values listed per key, then put in buckets."""
    grouped: dict[Any, list[Any]] = {}
    for k, v in records:
        if k in grouped:
            grouped[k].append(v)
        else:
            grouped[k] = [v]
    return _bucket(grouped, n)


def _concat(a: list[Any], b: list[Any]) -> list[Any]:
    a.extend(b)
    return a


group_merge = combine_merge(_concat)


def join_merge(how: str) -> Callable[[list[list[Any]]], Iterable[Any]]:
    """Reduce side of a join of two grouped shuffles: ``(k, (v, w))`` per matching pair;
    ``left_outer`` keeps left keys without a match as ``(k, (v, None))``."""

    def merge(buckets: list[list[Any]]) -> Iterator[Any]:
        left = group_merge([buckets[0]])
        right = dict(group_merge([buckets[1]]))
        for k, vs in left:
            ws = right.get(k)
            if ws is None:
                if how == "left_outer":
                    for v in vs:
                        yield k, (v, None)
                continue
            for v in vs:
                for w in ws:
                    yield k, (v, w)

    return merge


def even_split(records: Iterator[Any], n: int) -> list[Any]:
    """Contiguous, even slices of the records (``repartition``)."""
    items = list(records)
    size = len(items)
    return [items[i * size // n:(i + 1) * size // n] for i in range(n)]


def chain_merge(buckets: list[list[Any]]) -> Iterator[Any]:
    for bucket in buckets[0]:
        yield from bucket


def range_split(key: Callable[[Any], Any], bounds: list[Any],
                ascending: bool) -> Callable[..., list[Any]]:
    """Records into ranges of ``key`` cut at ``bounds`` (``sort_by``); a descending sort
    puts the largest range first."""

    def split(records: Iterator[Any], n: int) -> list[Any]:
        buckets: list[list[Any]] = [[] for _ in range(n)]
        for r in records:
            i = bisect.bisect_left(bounds, key(r))
            buckets[i if ascending else n - 1 - i].append(r)
        return buckets

    return split


def sort_merge(key: Callable[[Any], Any], ascending: bool
               ) -> Callable[[list[list[Any]]], Iterable[Any]]:
    def merge(buckets: list[list[Any]]) -> Iterable[Any]:
        items = [r for bucket in buckets[0] for r in bucket]
        items.sort(key=key, reverse=not ascending)
        return items

    return merge


def range_bounds(sample: list[Any], n: int) -> list[Any]:
    """``n - 1`` cut points that split the sorted ``sample`` evenly."""
    sample = sorted(sample)
    if not sample or n <= 1:
        return []
    return [sample[len(sample) * i // n] for i in range(1, n)]
