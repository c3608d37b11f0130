"""'Why is my task pending?' on agent rows, and the HTML templates."""

from __future__ import annotations

import concurrent.futures
import doctest
from types import SimpleNamespace

import mesonb.widgets.explain
from mesonb.widgets import templates
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
