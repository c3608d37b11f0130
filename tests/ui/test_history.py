"""The recorded history is rotated by size, and a replay reads across the rotated files."""

from __future__ import annotations

import json

import pytest

from mesonb.master.cli import add_parser, config_from_args
from mesonb.master.http.ui_feed import MasterFeed
from mesonb.protocol.states import TaskState
from mesonb.testing.harness import MasterHarness, command_task
from mesonb.webui.cli import history_hub
from mesonb.webui.history import HistoryRecorder, history_files, parse_size, read_history
from mesonb.webui.hub import Hub
from mesonb.webui.model import TASK_INDEX, UiModel


def busy_master(tmp_path, **rotation):
    """A harness master whose UI records go to a history rotated as ``rotation`` says."""
    h = MasterHarness(max_completed_tasks_per_framework=10)  # the model stays small
    hub = Hub()
    feed = MasterFeed(h.master, hub)
    agent = h.add_agent("cpus:64;mem:65536", hostname="box1")
    fw = h.subscribe("demo")
    recorder = HistoryRecorder(tmp_path, h.master.id, **rotation)
    recorder.attach(hub, feed)
    return h, hub, feed, agent, fw, recorder


def run_tasks(h, fw, agent, first: int, count: int) -> None:
    for i in range(first, first + count):
        h.settle()
        offers = fw.offers()
        fw.call("ACCEPT", accept={"offer_ids": [o["id"] for o in offers[:1]], "operations": [
            {"type": "LAUNCH", "launch": {"task_infos": [
                command_task(f"t{i}", agent.agent_id, "cpus:0.1;mem:16")]}}],
            "filters": {"refuse_seconds": 0}})
        agent.update(fw.framework_id, f"t{i}", TaskState.TASK_RUNNING)
        state = TaskState.TASK_FAILED if i % 7 == 0 else TaskState.TASK_FINISHED
        agent.update(fw.framework_id, f"t{i}", state)


def test_history_rotates_by_size_keeps_n_files_and_replays_across_them(tmp_path):
    h, hub, feed, agent, fw, recorder = busy_master(tmp_path, max_size=8000, max_files=3)
    run_tasks(h, fw, agent, 0, 80)
    feed.sample()
    recorder.close()
    files = history_files(tmp_path)
    assert recorder.segment >= 4  # it rotated more often than it keeps files
    assert len(files) == 3  # the oldest were deleted
    assert [f.name for f in files] == [
        f"{recorder.run}-s{n:06d}.jsonl" for n in range(recorder.segment - 2,
                                                         recorder.segment + 1)]
    for path in files[:-1]:  # full ones: about max_size (a record may overshoot)
        assert 8000 <= path.stat().st_size < 9000
    # Each segment starts with the whole model, so the oldest kept one replays on its own.
    first = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert first[0]["type"] == "MASTER"
    # Read across the rotated files, the run replays to the model the master had.
    replayed = UiModel()
    replayed.apply_all(read_history(tmp_path))
    for name, table in hub.model.tables.items():
        assert replayed.tables[name].rows == table.rows, name
    tasks = replayed.tables["tasks"].rows
    assert tasks[f"{fw.framework_id} t79"][TASK_INDEX["state"]] == "TASK_FINISHED"
    assert tasks[f"{fw.framework_id} t77"][TASK_INDEX["state"]] == "TASK_FAILED"
    assert len(read_history(tmp_path)) == sum(
        len(f.read_text().splitlines()) for f in files)
    # `mesonb ui --history DIR` builds its pages from the same replay.
    served = history_hub(tmp_path).model
    assert served.tables["tasks"].rows == hub.model.tables["tasks"].rows
    feed.close()


def test_replay_takes_the_latest_run_and_survives_a_cut_segment(tmp_path):
    old_task = ["old", "old", "TASK_RUNNING", "F0", "A0", "", 1.0, None, None, None,
                0.1, 16, 0, 0, None]
    older = tmp_path / "history-20000101T000000-oldmaster-s000000.jsonl"
    older.write_text(json.dumps({"type": "ROWS", "table": "tasks", "rows": [old_task]}) + "\n")
    legacy = tmp_path / "history-19990101T000000-legacy.jsonl"  # before rotation existed
    legacy.write_text(older.read_text())
    h, hub, feed, agent, fw, recorder = busy_master(tmp_path, max_size=3000, max_files=10)
    run_tasks(h, fw, agent, 0, 20)
    recorder.close()
    files = history_files(tmp_path)
    assert files[:2] == [legacy, older] and len(files) >= 4
    mine = files[2:]
    # A crash while a segment was written leaves a cut line; the next segment goes on.
    mine[0].write_text(mine[0].read_text() + '{"type": "ROWS", "tab')
    replayed = UiModel()
    replayed.apply_all(read_history(tmp_path))
    assert replayed.tables["tasks"].rows == hub.model.tables["tasks"].rows  # not the old run
    assert read_history(legacy) == read_history(older)  # a file alone is its own run
    feed.close()


def test_a_segment_never_rotates_on_its_own_snapshot(tmp_path):
    # Smaller than the model: without a floor every record would start a new segment.
    h, hub, feed, agent, fw, recorder = busy_master(tmp_path, max_size=1, max_files=2)
    records: list[dict] = []
    hub.listeners.append(records.append)
    run_tasks(h, fw, agent, 0, 30)
    recorder.close()
    assert 1 <= recorder.segment <= len(records) // 4
    for path in history_files(tmp_path)[:-1]:
        lines = path.read_text().splitlines()
        model = [i for i, line in enumerate(lines) if json.loads(line)["type"] == "MASTER"]
        assert model[0] == 0 and len(lines) > 2 * len(model)  # changes after the model
    feed.close()


def test_history_rotation_flags():
    parser_of = __import__("argparse").ArgumentParser()
    add_parser(parser_of.add_subparsers())

    def parse(*args: str):
        return config_from_args(parser_of.parse_args(["master", *args]))

    config = parse()
    assert (config.history_max_size, config.history_max_files) == (64 * 1024 ** 2, 4)
    config = parse("--history-max-size", "512KB", "--history-max-files", "2")
    assert (config.history_max_size, config.history_max_files) == (512 * 1024, 2)
    for bad in (["--history-max-size", "12XB"], ["--history-max-size", "0"],
                ["--history-max-files", "0"], ["--history-max-files", "two"]):
        with pytest.raises(SystemExit):
            parse(*bad)
    assert parse_size("1gb") == 1024 ** 3 and parse_size("100") == 100
    with pytest.raises(ValueError, match="not a size"):
        parse_size("-1MB")
