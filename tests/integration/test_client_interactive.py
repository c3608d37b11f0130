"""The notebook framework on a real embedded cluster: offers, launch, decline, revive."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
from client_support import wait_for

from mesonb import Cluster
from mesonb.client import CommandResult, state

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
    assert not agents.mem_used.isna().any()
    assert (agents.gpus_total == 0).all() and (agents.gpus_used == 0).all()  # no GPUs
    # Sandbox disk is measured (disk/du) where a container runs; NaN where none reports it.
    assert agents.disk_used.dtype == "float64" and (agents.disk_used.dropna() >= 0).all()
    assert pd.api.types.is_datetime64_any_dtype(agents.registered_time)
    assert cluster.submit(abs, -3, cpus=0.1, mem=64).result(30) == 3
    tasks = cluster.tasks()
    assert (tasks.framework_id == cluster.framework_id).all()
    assert pd.api.types.is_datetime64_any_dtype(tasks.updated_time)
    assert set(tasks.hostname) <= set(agents.hostname)
    frameworks = cluster.frameworks()
    assert cluster.framework_id in set(frameworks.framework_id)
    fw = cluster.framework("typed")
    try:
        held = fw.wait_offer(30)
        offers = cluster.offers()
        assert held.id in set(offers.offer_id)
        assert list(offers.columns)[:3] == ["offer_id", "framework_id", "agent_id"]
        frames = {"agents": (agents, state.AGENT_COLUMNS),
                  "tasks": (tasks, state.TASK_COLUMNS),
                  "frameworks": (frameworks, state.FRAMEWORK_COLUMNS),
                  "offers": (offers, state.OFFER_COLUMNS),
                  "fw.offers": (fw.offers(), state.OFFER_COLUMNS)}
        for name, (df, columns) in frames.items():
            assert len(df) >= 1, name
            assert list(df.columns) == list(columns), name
            for column, kind in columns.items():
                dtype = df[column].dtype
                if kind == "str":
                    assert isinstance(dtype, pd.StringDtype), (name, column, dtype)
                else:
                    expected = {"float": "float64", "int": "int64", "bool": "bool",
                                "time": "datetime64[ns, UTC]"}[kind]
                    assert dtype == expected, (name, column, dtype)
    finally:
        fw.close()


def test_next_offer_is_one_that_arrives_after_the_call(cluster):
    fw = cluster.framework("next")
    try:
        first = fw.wait_offer(30)
        held = fw.offer_list()
        with pytest.raises(TimeoutError):  # we hold every offer: nothing new can come
            fw.next_offer(timeout=0.3)
        got = []
        waiter = threading.Thread(target=lambda: got.append(fw.next_offer(timeout=30)))
        waiter.start()
        wait_for(lambda: fw._cond._waiters, "next_offer to wait")
        fw.decline(held, refuse_seconds=0.0)  # handed back: the master offers them again
        waiter.join(35)
        [fresh] = got
        assert fresh.id not in {o.id for o in held}
        assert fresh.seq > max(o.seq for o in held) >= first.seq
        assert fresh.gone is None and fresh in fw.offer_list()
    finally:
        fw.close()


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


def allocation(cluster):
    """The master's why-not counters of its last allocation run."""
    return cluster._lt.run(cluster._get_json("/mesonb/v1/allocation"), 10)


def test_suppress_then_revive(cluster):
    fw = cluster.framework("suppressor")
    try:
        fw.wait_offer(30)
        fw.suppress()
        fw.decline(fw.offer_list(), refuse_seconds=0.0)  # no filter: only suppress stops them
        # the master books the suppression: its allocation runs now skip this framework
        # on every agent they consider, for that reason and no other
        wait_for(lambda: (c := allocation(cluster)["frameworks"].get(fw.framework_id))
                 and c["suppressed"] >= 1 and c["offered"] == 0
                 and sum(c.values()) == c["suppressed"], "the master to skip it as suppressed")
        runs = cluster._lt.run(cluster._get_json("/metrics/snapshot"), 10)[
            "allocator/mesos/allocation_runs"]
        interval = 1.0  # the master's allocation_interval (MasterConfig's default)
        with pytest.raises(TimeoutError):  # several allocation runs, no offer
            fw.next_offer(timeout=3 * interval)
        assert fw.offer_list() == []
        later = cluster._lt.run(cluster._get_json("/metrics/snapshot"), 10)
        assert later["allocator/mesos/allocation_runs"] >= runs + 2
        counts = allocation(cluster)["frameworks"][fw.framework_id]
        assert counts["suppressed"] >= 1 and counts["offered"] == 0
        fw.revive()
        assert fw.next_offer(30).id
    finally:
        fw.close()


def test_explain_names_the_framework_holding_the_offers(cluster):
    # another client's framework: this client's own notebook frameworks give their offers
    # back when its calls wait (test_submit_works_while_a_notebook_framework_holds_offers)
    other = Cluster(cluster.address)
    fw = other.framework("hoarder")
    try:
        agents = set(cluster.agents().agent_id)
        # the functions framework declines and suppresses when idle; then every agent's
        # free resources go to the hoarder, which keeps them
        wait_for(lambda: {o.agent_id for o in fw.offer_list()} == agents
                 and cluster.framework_id not in set(cluster.offers().framework_id),
                 "the hoarder to hold every agent's offer")
        pending = cluster.submit(abs, -7, cpus=0.1, mem=32)
        why = str(pending.explain())
        assert why.startswith("pending: no agent has cpus")
        assert f"held in offers to framework hoarder ({fw.framework_id})" in why
        assert "the call fits once those offers are used, declined or rescinded" in why
        assert not pending.done()
        fw.decline(fw.offer_list(), refuse_seconds=600)
        assert pending.result(30) == 7
        assert str(pending.explain()) == "not pending: the call is done"
    finally:
        fw.close()
        other.close()


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
        running = str(busy[0].explain())
        assert running.startswith("not pending: the call is running on ")
        assert running.endswith(f"(task {busy[0].task_id})") and "\n" not in running
        pending.cancel()
    finally:
        for fut in busy:
            fut.cancel()
    assert str(pending.explain()) == "not pending: the call is cancelled"




def wait_until_running(cluster, futs, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = cluster.tasks().set_index("task_id")["state"]
        if all(f.task_id and states.get(f.task_id) == "TASK_RUNNING" for f in futs):
            return
        time.sleep(0.1)  # polling with a deadline, not a synchronisation
    raise TimeoutError("tasks did not start")
