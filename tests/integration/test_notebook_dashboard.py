"""The dashboard and the offers widget against a real embedded cluster (no kernel)."""

from __future__ import annotations

import time

import pytest
from client_support import wait_for

from mesonb import Cluster
from mesonb.widgets import panels
from mesonb.widgets.offers import OffersText

pytestmark = pytest.mark.slow




def master_allocation(cluster):
    """{agent_id: (cpus, mem) allocated} as the master's operator API says."""
    agents = cluster.agents()
    return {r.agent_id: (round(r.cpus_allocated, 6), round(r.mem_allocated, 6))
            for r in agents.itertuples()}


def dashboard_allocation(model):
    bars = model.agent_bars()
    return {a: tuple(round(b["allocated"], 6) for r in ("cpus", "mem") for b in bars
                     if b["agent_id"] == a and b["resource"] == r)
            for a in {b["agent_id"] for b in bars}}


def test_dashboard_follows_the_operator_stream_and_stops():
    cluster = Cluster.local(agents=2)
    try:
        dash = cluster.dashboard()
        dash.wait_subscribed(30)
        widget = dash.widget()
        assert len(dash.model.agents) == 2
        assert cluster.framework_id in dash.model.frameworks
        futs = cluster.map(abs, [-5, -6, -7, -8], cpus=0.1, mem=64)
        assert cluster.gather(futs, timeout=60) == [5, 6, 7, 8]
        assert dash.wait(lambda m: all(m.tasks.get(f.task_id, {}).get("state")
                                       == "TASK_FINISHED" for f in futs), 30)
        assert dash.model.state_counts()["TASK_FINISHED"] >= 4
        # allocated as the master books it: the tasks are done, and the functions
        # executors that still run hold nothing (their overhead is not charged)
        master = master_allocation(cluster)
        assert all(cpus < 1e-9 for cpus, _ in master.values())
        assert dash.wait(lambda m: dashboard_allocation(m) == master_allocation(cluster), 30)
        assert dash.wait(lambda m: all(b["used"] is not None for b in m.agent_bars()
                                       if b["resource"] in ("cpus", "mem")), 30)
        dash._draw()
        assert all(f.task_id in dash._tasks.value for f in futs)
        rows = {r.children[0].value: r for r in dash._bars.children}  # one row per agent
        agents = {b["agent"] for b in dash.model.agent_bars()}  # host:port, one per agent
        assert len(agents) == 2 and set(rows) == agents
        for bar in dash.model.agent_bars():
            if bar["resource"] not in ("cpus", "mem"):
                continue
            children = rows[bar["agent"]].children
            pair, numbers = children[1:3] if bar["resource"] == "cpus" else children[3:5]
            allocated, used = pair.children  # allocated and used: two bars
            assert (allocated.description, allocated.value, allocated.max) == (
                "allocated", bar["allocated"], bar["total"])
            assert used.max == bar["total"]
            assert used.description == "used"
            assert used.value == pytest.approx(min(bar["used"], bar["total"]))
            assert f"{bar['resource']} {panels.numbers(bar)}" == numbers.value
            assert bar["resource"] != "mem" or "iB" in numbers.value  # with units
        assert dash._timeline.value.count("<rect") >= 4  # the four calls on the stream
        assert "live from http://" in dash._title.value
        assert widget is dash.widget()
        dash.stop()
        assert dash.stopped and dash._task.done() and dash.error is None
        assert dash._stop not in cluster._closers  # the cluster no longer closes it
        assert dash.wait(lambda m: False, 30) is False  # stopped: returns at once
        assert "<small>stopped</small>" in dash._title.value
    finally:
        cluster.close()


def drop_operator_streams(cluster):
    """Fault injection: the master closes every operator SUBSCRIBE connection."""
    async def drop():
        master = cluster.local.master.master
        handlers = [o.__self__ for o in master.observers if hasattr(o, "__self__")]
        for handler in handlers:
            handler.request.connection.close()
        return len(handlers)

    return cluster._lt.run(drop(), 10)


def test_dashboard_reconnects_when_the_stream_drops():
    cluster = Cluster.local(agents=2)
    try:
        dash = cluster.dashboard(refresh=0.1)
        dash.wait_subscribed(30)
        assert drop_operator_streams(cluster) == 1
        assert dash.wait(lambda m: dash.reconnects >= 1 and dash.connected, 30)
        assert dash.lost is None and dash.error is None and not dash.stopped
        fut = cluster.submit(abs, -9, cpus=0.1, mem=64)
        assert fut.result(30) == 9
        # the new stream carries events: the task shows up finished
        assert dash.wait(lambda m: m.tasks.get(fut.task_id, {}).get("state")
                         == "TASK_FINISHED", 30)
        assert len(dash.model.agents) == 2
        dash.stop()
    finally:
        cluster.close()


def test_dashboard_stops_and_wait_raises_when_the_master_is_gone():
    cluster = Cluster.local(agents=1)
    try:
        dash = cluster.dashboard(reconnect_for=1.0)
        dash.wait_subscribed(30)
        dash.widget()
        cluster._lt.run(cluster.local.master.stop(), 30)
        started = time.monotonic()
        with pytest.raises(ConnectionError, match="the dashboard stopped"):
            dash.wait(lambda m: False, timeout=60)  # does not block for the full minute
        assert time.monotonic() - started < 30
        assert dash.stopped and not dash.connected and "no stream for 1s" in dash.error
        assert dash.status.startswith("stopped: ")
        assert "stopped: " in dash._title.value
        with pytest.raises(ConnectionError):
            dash.wait_subscribed(1)
        dash.stop()  # still fine
    finally:
        cluster.close()


def test_offers_widget_accepts_and_declines():
    cluster = Cluster.local(agents=2)
    try:
        fw = cluster.framework("widget")
        fw.wait_offer(30)
        view = fw.offers_widget_view()
        assert len(view.rows) >= 1
        row = next(iter(view.rows.values()))
        row.cpus.value, row.mem.value, row.command.value = 0.1, 32, "echo from-widget"
        task = row.accept()
        assert task.result(60).stdout == "from-widget\n"
        offer = fw.wait_offer(30)
        wait_for(lambda: offer.id in view.rows, "the row of the new offer")
        view.rows[offer.id].refuse.value = 600
        view.rows[offer.id].decline()
        assert offer.id not in view.rows and offer.id not in {o.id for o in fw.offer_list()}
        view.close()
    finally:
        cluster.close()


def test_offers_used_or_declined_from_code_leave_the_widget():
    cluster = Cluster.local(agents=2)
    try:
        fw = cluster.framework("stale")
        view = fw.offers_widget_view()
        wait_for(lambda: len(view.rows) == 2, "offers from both agents in the widget")
        first, second = list(view.rows.values())
        fw.decline(first.offer, refuse_seconds=600)  # from code, not the widget
        assert first.offer.id not in view.rows
        with pytest.raises(ValueError, match="not held"):
            first.accept()  # refused here, never sent (it would be TASK_LOST)
        done = fw.launch(second.offer, command="echo used", cpus=0.1, mem=32)
        assert second.offer.id not in view.rows
        assert done.result(60).stdout == "used\n"
        assert set(fw.tasks().task_id) == {done.task_id}  # no TASK_LOST launch
        fw.close()
        assert view.model.closed and view.rows == {} and fw._listeners == []
        assert "closed" in view.title.value
    finally:
        cluster.close()


def test_rescinded_offers_leave_the_widget():
    cluster = Cluster.local(agents=1, master_options={"offer_timeout": 0.5})
    try:
        fw = cluster.framework("rescinded")
        view = fw.offers_widget_view()
        wait_for(lambda: view.rows, "an offer in the widget")
        first = next(iter(view.rows.values())).offer
        wait_for(lambda: first.gone == "rescinded", "the master to rescind it")
        assert first.id not in view.rows and first not in fw.offer_list()
        with pytest.raises(ValueError, match="no longer held"):
            fw.launch(first, command="true", cpus=0.1, mem=32)
        view.close()
    finally:
        cluster.close()


def test_offers_widget_launches_a_function_with_disk_and_falls_back_to_text():
    cluster = Cluster.local(agents=1)
    try:
        fw = cluster.framework("functions")
        fw.wait_offer(30)
        view = fw.offers_widget_view(pow, 2, 5)
        row = next(iter(view.rows.values()))
        assert row.runs_function and not row.disk.disabled and row.gpus.disabled
        row.cpus.value, row.mem.value, row.disk.value = 0.1, 32, 10
        task = row.accept()
        assert task.result(60) == 32
        [launched] = fw.tasks().itertuples()
        assert (launched.cpus, launched.mem, launched.disk) == (0.1, 32.0, 10.0)
        view.close()
        text = fw.offers_widget()  # no kernel here: the text view
        assert isinstance(text, OffersText)
        wait_for(lambda: text.model.offers, "an offer in the text view")
        assert "offers held" in repr(text) and "[0]" in repr(text)
        out = text.accept(0, command="echo text", cpus=0.1, mem=32)
        assert out.result(60).stdout == "text\n"
        assert f"launched command {out.task_id}" in repr(text)
        fw.close()
        assert "the framework is closed" in repr(text)
    finally:
        cluster.close()
