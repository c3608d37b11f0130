"""A framework's machine as the master drives it: stream closes, failover, teardown."""

from __future__ import annotations

from mesonb.master import views
from mesonb.master.framework_fsm import FrameworkState
from mesonb.testing.harness import MasterHarness


def test_the_master_moves_a_framework_through_its_states():
    h = MasterHarness()
    h.add_agent("cpus:2;mem:1024")
    fw = h.subscribe(failover_timeout=30)
    h.settle()
    assert fw.offers()
    record = fw.record
    assert record.lifecycle.state is FrameworkState.SUBSCRIBED and record.active
    h.disconnect(fw)
    assert record.lifecycle.state is FrameworkState.DISCONNECTED
    assert not record.active and not record.connected and not record.offers
    assert record.failover_deadline == h.clock.monotonic() + 30
    assert not views.framework_recovered(record)  # it did subscribe to this master
    h.advance(29)
    again = h.subscribe(framework_id=record.id)
    assert again.record is record and record.lifecycle.state is FrameworkState.SUBSCRIBED
    assert record.failover_deadline is None
    h.advance(60)  # no deadline while subscribed
    assert record.id in h.master.book.frameworks
    again.call("TEARDOWN")
    assert record.lifecycle.state is FrameworkState.TORN_DOWN and again.closed
    refused = h.subscribe(framework_id=record.id)
    (error,) = refused.take("ERROR")
    assert error["error"]["message"] == f"Framework {record.id} has been removed"
    assert refused.closed


def test_a_closed_stream_without_failover_timeout_tears_the_framework_down():
    h = MasterHarness()
    fw = h.subscribe()
    record = fw.record
    h.disconnect(fw)
    assert record.lifecycle.state is FrameworkState.TORN_DOWN
    assert record.id in h.master.book.completed_frameworks
