"""The dataflow framework's pure parts: shuffle split/merge against plain Python (hypothesis),
text splits that give every line once, the block store's spill, lineage walks, remote
exceptions."""

from __future__ import annotations

import operator
import pickle
from collections import defaultdict

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from mesonb.frameworks.dataflow import partitioning as parts
from mesonb.frameworks.dataflow.blocks import BlockStore
from mesonb.frameworks.dataflow.dataframe import hash_split
from mesonb.frameworks.dataflow.lineage import (
    MapPartitionsNode,
    ShuffleDependency,
    ShuffledNode,
    SourceNode,
    TextNode,
    UnionNode,
    text_splits,
    walk_narrow,
)
from mesonb.frameworks.dataflow.remote import RemoteError, RemoteTraceback, remote_exception

pairs = st.lists(st.tuples(st.integers(-20, 20), st.integers(-1000, 1000)), max_size=100)


def shuffle(maps, split, merge, n):
    """Run split on each map partition and merge per reduce partition, as the executors do."""
    outputs = [pickle.loads(pickle.dumps(split(iter(m), n))) for m in maps]
    return [list(merge([[out[r] for out in outputs]])) for r in range(n)]


@given(st.lists(pairs, min_size=1, max_size=4), st.integers(1, 5))
def test_reduce_by_key_equals_python(maps, n):
    result = shuffle(maps, parts.reduce_split(operator.add), parts.combine_merge(operator.add), n)
    expected: dict[int, int] = defaultdict(int)
    for m in maps:
        for k, v in m:
            expected[k] += v
    flat = [kv for r in result for kv in r]
    assert dict(flat) == dict(expected) and len(flat) == len(expected)
    for r, bucket in enumerate(result):  # every key in the bucket of its hash
        assert all(hash(k) % n == r for k, _ in bucket)


@given(st.lists(pairs, min_size=1, max_size=4), st.integers(1, 5))
def test_group_by_key_keeps_values_in_map_order(maps, n):
    result = shuffle(maps, parts.group_split, parts.group_merge, n)
    expected = defaultdict(list)
    for m in maps:
        for k, v in m:
            expected[k].append(v)
    assert {k: vs for r in result for k, vs in r} == dict(expected)


@given(st.lists(st.lists(st.integers(-50, 50), max_size=30), min_size=1, max_size=4),
       st.integers(1, 5), st.booleans())
def test_range_partitioned_sort_is_a_global_order(maps, n, ascending):
    bounds = parts.range_bounds([x for m in maps for x in m], n)
    result = shuffle(maps, parts.range_split(lambda x: x, bounds, ascending),
                     parts.sort_merge(lambda x: x, ascending), n)
    flat = [x for r in result for x in r]
    assert flat == sorted((x for m in maps for x in m), reverse=not ascending)


@given(st.lists(pairs, min_size=1, max_size=3), st.lists(pairs, min_size=1, max_size=3),
       st.integers(1, 4), st.sampled_from(["inner", "left_outer"]))
def test_join_equals_python(left, right, n, how):
    ls = [pickle.loads(pickle.dumps(parts.group_split(iter(m), n))) for m in left]
    rs = [pickle.loads(pickle.dumps(parts.group_split(iter(m), n))) for m in right]
    merge = parts.join_merge(how)
    got = sorted(x for r in range(n) for x in merge([[o[r] for o in ls], [o[r] for o in rs]]))
    lflat = [kv for m in left for kv in m]
    rflat = [kv for m in right for kv in m]
    want = [(k, (v, w)) for k, v in lflat for k2, w in rflat if k == k2]
    if how == "left_outer":
        keys = {k for k, _ in rflat}
        want += [(k, (v, None)) for k, v in lflat if k not in keys]
    assert got == sorted(want, key=repr) or got == sorted(want)


@given(st.lists(st.integers(), max_size=50), st.integers(1, 6))
def test_even_split_keeps_order(items, n):
    buckets = parts.even_split(iter(items), n)
    assert len(buckets) == n and [x for b in buckets for x in b] == items
    assert max(map(len, buckets)) - min(map(len, buckets)) <= 1


@settings(max_examples=40)
@given(st.lists(st.text(alphabet="ab \t", max_size=12), max_size=40), st.integers(1, 30),
       st.booleans())
def test_text_splits_give_every_line_once(tmp_path_factory, lines, split_size, trailing):
    path = tmp_path_factory.mktemp("text") / "f.txt"
    text = "\n".join(lines) + ("\n" if trailing and lines else "")
    path.write_text(text)
    node = TextNode(text_splits([str(path)], split_size))
    got = [line for p in range(node.partitions) for line in node.compute(p, None)]  # type: ignore[arg-type]
    assert got == text.splitlines()


def test_hash_split_sends_equal_keys_together():
    frame = pd.DataFrame({"k": [1, 2, 3, 1, 2, 3, 4], "v": range(7)})
    buckets = hash_split(["k"])(iter([frame.iloc[:4], frame.iloc[4:]]), 3)
    assert sum(len(b) for b in buckets) == 7
    homes = {k: [i for i, b in enumerate(buckets) if k in set(b.k)] for k in (1, 2, 3, 4)}
    assert all(len(h) == 1 for h in homes.values())
    narrow = pd.DataFrame({"k": pd.array([1, 2, 3, 4], dtype="int32")})
    narrow_buckets = hash_split(["k"])(iter([narrow]), 3)  # a merge's other side
    assert {k: [i for i, b in enumerate(narrow_buckets) if k in set(b.k)]
            for k in (1, 2, 3, 4)} == homes
    text = pd.DataFrame({"k": ["a", "b", "a"], "v": [1, 2, 3]})
    homes_of_a = {i for i, b in enumerate(hash_split(["k"])(iter([text]), 4)) if "a" in set(b.k)}
    assert len(homes_of_a) == 1  # strings: one bucket per key too


def test_block_store_spills_past_its_limit(tmp_path):
    store = BlockStore(str(tmp_path / "blocks"), limit=1500)
    blocks = {i: list(range(i * 100, i * 100 + 200)) for i in range(5)}
    for i, records in blocks.items():
        store.put((7, i), records)
    assert store.used <= 1500 and store.on_disk  # the oldest went to disk
    assert all(store.get((7, i)) == records for i, records in blocks.items())
    big = list(range(10_000))
    store.put((8, 0), big)
    assert (8, 0) in store.on_disk and store.get((8, 0)) == big
    store.drop(datasets=[7])
    assert store.get((7, 0)) is None and store.get((8, 0)) == big
    store.close()
    assert not (tmp_path / "blocks").exists()


def test_walk_narrow_stops_at_shuffles():
    a, b = SourceNode([[1], [2]]), SourceNode([[3]])
    union = UnionNode([a, b])
    mapped = MapPartitionsNode(union, lambda i, it: it, "map")
    assert {(n.id, p) for n, p in walk_narrow(mapped, 2)} == {(mapped.id, 2), (union.id, 2),
                                                              (b.id, 0)}
    dep = ShuffleDependency(mapped, 2, parts.even_split)
    shuffled = ShuffledNode([dep], parts.chain_merge, "repartition")
    assert [n for n, _ in walk_narrow(shuffled, 0)] == [shuffled]
    assert shuffled.shuffle_deps() == [dep]
    assert pickle.loads(pickle.dumps(dep)).parent is None  # the map stage ships the parent
    assert pickle.loads(pickle.dumps(a)).slices is None  # each task gets its own slice


class Odd(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(a + b)


def test_remote_exception_keeps_type_and_traceback():
    exc = remote_exception(pickle.dumps(KeyError("k")), "builtins.KeyError", "Trace\nKeyError")
    assert isinstance(exc, KeyError) and isinstance(exc.__cause__, RemoteTraceback)
    assert "Trace" in str(exc.__cause__)
    exc = remote_exception(None, "x.Unpicklable", "Traceback...\nx.Unpicklable: boom")
    assert isinstance(exc, RemoteError) and "Unpicklable" in str(exc)


def test_terminal_progress_is_a_tqdm_bar(capsys):
    from mesonb.frameworks.dataflow.progress import TextView, view_for
    from mesonb.frameworks.dataflow.record import JobRecord

    record = JobRecord(3, "count", 0.0, tasks_total=4)
    assert view_for(record, False) is None
    view = view_for(record, True)  # forced: stderr is not a terminal under pytest
    assert isinstance(view, TextView)
    record.tasks_done = 4
    record.status = "succeeded"
    view.close(record)
    assert view.bar.n == 4 and "job 3 count" in capsys.readouterr().err
