"""'Why is my task pending?' on agent rows, and the HTML templates."""

from __future__ import annotations

import concurrent.futures
import doctest
from types import SimpleNamespace

import mesonb.client.explain
import mesonb.widgets.explain
from mesonb.client import reprs as templates
from mesonb.widgets.explain import explain


def agent(aid, cpus_total, cpus_alloc, mem_total, mem_alloc):
    return {"agent_id": aid, "hostname": f"host-{aid}", "cpus_total": cpus_total,
            "cpus_allocated": cpus_alloc, "mem_total": mem_total, "mem_allocated": mem_alloc}


def test_names_the_resource_no_agent_has_and_the_closest_agents():
    rows = [agent("a", 4, 3.5, 8192, 0), agent("b", 4, 3, 8192, 8000), agent("c", 4, 4, 0, 0)]
    e = explain({"cpus": 2, "mem": 100}, rows, {"offered": 1, "filtered": 2})
    assert e.short_everywhere == {"cpus": 1.0}
    assert not e.fits_somewhere
    assert [a.agent_id for a in e.agents] == ["b", "a", "c"]
    text = str(e)
    assert "no agent has cpus 2 free (the most free: 1 on host-b)" in text
    assert "closest: host-b (b): short of cpus 1\n" in text
    assert "closest: host-c (c): short of cpus 2, mem 100 MB" in text
    assert "2 filtered" in text
    assert "<pre" in e._repr_html_()


def test_fits_when_one_agent_has_everything_and_split_resources():
    rows = [agent("a", 4, 0, 100, 90), agent("b", 4, 3.9, 8192, 0)]
    e = explain({"cpus": 1, "mem": 50}, rows)
    assert e.short_everywhere == {} and not e.fits_somewhere
    assert "no single agent" in str(e)
    ok = explain({"cpus": 1, "mem": 5}, rows)
    assert ok.fits_somewhere and "free on host-a" in str(ok)


def test_module_doctest():
    assert doctest.testmod(mesonb.widgets.explain).failed == 0
    assert doctest.testmod(mesonb.client.explain).attempted >= 3
    assert doctest.testmod(mesonb.client.explain).failed == 0


def test_future_and_offer_html():
    fut = concurrent.futures.Future()
    fake = SimpleNamespace(name="square", task_id="square-1-abc", attempts=1,
                           cancelled=fut.cancelled, done=fut.done, exception=fut.exception,
                           result=fut.result)
    assert "pending" not in templates.future_html(fake) and "running" in \
        templates.future_html(fake)
    fut.set_result([1, 2])
    html = templates.future_html(fake)
    assert "finished" in html and "[1, 2]" in html and "square-1-abc" in html
    offer = SimpleNamespace(id="O<1>", hostname="h", agent_id="A", role="*",
                            resources={"cpus": 1.5, "mem": 2048.0, "disk": 0.0})
    html = templates.offer_html(offer)
    assert "O&lt;1&gt;" in html and "cpus 1.5, mem 2.0 GB" in html


def test_a_call_no_longer_waiting_says_only_that():
    assert str(explain({"cpus": 1}, [], state="done")) == "not pending: the call is done"
    assert explain({}, [agent("a", 1, 0, 1, 0)], state="cancelled").lines() == [
        "not pending: the call is cancelled"]
    assert "no agent is registered" in str(explain({"cpus": 1}, []))


def test_call_state_of_a_running_a_queued_and_a_waiting_call():
    from mesonb.widgets.explain import call_state

    def fut(task_id=None, done=False):
        f = concurrent.futures.Future()
        if done:
            f.set_result(1)
        f.task_id = task_id
        return f

    spec = SimpleNamespace(agent_id="A1", state="RUNNING")
    scheduler = SimpleNamespace(launched={"t-1": spec})
    job = SimpleNamespace(deps=[])
    hosts = {"A1": "host-1"}
    assert call_state(fut("t-1"), job, scheduler, hosts) == "running on host-1 (task t-1)"
    spec.state = "LAUNCHED"
    assert call_state(fut("t-1"), job, scheduler, hosts) == \
        "launched on host-1 (task t-1), starting"
    assert call_state(fut("t-2"), job, scheduler, hosts) == "pending"  # queued
    assert call_state(fut(None), job, scheduler, hosts) == "pending"
    assert call_state(fut("t-1", done=True), None, scheduler, hosts) == "done"
    waiting = SimpleNamespace(deps=[fut(), fut(done=True)])
    assert call_state(fut(None), waiting, scheduler, hosts) == \
        "waiting for 1 of its 2 dependencies to finish"
    text = str(explain({}, [], state=call_state(fut("t-1"), job, scheduler, hosts)))
    assert text == "not pending: the call is launched on host-1 (task t-1), starting"


def test_resources_in_other_frameworks_offers_are_not_free():
    rows = [agent("a", 4, 1, 8192, 0), agent("b", 4, 3.5, 8192, 0)]
    offers = [  # explore holds all of a's free cpus; our own offer on b is ours to use
        {"framework_id": "F2", "agent_id": "a", "cpus": 3.0, "mem": 4096.0},
        {"framework_id": "F1", "agent_id": "b", "cpus": 0.5, "mem": 8192.0}]
    e = explain({"cpus": 2, "mem": 100}, rows, offers=offers, framework_id="F1",
                framework_names={"F2": "explore"})
    assert not e.fits_somewhere
    assert e.short_everywhere == {"cpus": 0.5}
    text = str(e)
    assert text.startswith("pending: no agent has cpus 2 free (the most free: 0.5 on host-b)")
    assert "  host-a (a): cpus 3, mem 4096 MB held in offers to framework explore (F2)" in text
    assert "F1" not in text  # our own offer is not "held elsewhere"
    assert "the call fits once those offers are used, declined or rescinded" in text
    # without the offers, a's 3 free cpus would have fitted
    assert explain({"cpus": 2, "mem": 100}, rows).fits_somewhere


def test_offered_resources_count_as_held_when_the_offers_are_not_listed():
    row = {**agent("a", 4, 0, 8192, 0), "cpus_offered": 4.0}
    text = str(explain({"cpus": 1}, [row]))
    assert "host-a (a): cpus 4 held in offers to other frameworks" in text


def test_a_stale_suppressed_count_is_left_out_when_the_framework_is_not_suppressed():
    rows = [agent("a", 4, 4, 8192, 0)]
    counts = {"offered": 0, "suppressed": 2, "filtered": 1}
    assert "2 suppressed" in str(explain({"cpus": 1}, rows, counts, suppressed=True))
    fresh = str(explain({"cpus": 1}, rows, counts, suppressed=False))
    assert "suppressed" not in fresh and "1 filtered" in fresh


def fake_cluster():
    from mesonb.client.loop import LoopThread

    stale = [{"id": "A1", "hostname": "h1", "resources": {"cpus": 1.0, "mem": 512.0}}]
    return SimpleNamespace(address="127.0.0.1:5050", local=None, name="fw", framework_id="F1",
                           _jobs={}, closed=False, _lt=LoopThread("test"), _agents=stale,
                           _master=None, _headers={})


def test_cluster_html_asks_the_master_for_fresh_agents(monkeypatch):
    cluster = fake_cluster()

    def res(**amounts):
        return [{"name": k, "type": "SCALAR", "scalar": {"value": v}}
                for k, v in amounts.items()]

    async def get_agents(cluster, timeout):
        return {"agents": [{"active": True, "total_resources": res(cpus=2, mem=1024),
                            "allocated_resources": res(cpus=0.1, mem=64)}] * 3}

    monkeypatch.setattr(templates, "_get_agents", get_agents)
    try:
        html = templates.cluster_html(cluster)
    finally:
        cluster._lt.stop()
    assert "<td style='padding:1px 8px'>3</td>" in html  # three agents, not the cached one
    assert "cpus 6, mem 3.0 GB; allocated: cpus 0.3, mem 192 MB" in html


def test_cluster_html_falls_back_to_the_cached_agents_quickly(monkeypatch):
    import asyncio
    import time

    cluster = fake_cluster()

    async def slow(cluster, timeout):
        await asyncio.sleep(timeout + 10)

    monkeypatch.setattr(templates, "_get_agents", slow)
    started = time.monotonic()
    try:
        html = templates.cluster_html(cluster, timeout=0.2)
    finally:
        cluster._lt.stop()
    assert time.monotonic() - started < 3
    assert "1 (last seen; the master did not answer within 0.2s)" in html
    assert "cpus 1, mem 512 MB" in html and "allocated" not in html
