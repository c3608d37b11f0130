"""The web UI's feed and history on a real Master in memory (no browser, no sockets)."""

from __future__ import annotations

import asyncio
import json

from mesonb.local import LocalCluster
from mesonb.master.http.ui_feed import MasterFeed
from mesonb.protocol.states import Reason, TaskState
from mesonb.testing.harness import MasterHarness, command_task
from mesonb.webui.history import HistoryRecorder, read_history
from mesonb.webui.hub import Hub
from mesonb.webui.model import TASK_INDEX, UiModel

STATE = TASK_INDEX["state"]


def launch(h: MasterHarness, fw, agent, *task_ids: str) -> None:
    h.settle()
    (offer,) = fw.offers()
    tasks = [command_task(t, agent.agent_id, "cpus:0.1;mem:16") for t in task_ids]
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": tasks}}], "filters": {"refuse_seconds": 0}})


class Page:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def send_text(self, text: str) -> None:
        self.messages.append(text)


async def test_tasks_follow_events_and_the_rest_is_sampled():
    h = MasterHarness(max_completed_tasks_per_framework=2)
    hub = Hub()
    feed = MasterFeed(h.master, hub)
    agent = h.add_agent("cpus:4;mem:1024", hostname="box1")
    fw = h.subscribe("demo")
    launch(h, fw, agent, "t0")  # before anyone watches: loaded from the book
    assert h.master.observers == []  # an unwatched master pays nothing for the UI
    feed.watch()
    assert hub.model.tables["tasks"].rows[f"{fw.framework_id} t0"][STATE] == "TASK_STAGING"
    agent.update(fw.framework_id, "t0", TaskState.TASK_KILLED)
    launch(h, fw, agent, "t1", "t2", "t3")
    tasks = hub.model.tables["tasks"].rows
    assert {k.split(" ")[1]: r[STATE] for k, r in tasks.items()} == {
        "t0": "TASK_KILLED", "t1": "TASK_STAGING", "t2": "TASK_STAGING", "t3": "TASK_STAGING"}
    for t in ("t1", "t2", "t3"):
        agent.update(fw.framework_id, t, TaskState.TASK_RUNNING)
    agent.update(fw.framework_id, "t1", TaskState.TASK_FAILED,
                 reason=Reason.REASON_CONTAINER_LIMITATION_MEMORY, message="out of memory")
    row = tasks[f"{fw.framework_id} t1"]
    assert row[STATE] == "TASK_FAILED"
    assert row[TASK_INDEX["reason"]] == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert row[TASK_INDEX["stopped"]] is not None
    # As the book, only the newest completed tasks of a framework are kept (t0 and t1 go).
    for t in ("t2", "t3"):
        agent.update(fw.framework_id, t, TaskState.TASK_FINISHED)
    assert sorted(k.split(" ")[1] for k in tasks) == ["t2", "t3"]
    assert h.master.book.frameworks[fw.framework_id].completed_tasks[0].id == "t2"

    feed.sample()
    agents = hub.model.tables["agents"].rows
    assert [(a["hostname"], a["state"]) for a in agents.values()] == [("box1", "ACTIVE")]
    assert hub.model.tables["frameworks"].rows[fw.framework_id]["name"] == "demo"
    assert hub.model.master["cluster"] == "mesonb"
    # A sample with nothing changed sends nothing.
    hub.model.take_delta()
    feed.sample()
    assert hub.model.take_delta() is None
    feed.close()
    assert feed._on_event not in h.master.observers


async def test_a_page_gets_a_snapshot_then_only_changes():
    h = MasterHarness()
    hub = Hub()
    hub.source = feed = MasterFeed(h.master, hub)
    agent = h.add_agent()
    fw = h.subscribe("demo")
    page = Page()
    hub.attach(page)
    assert feed.watchers == 1 and h.master.observers == [feed._on_event]
    snapshot = json.loads(page.messages[-1])
    assert snapshot["type"] == "snapshot" and snapshot["task_columns"][0] == "id"
    launch(h, fw, agent, "t1")
    hub.flush()
    delta = json.loads(page.messages[-1])
    assert delta["type"] == "delta"
    assert [r[0] for r in delta["tables"]["tasks"]["rows"]] == ["t1"]
    hub.flush()
    assert len(page.messages) == 2  # nothing new, nothing sent
    hub.detach(page)
    assert feed.watchers == 0 and h.master.observers == []


async def test_history_replays_into_the_same_model(tmp_path):
    h = MasterHarness()
    hub = Hub()
    feed = MasterFeed(h.master, hub)
    agent = h.add_agent(hostname="box1")
    fw = h.subscribe("demo")
    launch(h, fw, agent, "t1")
    recorder = HistoryRecorder(tmp_path, h.master.id)
    recorder.attach(hub, feed)
    assert hub.model.tables["tasks"].rows
    agent.update(fw.framework_id, "t1", TaskState.TASK_FINISHED)
    h.add_agent(hostname="box2")
    feed.sample()
    await asyncio.sleep(0)
    recorder.close()
    replayed = UiModel()
    replayed.apply_all(read_history(tmp_path))
    for name, table in hub.model.tables.items():
        assert replayed.tables[name].rows == table.rows, name
    assert replayed.master == hub.model.master
    feed.close()
    # A file cut short by a crash replays up to the cut.
    path = recorder.path
    path.write_text(path.read_text() + '{"type": "ROWS", "tab')
    assert len(read_history(path)) == len(read_history(tmp_path))


async def test_a_local_cluster_records_its_history(tmp_path):
    cluster = LocalCluster(agents=2, port=0, work_dir=tmp_path / "work",
                           resources="cpus:1;mem:256;disk:100", history_dir=tmp_path / "h")
    await cluster.start()
    try:
        await cluster.wait_ready()
        path = tmp_path / "h"
        await wait_until(lambda: len(replay(path).tables["agents"].rows) == 2)
    finally:
        await cluster.stop()
    model = replay(path)
    assert model.master["cluster"] == "mesonb"
    assert {a["state"] for a in model.tables["agents"].rows.values()} == {"ACTIVE"}


def replay(path) -> UiModel:
    model = UiModel()
    model.apply_all(read_history(path))
    return model


async def wait_until(condition, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_tasks_load_newest_first_in_chunks(monkeypatch):
    monkeypatch.setattr("mesonb.master.http.ui_feed.LOAD_CHUNK", 2)
    h = MasterHarness()
    hub = Hub()
    feed = MasterFeed(h.master, hub)
    agent = h.add_agent()
    fw = h.subscribe("demo")
    for i in range(5):
        launch(h, fw, agent, f"t{i}")
    feed.watch()
    tasks = hub.model.tables["tasks"].rows
    assert sorted(k.split(" ")[1] for k in tasks) == ["t3", "t4"]  # the newest, at once
    assert hub.model.master["tasks_loading"] is True
    agent.update(fw.framework_id, "t0", TaskState.TASK_RUNNING)  # not loaded yet: skipped
    await wait_until(lambda: len(tasks) == 5)
    await wait_until(lambda: hub.model.master["tasks_loading"] is False)
    assert tasks[f"{fw.framework_id} t0"][STATE] == "TASK_RUNNING"  # the book's, current
    feed.close()
    assert tasks == {}


async def test_with_a_secret_the_feed_and_files_need_the_token(tmp_path):
    from tornado.httpclient import AsyncHTTPClient, HTTPClientError
    from tornado.websocket import websocket_connect

    cluster = LocalCluster(agents=1, port=0, work_dir=tmp_path, secret="s3cret",
                           resources="cpus:1;mem:256;disk:100")
    await cluster.start()
    try:
        await cluster.wait_ready()
        client = AsyncHTTPClient()
        page = await client.fetch(cluster.url + "/")  # the page itself holds no data
        assert b"ui/static/app.js" in page.body
        ws_url = cluster.url.replace("http://", "ws://") + "/ui/feed"
        for url in (ws_url, ws_url + "?token=wrong"):
            try:
                await websocket_connect(url)
                raise AssertionError("a feed without the token")
            except HTTPClientError as exc:
                assert exc.code == 401
        try:
            await client.fetch(cluster.url + "/ui/files/browse?agent_id=x&path=/")
            raise AssertionError("files without the token")
        except HTTPClientError as exc:
            assert exc.code == 401
        feed = await websocket_connect(ws_url + "?token=s3cret")
        snapshot = json.loads(await feed.read_message())
        assert len(snapshot["tables"]["agents"]) == 1
        feed.close()
    finally:
        await cluster.stop()


async def test_tasks_an_agent_brings_back_show_without_a_task_added_event():
    from mesonb.protocol.agent import AgentTask
    from mesonb.protocol.mesos import FrameworkInfo, TaskInfo

    h = MasterHarness()
    hub = Hub()
    feed = MasterFeed(h.master, hub)
    feed.watch()
    task = TaskInfo.from_json(command_task("kept", "agent-S7", "cpus:0.1;mem:16"))
    info = FrameworkInfo.from_json({"id": {"value": "fw-before"}, "name": "before",
                                    "user": "ann", "failover_timeout": 60})
    h.add_agent(agent_id="agent-S7", frameworks=[info], tasks=[AgentTask(
        framework_id="fw-before", task=task, state=TaskState.TASK_RUNNING)])
    row = hub.model.tables["tasks"].rows["fw-before kept"]
    assert row[STATE] == "TASK_RUNNING" and row[TASK_INDEX["agent_id"]] == "agent-S7"
    feed.close()
