"""The notebook framework's held offers (no cluster): next_offer, offers leaving when
used, declined or rescinded, and the offers widget's model and views."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mesonb.client.interactive import NotebookFramework
from mesonb.widgets.offers import OffersModel, OffersText, OffersView


def raw(offer_id, agent_id="A1", cpus=1.0, mem=512.0, **more):
    resources = [{"name": k, "type": "SCALAR", "scalar": {"value": v}}
                 for k, v in {"cpus": cpus, "mem": mem, **more}.items()]
    return {"id": {"value": offer_id}, "framework_id": {"value": "F"},
            "agent_id": {"value": agent_id}, "hostname": f"host-{agent_id}",
            "url": {"scheme": "http", "address": {"hostname": "127.0.0.1", "port": 5051}},
            "resources": resources}


class Recorder(NotebookFramework):
    """The framework's offer book with no master: launch and decline only record."""

    def __init__(self) -> None:  # no cluster, no driver
        self.name, self.role, self.closed = "test", "*", False
        self._cond = threading.Condition()
        self._offers, self._seen, self._announced, self._listeners = {}, 0, 0, []
        self._acted = None
        self._tasks, self._executors = {}, {}
        self.sent: list[tuple[str, list[str]]] = []

    def launch(self, offer, fn=None, *args, command=None, **resources):
        if not self._forget(offer, "launched"):
            raise ValueError(f"{offer!r} is no longer held")
        self._mark_action()
        self.sent.append(("launch", [offer.id]))
        return type("Task", (), {"name": "t", "task_id": f"t-{offer.id}", "state": "STAGING",
                                 "hostname": offer.hostname, "fn": fn, "args": args,
                                 "command": command, "resources": resources})()

    def decline(self, offers, refuse_seconds=None):
        offers = [offers] if not isinstance(offers, list) else offers
        offers = [o for o in offers if self._forget(o, "declined")]
        if offers:
            self._mark_action()
            self.sent.append(("decline", [o.id for o in offers]))


def waiting(fw, n=1, timeout=5.0):
    """Until ``n`` threads wait on the framework's condition (a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    while len(fw._cond._waiters) < n:
        assert time.monotonic() < deadline, "the waiter never waited"
        time.sleep(0.001)


def test_next_offer_returns_only_an_offer_that_arrives_after_the_call():
    fw = Recorder()
    fw.on_offers([raw("O1", "A1"), raw("O2", "A2")])
    assert fw.wait_offer(0).id == "O2"  # held now: the newest
    assert fw.wait_offer(0, agent_id="A1").id == "O1"
    with pytest.raises(TimeoutError, match="no new offer"):
        fw.next_offer(timeout=0.05)  # two held, none new
    with ThreadPoolExecutor(1) as pool:
        nxt = pool.submit(fw.next_offer, 5, agent_id="A1")
        waiting(fw)
        fw.on_offers([raw("O3", "A2")])  # new, but not from A1
        fw.on_offers([raw("O4", "A1"), raw("O5", "A1")])
        assert nxt.result(5).id == "O4"  # the first new one that matches, not O1
        nxt = pool.submit(fw.next_offer, 5)
        waiting(fw)
        fw.on_offers([raw("O6", "A3")])
        assert nxt.result(5).id == "O6"
    assert [o.seq for o in fw.offer_list()] == [1, 2, 3, 4, 5, 6]


def test_next_offer_right_after_an_action_counts_what_the_action_brought():
    fw = Recorder()
    fw.on_offers([raw("O1", "A1"), raw("O2", "A2")])
    fw.decline(fw.offer_list()[0])
    fw.on_offers([raw("O3", "A1")])  # the master answered before next_offer was called
    assert fw.next_offer(0.05).id == "O3"  # not missed, and not the older O2
    with pytest.raises(TimeoutError):  # no action since: only what comes after the call
        fw.next_offer(0.05)
    fw._mark_action()  # e.g. a revive
    fw.on_offers([raw("O4", "A2"), raw("O5", "A1")])
    assert fw.next_offer(0.05, agent_id="A1").id == "O5"
    with pytest.raises(TimeoutError):
        fw.next_offer(0.05)  # O4 came before this call, and the action was used up


def test_a_waiter_gets_an_offer_only_after_the_listeners_have_it():
    fw = Recorder()
    told = []
    slow = threading.Event()

    def listener(kind, payload):
        slow.wait(5)  # e.g. a widget building its row
        told.extend(o.id for o in payload)

    fw.subscribe(listener)
    with ThreadPoolExecutor(2) as pool:
        nxt = pool.submit(lambda: (fw.next_offer(5).id, list(told)))
        waiting(fw)
        arrived = pool.submit(fw.on_offers, [raw("O1")])  # the loop thread's part
        with pytest.raises(TimeoutError):
            fw.wait_offer(0.05)  # held, but the listeners do not have it yet
        assert [o.id for o in fw.offer_list()] == ["O1"]
        slow.set()
        arrived.result(5)
        assert nxt.result(5) == ("O1", ["O1"])


def test_used_declined_and_rescinded_offers_leave_and_listeners_hear_it():
    fw = Recorder()
    heard = []
    fw.subscribe(lambda kind, payload: heard.append((kind, getattr(payload, "id", payload))))
    fw.on_offers([raw("O1"), raw("O2"), raw("O3")])
    o1, o2, o3 = fw.offer_list()
    fw.launch(o1, command="true")
    fw.decline(o2, refuse_seconds=60)
    fw.on_rescind("O3")
    assert fw.offer_list() == []
    assert (o1.gone, o2.gone, o3.gone) == ("launched", "declined", "rescinded")
    assert heard[1:] == [("gone", "O1"), ("gone", "O2"), ("rescind", "O3")]
    with pytest.raises(ValueError, match="no longer held"):
        fw.launch(o2, command="true")
    fw.decline([o1, o2])  # nothing held: nothing sent
    assert fw.sent == [("launch", ["O1"]), ("decline", ["O2"])]
    assert "(declined)" in repr(o2)


def test_the_real_launch_refuses_an_offer_no_longer_held():
    fw = Recorder()
    fw.on_offers([raw("O1")])
    [offer] = fw.offer_list()
    fw.decline(offer)
    with pytest.raises(ValueError, match="no longer held"):
        NotebookFramework.launch(fw, offer, command="true", cpus=0.1, mem=32)
    assert fw._tasks == {}


def test_the_model_follows_the_framework_and_stops_listening_when_it_closes():
    fw = Recorder()
    fw.on_offers([raw("O1"), raw("O2", gpus=1.0, disk=100.0)])
    model = OffersModel(fw, pow, 2, 5)
    heard = []
    model.subscribe(lambda kind, payload: heard.append(kind))
    assert list(model.offers) == ["O1", "O2"]
    fw.on_offers([raw("O3")])
    fw.launch(fw.offer_list()[0], command="true")  # used from code, not from the model
    fw.on_rescind("O2")
    assert list(model.offers) == ["O3"] and heard == ["offers", "gone", "rescind"]
    task = model.accept(0, cpus=0.5, mem=100)  # the function, with these resources
    assert (task.fn, task.args) == (pow, (2, 5))
    assert task.resources["cpus"] == 0.5 and task.resources["mem"] == 100.0
    assert model.launched == [task] and model.offers == {}
    fw.on_offers([raw("O4")])
    task = model.accept("O4", command="echo hi", disk=0)
    assert task.command == "echo hi" and task.fn is None
    fw._tell("closed", None)
    assert model.closed and model._on_event not in fw._listeners
    fw.on_offers([raw("O5")])
    assert model.offers == {}  # no longer listening


def test_the_widget_rows_have_resource_inputs_and_leave_with_their_offer():
    fw = Recorder()
    fw.on_offers([raw("O1", cpus=2.0, mem=1024.0, disk=500.0), raw("O2", gpus=1.0)])
    view = OffersView(OffersModel(fw, abs, -3))
    row = view.rows["O1"]
    assert (row.cpus.value, row.mem.value, row.disk.value, row.gpus.value) == (0.1, 64, 0, 0)
    assert (row.cpus.max, row.mem.max, row.disk.max) == (2.0, 1024.0, 500.0)
    assert row.gpus.disabled and not row.disk.disabled
    assert not view.rows["O2"].gpus.disabled and view.rows["O2"].gpus.max == 1.0
    assert row.kind.value == "abs(-3)" and row.runs_function
    fw.decline(fw.offer_list()[0])  # from code: the row goes
    assert list(view.rows) == ["O2"] and len(view.box.children) == 1
    with pytest.raises(ValueError):  # a stale row's Accept is refused, not sent
        row.accept()
    assert "no longer held" in view.model.error or "not held" in view.model.error
    view._act(row.accept)  # a click: the failure shows in the view
    assert "not held" in view.message.value
    other = view.rows["O2"]
    other.kind.value = "command"
    other.command.value = "nvidia-smi"
    other.gpus.value = 1.0
    task = other.accept()
    assert task.command == "nvidia-smi" and task.resources["gpus"] == 1.0
    assert view.rows == {} and "t-O2" in view.tasks.value
    fw._tell("closed", None)
    assert "closed" in view.title.value


def test_text_view_outside_a_kernel():
    fw = Recorder()
    fw.on_offers([raw("O1", cpus=2.0), raw("O2", "A2")])
    text = OffersText(OffersModel(fw))
    out = repr(text)
    assert out.splitlines()[0].startswith("test: 2 offers held; accept(i")
    # agents named hostname:port, sizes with units
    assert "  [0] host-A1:5051: cpus 2, mem 512 MiB  (offer O1)" in out
    assert "  [1] host-A2:5051: cpus 1, mem 512 MiB  (offer O2)" in out
    with pytest.raises(ValueError, match="give a shell command"):
        text.accept(0)
    task = text.accept(1, command="hostname", cpus=0.2)
    assert task.resources["cpus"] == 0.2
    text.decline("O1", refuse_seconds=30)
    assert fw.sent == [("launch", ["O2"]), ("decline", ["O1"])]
    assert "0 offers held" in repr(text) and "launched t t-O2 on host-A2" in repr(text)
