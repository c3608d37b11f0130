"""Nothing hangs silently: a notebook framework holding offers never starves the client's
calls, and a call that cannot start says why (``fut.status()``, ``result(timeout)``'s
TimeoutError, ``explain()`` in every state)."""

from __future__ import annotations

import time

import pytest
from client_support import wait_for

from mesonb import Cluster
from mesonb.client import ResourceError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    c = Cluster.local(resources="cpus:2;mem:2048;disk:1024")
    try:
        yield c
    finally:
        c.close()


def test_submit_works_while_a_notebook_framework_holds_every_offer(cluster):
    fw = cluster.framework("explore")
    view = fw.offers_widget()  # the offers widget open, as a user would have it
    try:
        wait_for(lambda: fw.offer_list()
                 and cluster.framework_id not in set(cluster.offers().framework_id),
                 "the notebook framework to hold the agent's offer")
        started = time.monotonic()
        assert cluster.submit(abs, -5, cpus=1).result(20) == 5
        assert time.monotonic() - started < 10
        assert fw.released >= 1
        assert not view.model.offer_list() or all(o.gone is None
                                                  for o in view.model.offer_list())
        # the framework gets offers again afterwards and can still launch
        offer = fw.wait_offer(timeout=30)
        assert fw.launch(offer, pow, 2, 5, cpus=0.1, mem="32MiB").result(30) == 32
    finally:
        view.close()
        fw.close()


def test_the_embedded_master_takes_back_offers_nobody_acts_on(cluster):
    from mesonb.client.local import OFFER_TIMEOUT

    # another client's framework cannot hold the embedded master's offers for ever
    assert cluster.local.master.config.offer_timeout == OFFER_TIMEOUT


def test_a_call_that_cannot_start_says_why_in_status_and_timeout(cluster):
    busy = [cluster.submit(time.sleep, 60, cpus=1, mem=64) for _ in range(2)]
    try:
        wait_for(lambda: all(f.phase == "running" for f in busy), "two busy calls running")
        assert busy[0].status().startswith("running on ")
        waiting = cluster.submit(abs, -1, cpus=1, mem=64)
        wait_for(lambda: waiting.status().startswith("pending: "), "a pending status")
        text = waiting.status()
        assert "needs cpus 1" in text and "2 calls of this client run" in text, text
        with pytest.raises(TimeoutError) as info:
            waiting.result(timeout=0.3)
        message = str(info.value)
        assert "did not finish within 0.3 s" in message and "pending: needs cpus 1" in message
        # the progress bar over the waiting call says so
        from mesonb.widgets.progress import ProgressModel

        model = ProgressModel([waiting])
        model.refresh(ask_why=True)
        assert (model.pending, model.running) == (1, 0)
        assert model.why_pending.startswith("pending: needs cpus 1")
        assert model.summary().startswith("abs: 0/1 done, 1 pending · ")
        assert " · pending: needs cpus 1" in model.summary()
        dependent = cluster.submit(abs, waiting)
        assert dependent.status().startswith("pending: waiting for 1 of its 1 dependencies")
        assert "waiting for 1 of its 1 dependencies" in str(dependent.explain())
        assert cluster.queue() and cluster.queue()[0]["status"].startswith("pending")
    finally:
        for fut in busy:
            fut.cancel()
    assert waiting.result(30) == 1 and dependent.result(30) == 1
    assert waiting.status() == "done" and str(waiting.explain()) == \
        "not pending: the call is done"


def test_explain_of_a_refused_call_says_refused(cluster):
    fut = cluster.submit(abs, -1, cpus=64)
    with pytest.raises(ResourceError):
        fut.result(10)
    text = str(fut.explain())
    assert text.startswith("not pending: the call was refused: no registered agent"), text
    assert fut.status().startswith("refused: ")
    failed = cluster.submit(divmod, 1, 0)
    with pytest.raises(ZeroDivisionError):
        failed.result(30)
    assert str(failed.explain()).startswith("not pending: the call failed: ZeroDivision")
