"""The dashboard and the offers widget against a real embedded cluster (no kernel)."""

from __future__ import annotations

import threading

import pytest

from mesonb import Cluster

pytestmark = pytest.mark.slow


def test_dashboard_follows_the_operator_stream_and_stops():
    cluster = Cluster.local(agents=2)
    try:
        dash = cluster.dashboard()
        dash.wait_subscribed(30)
        widget = dash.widget()
        assert len(dash.model.agents) == 2
        assert cluster.framework_id in dash.model.frameworks
        fut = cluster.submit(abs, -5, cpus=0.1, mem=64)
        assert fut.result(30) == 5
        seen = threading.Event()
        # the stream's TASK_UPDATED arrives on the loop thread; wait on the model via the
        # refresh hook instead of sleeping
        deadline_ok = _wait(lambda: dash.model.tasks.get(fut.task_id, {}).get("state")
                            == "TASK_FINISHED", seen)
        assert deadline_ok
        assert dash.model.state_counts()["TASK_FINISHED"] >= 1
        assert any(b["resource"] == "cpus" and b["used"] is not None
                   for b in dash.model.agent_bars())
        dash._draw()
        assert fut.task_id in dash._tasks.value
        assert len(dash._bars.children) >= 4  # cpus, mem, disk per agent
        assert widget is dash.widget()
        dash.stop()
        assert dash.stopped and dash._task.done()
        assert dash._stop not in cluster._closers
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
        view.rows[offer.id].refuse.value = 600
        view.rows[offer.id].decline()
        assert offer.id not in view.rows and offer.id not in {o.id for o in fw.offer_list()}
        view.close()
    finally:
        cluster.close()


def _wait(condition, event, timeout=30.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        event.wait(0.05)  # polling the model with a deadline
    return False
