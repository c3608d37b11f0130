"""Operator answers -> rows -> typed DataFrames (no cluster)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mesonb.client import state


def res(**scalars):
    return [{"name": k, "type": "SCALAR", "scalar": {"value": v}} for k, v in scalars.items()]


AGENTS = {"agents": [{
    "agent_info": {"id": {"value": "A1"}, "hostname": "h1", "port": 5051},
    "active": True, "registered_time": {"nanoseconds": 1_700_000_000_000_000_000},
    "total_resources": res(cpus=2, mem=4096, disk=1000),
    "allocated_resources": res(cpus=0.5, mem=512),
    "offered_resources": res(cpus=1.5),
}]}
FRAMEWORKS = {"frameworks": [{
    "framework_info": {"id": {"value": "F1"}, "name": "fw", "user": "me", "roles": ["*"]},
    "active": True, "connected": True, "registered_time": {"nanoseconds": 1_700_000_000 * 10**9},
    "allocated_resources": res(cpus=0.5, mem=512),
    "offers": [{"id": {"value": "O1"}, "framework_id": {"value": "F1"},
                "agent_id": {"value": "A1"}, "hostname": "h1",
                "allocation_info": {"role": "*"}, "resources": res(cpus=1.5, mem=3584)}],
}], "completed_frameworks": []}
TASKS = {"tasks": [{
    "task_id": {"value": "t1"}, "name": "square", "framework_id": {"value": "F1"},
    "agent_id": {"value": "A1"}, "state": "TASK_RUNNING", "resources": res(cpus=0.5, mem=512),
    "statuses": [{"state": "TASK_STARTING", "timestamp": 1_700_000_001.0},
                 {"state": "TASK_RUNNING", "timestamp": 1_700_000_002.5}],
}], "completed_tasks": [{
    "task_id": {"value": "t0"}, "name": "echo", "framework_id": {"value": "F2"},
    "agent_id": {"value": "A1"}, "state": "TASK_FAILED", "resources": res(cpus=0.1),
    "statuses": [{"state": "TASK_FAILED", "timestamp": 1_700_000_000.0,
                  "message": "Command exited with status 3",
                  "reason": "REASON_COMMAND_EXECUTOR_FAILED"}],
}]}


def test_agents_frame_has_typed_totals_allocated_offered_used():
    df = state.frame(state.agent_records(AGENTS, {"A1": {"cpus": 0.4, "mem": 100.0}}),
                     state.AGENT_COLUMNS)
    assert list(df.columns) == list(state.AGENT_COLUMNS)
    row = df.iloc[0]
    assert (row.cpus_total, row.cpus_allocated, row.cpus_offered, row.cpus_used) == \
        (2.0, 0.5, 1.5, 0.4)
    assert row.gpus_total == 0.0
    for column, kind in state.AGENT_COLUMNS.items():
        if kind == "float":
            assert df[column].dtype == "float64", column
    assert pd.api.types.is_datetime64_any_dtype(df.registered_time)
    assert df.registered_time.iloc[0] == pd.Timestamp("2023-11-14 22:13:20", tz="UTC")


def test_unknown_used_is_nan():
    df = state.frame(state.agent_records(AGENTS), state.AGENT_COLUMNS)
    assert df.cpus_used.isna().all()


def test_tasks_frame_joins_hostnames_and_framework_names_and_times():
    rows = state.task_records(TASKS, AGENTS, FRAMEWORKS)
    df = state.frame(rows, state.TASK_COLUMNS)
    assert set(df.task_id) == {"t1", "t0"}
    t1 = df.set_index("task_id").loc["t1"]
    assert (t1.hostname, t1.framework, t1.cpus, t1.mem) == ("h1", "fw", 0.5, 512.0)
    assert pd.api.types.is_datetime64_any_dtype(df.staged_time)
    assert pd.api.types.is_datetime64_any_dtype(df.updated_time)
    assert (t1.updated_time - t1.staged_time).total_seconds() == pytest.approx(1.5)
    assert df.cpus.dtype == "float64"
    assert df.groupby("state").size().to_dict() == {"TASK_FAILED": 1, "TASK_RUNNING": 1}
    failed = df.query("state == 'TASK_FAILED'").iloc[0]
    assert failed.message == "Command exited with status 3"


def test_tasks_of_one_framework():
    rows = state.task_records(TASKS, AGENTS, FRAMEWORKS, framework_id="F2")
    assert [r["task_id"] for r in rows] == ["t0"]


def test_frameworks_and_offers_frames():
    fw = state.frame(state.framework_records(FRAMEWORKS), state.FRAMEWORK_COLUMNS)
    first = fw.iloc[0]
    assert (first["framework_id"], first["name"], first["offers"]) == ("F1", "fw", 1)
    assert fw.cpus_allocated.dtype == "float64"
    offers = state.frame(state.offer_records(FRAMEWORKS), state.OFFER_COLUMNS)
    assert offers.iloc[0].offer_id == "O1" and offers.iloc[0].mem == 3584.0


def test_empty_frames_keep_their_columns_and_dtypes():
    for columns in (state.AGENT_COLUMNS, state.TASK_COLUMNS, state.FRAMEWORK_COLUMNS,
                    state.OFFER_COLUMNS):
        df = state.frame([], columns)
        assert list(df.columns) == list(columns) and df.empty
        for column, kind in columns.items():
            if kind == "float":
                assert df[column].dtype == "float64"
            if kind == "time":
                assert pd.api.types.is_datetime64_any_dtype(df[column])


KINDS = {"float": "float64", "int": "int64", "bool": "bool"}


def assert_typed(df, columns):
    """Every column has its kind's dtype; text is pandas' string dtype, never object."""
    assert list(df.columns) == list(columns)
    for column, kind in columns.items():
        dtype = df[column].dtype
        if kind == "str":
            assert isinstance(dtype, pd.StringDtype), (column, dtype)
            assert not pd.api.types.is_object_dtype(dtype), column
            assert pd.api.types.is_string_dtype(dtype), column
        elif kind == "time":
            assert dtype == "datetime64[ns, UTC]", (column, dtype)
        else:
            assert dtype == KINDS[kind], (column, dtype)


@pytest.mark.parametrize("rows", ["full", "empty"])
def test_every_column_of_the_four_frames_has_its_dtype(rows):
    frames = {
        "agents": (state.agent_records(AGENTS, {"A1": {"cpus": 0.4, "mem": 1.0}}),
                   state.AGENT_COLUMNS),
        "tasks": (state.task_records(TASKS, AGENTS, FRAMEWORKS), state.TASK_COLUMNS),
        "frameworks": (state.framework_records(FRAMEWORKS), state.FRAMEWORK_COLUMNS),
        "offers": (state.offer_records(FRAMEWORKS), state.OFFER_COLUMNS),
    }
    for name, (records, columns) in frames.items():
        df = state.frame(records if rows == "full" else [], columns)
        assert len(df) == (len(records) if rows == "full" else 0), name
        assert_typed(df, columns)
    tasks = state.frame(frames["tasks"][0], state.TASK_COLUMNS)
    assert tasks.task_id.str.startswith("t").all()  # the string accessor works
    major = int(pd.__version__.split(".")[0])
    assert str(tasks.name.dtype) == ("str" if major >= 3 else "string")


def test_measured_usage_disk_and_gpus():
    metrics = {"slave/cpus_usage": 0.25, "slave/mem_usage": 300.0}
    used = state.measured_used(metrics, [], gpus_total=0.0)
    assert (used["cpus"], used["mem"], used["gpus"]) == (0.25, 300.0, 0.0)
    assert math.isnan(used["disk"])  # no executor reports disk_used_bytes
    stats = [{"executor_id": "e1", "statistics": {"disk_used_bytes": 3 * 2**20}},
             {"executor_id": "e2", "statistics": {"disk_used_bytes": 2**20,
                                                  "mem_rss_bytes": 1}},
             {"executor_id": "e3", "statistics": {"mem_rss_bytes": 1}}]
    used = state.measured_used(metrics, stats, gpus_total=2.0)
    assert used["disk"] == 4.0
    assert math.isnan(used["gpus"])  # an agent with GPUs does not measure them
    assert math.isnan(state.measured_used({}, None, 0.0)["cpus"])
    df = state.frame(state.agent_records(AGENTS, {"A1": used}), state.AGENT_COLUMNS)
    assert df.disk_used.iloc[0] == 4.0 and df.gpus_used.isna().all()


def test_frames_plot_with_matplotlib_agg():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agents = state.frame(state.agent_records(AGENTS, {"A1": {"cpus": 0.4, "mem": 1.0}}),
                         state.AGENT_COLUMNS)
    tasks = state.frame(state.task_records(TASKS, AGENTS, FRAMEWORKS), state.TASK_COLUMNS)
    try:
        ax = agents.plot.barh(x="hostname", y=["cpus_total", "cpus_allocated", "cpus_used"])
        assert [t.get_text() for t in ax.get_yticklabels()] == ["h1"]
        assert len(ax.patches) == 3
        ax = tasks.groupby("state").size().plot.bar()
        assert sorted(t.get_text() for t in ax.get_xticklabels()) == [
            "TASK_FAILED", "TASK_RUNNING"]
        ax = tasks.plot.scatter(x="updated_time", y="cpus")
        assert ax.collections
    finally:
        plt.close("all")
