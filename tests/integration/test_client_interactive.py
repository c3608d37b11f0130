"""The notebook framework on a real embedded cluster: offers, launch, decline, revive."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from mesonb import Cluster
from mesonb.client import CommandResult

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    c = Cluster.local(agents=2)
    try:
        yield c
    finally:
        c.close()


def test_cluster_frames_are_typed(cluster):
    agents = cluster.agents()
    assert len(agents) == 2
    assert agents.cpus_total.dtype == "float64" and (agents.cpus_total > 0).all()
    assert not agents.cpus_used.isna().any()  # every agent answered /metrics/snapshot
    assert pd.api.types.is_datetime64_any_dtype(agents.registered_time)
    assert cluster.submit(abs, -3, cpus=0.1, mem=64).result(30) == 3
    tasks = cluster.tasks()
    assert (tasks.framework_id == cluster.framework_id).all()
    assert pd.api.types.is_datetime64_any_dtype(tasks.updated_time)
    assert set(tasks.hostname) <= set(agents.hostname)
    frameworks = cluster.frameworks()
    assert cluster.framework_id in set(frameworks.framework_id)
    assert list(cluster.offers().columns)[:3] == ["offer_id", "framework_id", "agent_id"]


def test_launch_a_function_and_a_command_on_chosen_offers(cluster):
    fw = cluster.framework("explore")
    try:
        offer = fw.wait_offer(30)
        assert offer.id in set(fw.offers().offer_id)
        task = fw.launch(offer, pow, 2, 10, cpus=0.1, mem="64MiB")
        assert task.result(60) == 1024
        assert task.agent_id == offer.agent_id and task.state == "TASK_FINISHED"
        offer = fw.wait_offer(30, agent_id=offer.agent_id)
        done = fw.launch(offer, command="echo hello; exit 3", cpus=0.1, mem=32)
        result = done.result(60)
        assert isinstance(result, CommandResult)
        assert (result.returncode, result.stdout) == (3, "hello\n")
        mine = fw.tasks()
        assert set(mine.task_id) == {task.task_id, done.task_id}
        assert "<table" in offer._repr_html_() and offer.hostname in offer._repr_html_()
        assert "TASK_FAILED" in done._repr_html_()
    finally:
        fw.close()


def test_decline_filters_an_agent_until_revive(cluster):
    fw = cluster.framework("decliner")
    try:
        first = fw.wait_offer(30)
        refused = first.agent_id
        fw.decline(first, refuse_seconds=600)
        # three rounds of offers from the other agent, none from the refused one
        for _ in range(3):
            other = fw.wait_offer(30)  # we hold nothing else: this one came after the decline
            assert other.agent_id != refused
            fw.decline(other, refuse_seconds=0.1)
        assert fw.offer_list() == [] or refused not in set(fw.offers().agent_id)
        fw.decline(fw.offer_list(), refuse_seconds=600)
        fw.revive()
        back = fw.wait_offer(30, agent_id=refused)
        assert back.agent_id == refused
    finally:
        fw.close()


def test_suppress_then_revive(cluster):
    fw = cluster.framework("suppressor")
    try:
        fw.suppress()
        fw.decline(fw.offer_list(), refuse_seconds=0.1)
        fw.revive()
        assert fw.wait_offer(30).id
    finally:
        fw.close()


def test_explain_a_call_this_busy_cluster_cannot_place_now(cluster):
    per_agent = cluster.agents().cpus_total.min()
    busy = [cluster.submit(time.sleep, 120, cpus=round(per_agent * 0.7, 2), mem=64)
            for _ in range(2)]
    try:
        wait_until_running(cluster, busy)
        pending = cluster.submit(abs, -1, cpus=round(per_agent * 0.5, 2), mem=64)
        why = pending.explain()
        assert "cpus" in why.short_everywhere and "mem" not in why.short_everywhere
        assert not why.fits_somewhere
        assert len(why.agents) == 2 and all("cpus" in a.short for a in why.agents)
        assert str(why).startswith("pending: no agent has cpus")
        assert "closest:" in str(why)
        assert "running" in busy[0]._repr_html_()
        pending.cancel()
    finally:
        for fut in busy:
            fut.cancel()
    assert "pending" not in pending.explain().state


def wait_until_running(cluster, futs, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = cluster.tasks().set_index("task_id")["state"]
        if all(f.task_id and states.get(f.task_id) == "TASK_RUNNING" for f in futs):
            return
        time.sleep(0.1)  # polling with a deadline, not a synchronisation
    raise TimeoutError("tasks did not start")
