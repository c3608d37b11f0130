"""The dataflow framework on an embedded cluster: every transformation and action against
plain Python, on fixed and random (hypothesis) inputs; errors; persistence; records."""

from __future__ import annotations

import operator
import os
import subprocess
import sys
import traceback
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesonb import Cluster
from mesonb.frameworks.dataflow import Dataflow, RemoteTraceback
from mesonb.testing.processes import wait_for

pytestmark = pytest.mark.slow
HYPO = settings(max_examples=12, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def cluster():
    with Cluster.local(agents=2, resources="cpus:2;mem:2048;disk:2000") as c:
        yield c


@pytest.fixture(scope="module")
def flow(cluster):
    flow = cluster.dataflow(executors=2, cpus=1, mem="512MiB", progress=False)
    yield flow
    flow.close()


def test_registered_framework_and_executors(cluster, flow):
    assert flow.parallelize(range(10), 4).count() == 10
    frameworks = cluster.frameworks()
    assert "mesonb-dataflow" in set(frameworks["name"])
    wait_for(lambda: len(flow.pool.alive()) == 2, 30, what="two executors")

    def running():
        tasks = cluster.tasks(all_frameworks=True)
        mine = tasks[tasks["framework_id"] == flow.framework_id]
        return (mine,) if len(mine) == 2 and set(mine["state"]) == {"TASK_RUNNING"} else None

    [mine] = wait_for(running, 15, what="both executor tasks running")
    # one executor per agent, each a task of cpus=1
    assert mine["agent_id"].nunique() == 2


def test_narrow_transformations_and_actions(flow):
    data = list(range(-50, 150))
    ds = flow.parallelize(data, partitions=7)
    assert ds.map(lambda x: x * 3).collect() == [x * 3 for x in data]
    assert ds.filter(lambda x: x % 4 == 1).collect() == [x for x in data if x % 4 == 1]
    assert ds.flat_map(lambda x: [x] * (x % 3)).collect() == \
        [y for x in data for y in [x] * (x % 3)]
    assert ds.map_partitions(lambda it: [sum(it)]).collect() and \
        sum(ds.map_partitions(lambda it: [sum(it)]).collect()) == sum(data)
    assert ds.key_by(lambda x: x % 5).map_values(abs).collect() == \
        [(x % 5, abs(x)) for x in data]
    assert ds.count() == len(data)
    assert ds.reduce(operator.add) == sum(data)
    assert ds.take(3) == data[:3] and ds.first() == data[0]
    assert ds.take(1000) == data
    assert ds.union(flow.parallelize([1, 2], 1)).collect() == [*data, 1, 2]
    assert flow.parallelize([], 3).count() == 0
    with pytest.raises(ValueError):
        flow.parallelize([], 2).reduce(operator.add)
    frame = flow.parallelize([(1, "a"), (2, "b")], 2).to_pandas()
    assert frame.values.tolist() == [[1, "a"], [2, "b"]]


def test_shuffles_match_python(flow):
    words = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "the",
             "end"] * 7
    ds = flow.parallelize(words, 5)
    counts = dict(ds.map(lambda w: (w, 1)).reduce_by_key(operator.add, 3).collect())
    assert counts == Counter(words)
    grouped = dict(ds.key_by(len).group_by_key(4).collect())
    expected = defaultdict(list)
    for w in words:
        expected[len(w)].append(w)
    assert {k: sorted(v) for k, v in grouped.items()} == \
        {k: sorted(v) for k, v in expected.items()}
    assert sorted(ds.distinct().collect()) == sorted(set(words))
    left = flow.parallelize([(i % 4, i) for i in range(12)], 3)
    right = flow.parallelize([(k, str(k)) for k in (0, 1, 1, 9)], 2)
    inner = sorted(left.join(right).collect())
    assert inner == sorted((k, (v, w)) for k, v in [(i % 4, i) for i in range(12)]
                           for k2, w in [(0, "0"), (1, "1"), (1, "1"), (9, "9")] if k == k2)
    outer = sorted(left.join(right, how="left_outer").collect(), key=repr)
    assert len([x for x in outer if x[1][1] is None]) == 6  # keys 2 and 3
    values = [(i * 7919) % 101 for i in range(300)]
    assert flow.parallelize(values, 6).sort_by(lambda x: x).collect() == sorted(values)
    assert flow.parallelize(values, 6).sort_by(lambda x: x, ascending=False).collect() == \
        sorted(values, reverse=True)
    re = flow.parallelize(values, 6).repartition(4)
    assert re.partitions == 4 and sorted(re.collect()) == sorted(values)


@HYPO
@given(st.lists(st.tuples(st.integers(-5, 5), st.integers(-100, 100)), max_size=60),
       st.integers(1, 5), st.integers(1, 4))
def test_random_pairs(flow, pairs, parts, reducers):
    ds = flow.parallelize(pairs, parts)
    sums: dict[int, int] = defaultdict(int)
    for k, v in pairs:
        sums[k] += v
    assert dict(ds.reduce_by_key(operator.add, reducers).collect()) == dict(sums)
    assert ds.sort_by(lambda kv: kv, partitions=reducers).collect() == sorted(pairs)
    assert sorted(ds.distinct(reducers).collect()) == sorted(set(pairs))
    other = flow.parallelize([(k, k * 10) for k in range(-2, 3)], 2)
    assert sorted(ds.join(other, partitions=reducers).collect()) == \
        sorted((k, (v, k * 10)) for k, v in pairs if -2 <= k <= 2)


@HYPO
@given(st.lists(st.tuples(st.sampled_from("abcde"), st.integers(-1000, 1000),
                          st.floats(-1e3, 1e3, allow_nan=False)), min_size=1, max_size=80),
       st.integers(1, 4))
def test_dataframe_groupby_matches_pandas(flow, rows, parts):
    df = pd.DataFrame(rows, columns=["k", "v", "w"])
    spec = {"v": "sum", "w": "mean"}
    ours = flow.from_pandas(df, parts).groupby("k").agg(spec).to_pandas()
    pd.testing.assert_frame_equal(ours, df.groupby("k").agg(spec), check_exact=False)
    spec2 = {"v": ["count", "min", "max", "size"], "w": ["sum", "min"]}
    ours = flow.from_pandas(df, parts).groupby("k").agg(spec2).to_pandas()
    pd.testing.assert_frame_equal(ours, df.groupby("k").agg(spec2), check_exact=False)
    pd.testing.assert_series_equal(flow.from_pandas(df, parts).groupby("k").size().to_pandas(),
                                   df.groupby("k").size())


def test_dataframe_merge_assign_query(flow, tmp_path):
    left = pd.DataFrame({"k": [i % 7 for i in range(40)], "v": range(40)})
    right = pd.DataFrame({"k": [0, 1, 2, 3, 3], "name": list("abcdd")})
    ours = flow.from_pandas(left, 3).merge(flow.from_pandas(right, 2), on="k").to_pandas()
    want = left.merge(right, on="k")
    key = ["k", "v", "name"]
    pd.testing.assert_frame_equal(ours.sort_values(key).reset_index(drop=True),
                                  want.sort_values(key).reset_index(drop=True))
    ours = flow.from_pandas(left, 3).merge(flow.from_pandas(right, 2), on="k",
                                           how="left").to_pandas()
    want = left.merge(right, on="k", how="left")
    pd.testing.assert_frame_equal(ours.sort_values(key).reset_index(drop=True),
                                  want.sort_values(key).reset_index(drop=True))
    frame = flow.from_pandas(left, 4).assign(w=lambda f: f.v * 2).query("w > 20")
    pd.testing.assert_frame_equal(frame.to_pandas(), left.assign(w=left.v * 2).query("w > 20"))
    assert frame.count() == len(left.query("v > 10"))
    paths = frame.save_parquet(str(tmp_path / "pq"))
    assert len(paths) == 4
    back = flow.read_parquet(str(tmp_path / "pq"))
    assert back.partitions == 4
    pd.testing.assert_frame_equal(back.to_pandas().reset_index(drop=True),
                                  frame.to_pandas().reset_index(drop=True))


def test_text_and_save(flow, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = [f"line {i} " + "word " * (i % 5) for i in range(500)]
    for j in range(3):
        (corpus / f"f{j}.txt").write_text("\n".join(lines[j::3]) + "\n")
    ds = flow.text(str(corpus), split_size=1000)  # big files cut in several splits
    assert ds.partitions > 3
    assert sorted(ds.collect()) == sorted(lines)
    out = ds.filter(lambda line: "word" in line).save_text(str(tmp_path / "out"))
    written = [line for p in out for line in Path(p).read_text().splitlines()]
    assert sorted(written) == sorted(x for x in lines if "word" in x)
    assert sorted(flow.text(str(tmp_path / "out" / "part-*")).collect()) == sorted(written)
    flow.parallelize([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}], 2).save_parquet(
        str(tmp_path / "rows"))
    assert flow.read_parquet(str(tmp_path / "rows")).to_pandas()["a"].tolist() == [1, 2]
    with pytest.raises(FileNotFoundError):
        flow.text(str(tmp_path / "nothing-here"))


class Custom(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"code {code}")
        self.code = code


def _explode(x):
    if x == 13:
        raise Custom(13)
    return x


def test_task_exception_reaches_caller_and_context_stays_usable(flow):
    jobs_before = len(flow.jobs())
    with pytest.raises(Custom) as info:
        flow.parallelize(range(20), 4).map(_explode).collect()
    assert info.value.code == 13
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback) and "_explode" in str(cause)
    assert "_explode" in "".join(traceback.format_exception(info.value))
    jobs = flow.jobs()
    failed = jobs.iloc[jobs_before]
    assert failed.status == "failed" and failed.tasks_failed == 3  # 1 + retries=2
    assert flow.parallelize(range(20), 4).map(lambda x: x + 1).count() == 20


def test_retries_heal_a_flaky_task(flow, tmp_path):
    marker = str(tmp_path / "failed-once")

    def flaky(x):
        if x == 3 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("first try fails")
        return x

    assert flow.parallelize(range(8), 4).map(flaky).collect() == list(range(8))
    job = flow.jobs().iloc[-1]
    assert job.status == "succeeded" and job.tasks_failed == 1


def test_persist_computes_once_and_unpersist(flow, tmp_path):
    log = tmp_path / "computed"

    def note(x):
        with open(log, "a") as f:
            f.write(f"{x}\n")
        return x * 2

    ds = flow.parallelize(range(30), 3).map(note).persist()
    assert ds.count() == 30
    assert sorted(ds.collect()) == [x * 2 for x in range(30)]
    assert ds.reduce(operator.add) == sum(x * 2 for x in range(30))
    assert len(log.read_text().split()) == 30  # computed once, then read from memory
    assert flow.executors()["blocks"].sum() == 3
    ds.unpersist()
    assert ds.count() == 30
    assert len(log.read_text().split()) == 60


def test_shuffle_reused_and_recorded(flow):
    counts = flow.parallelize(range(1000), 4).map(lambda x: (x % 10, 1)).reduce_by_key(
        operator.add, 2)
    assert dict(counts.collect()) == {k: 100 for k in range(10)}
    stages = flow.stages()
    job = stages[stages.job_id == stages.job_id.max()]
    assert list(job.kind) == ["shuffle map", "result"]
    shuffle = job.iloc[0]
    assert shuffle.tasks_done == 4 and shuffle.bytes_written > 0
    assert job.iloc[1].bytes_read == shuffle.bytes_written
    assert counts.count() == 10  # a second action reuses the map outputs
    stages = flow.stages()
    assert list(stages[stages.job_id == stages.job_id.max()].kind) == ["result"]


def test_bad_arguments_fail_fast(cluster, flow):
    with pytest.raises(ValueError):
        flow.parallelize(range(3)).join(flow.parallelize(range(3)), how="cross")
    with pytest.raises(ValueError):
        Dataflow(cluster.address, executors=0)
    with pytest.raises(ValueError):
        Dataflow(cluster.address, mem="lots")
    with pytest.raises(KeyError):
        flow.from_pandas(pd.DataFrame({"a": [1]})).groupby("b")
    with pytest.raises(ValueError):
        flow.from_pandas(pd.DataFrame({"a": [1], "b": [2]})).groupby("a").agg({"b": "median"})


def test_executor_too_big_for_any_agent_fails_fast(cluster):
    with pytest.raises(ValueError, match="no agent can hold an executor of cpus=3"):
        Dataflow(cluster.address, cpus=3)


def test_idle_executors_are_given_back_and_come_back(cluster):
    with cluster.dataflow(name="idle-flow", executors=1, cpus=0.5, mem="256MiB",
                          idle_timeout=1.0, progress=False) as idle:
        assert idle.parallelize(range(5), 2).count() == 5
        [executor] = idle.pool.alive()
        wait_for(lambda: not idle.pool.alive(), 15, what="the idle executor to go")
        wait_for(lambda: task_state(cluster, executor.executor_id) == "TASK_KILLED", 15,
                 what="its task killed")
        assert idle.parallelize(range(7), 2).count() == 7  # a new executor for new work
        assert idle.pool.alive() and idle.pool.alive()[0] is not executor


def task_state(cluster, task_id):
    tasks = cluster.tasks(all_frameworks=True).set_index("task_id")
    return tasks["state"].get(task_id)


@pytest.mark.parametrize("script", ["wordcount.py", "groupby.py"])
def test_examples_run_as_scripts(cluster, flow, script):
    root = Path(__file__).resolve().parents[2]
    args = ["--rows", "100000"] if script == "groupby.py" else []
    done = subprocess.run([sys.executable, str(root / "examples" / script), "--master",
                           cluster.address, "--cpus", "0.25", *args],
                          capture_output=True, text=True, timeout=120, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    if script == "wordcount.py":
        assert "executor" in done.stdout and "took" in done.stdout
    else:
        assert "groups, equal to pandas" in done.stdout


def test_whole_text_files(flow, tmp_path):
    for i in range(3):
        (tmp_path / f"f{i}.txt").write_text(f"a b\nc {i}\n")
    records = flow.whole_text(str(tmp_path)).collect()
    assert [(Path(p).name, t) for p, t in records] == \
        [(f"f{i}.txt", f"a b\nc {i}\n") for i in range(3)]
    counts = flow.whole_text(str(tmp_path)).flat_map(lambda pt: Counter(pt[1].split()).items())
    assert dict(counts.reduce_by_key(operator.add).collect()) == \
        {"a": 3, "b": 3, "c": 3, "0": 1, "1": 1, "2": 1}


def _fail_fast_or_linger(x):
    import time

    if x == 0:
        raise ValueError("the first partition fails at once")
    time.sleep(0.05)  # the other partition is still running when the job fails
    return x


def _slowly(x):
    import time

    time.sleep(0.2)
    return x


def test_tasks_of_a_failed_job_do_not_leak_into_the_next(flow):
    with pytest.raises(ValueError):
        flow.parallelize(range(40), 2).map(_fail_fast_or_linger).collect()
    # The next job's partitions have the same numbers, and its partition 1 waits for a
    # slot while the failed job's partition 1 ends: only its own results count.
    assert flow.parallelize(range(100, 106), 2).map(_slowly).collect() == \
        list(range(100, 106))
