"""Offers through the master: the offer timeout (``--offer-timeout``) and rescinds."""

from __future__ import annotations

import argparse

import pytest

from mesonb.master.cli import add_parser, config_from_args
from mesonb.master.offer_fsm import OfferState
from mesonb.testing.harness import MasterHarness


def offer_ids(events: list[dict]) -> list[str]:
    return [o["id"]["value"] for e in events for o in e["offers"]["offers"]]


def test_an_offer_held_past_the_timeout_is_rescinded_and_offered_again():
    h = MasterHarness(offer_timeout=30.0)
    h.add_agent("cpus:2;mem:1024")
    fw = h.subscribe("notebook")
    h.settle()
    (first,) = offer_ids(fw.take("OFFERS"))
    record = h.master.book.offers[first]
    h.advance(29.0)
    assert fw.of_type("RESCIND") == [] and first in h.master.book.offers
    h.advance(1.0)
    (rescind,) = fw.take("RESCIND")
    assert rescind["rescind"]["offer_id"]["value"] == first
    assert record.state is OfferState.EXPIRED
    assert first not in h.master.book.offers
    # The resources went back to the allocator: offered again, under a new id, once the
    # default filter of an offer left unanswered (as a DECLINE without filters) is over.
    h.advance(4.9)
    assert fw.of_type("OFFERS") == []
    h.advance(1.1)  # past the filter, and a full allocation run came due
    (again,) = offer_ids(fw.take("OFFERS"))
    assert again != first
    # Accepting the expired offer is refused as Mesos does: the offer is no longer valid.
    fw.call("DECLINE", decline={"offer_ids": [{"value": first}]})
    assert again in h.master.book.offers


def test_a_framework_holding_offers_does_not_starve_another():
    h = MasterHarness(offer_timeout=5.0)
    h.add_agent("cpus:2;mem:1024")
    hog = h.subscribe("hog")
    h.settle()
    assert offer_ids(hog.take("OFFERS"))
    other = h.subscribe("other")
    h.settle()
    got = []
    for _ in range(20):  # the hog never answers; the other declines what it gets
        h.advance(5.0)
        got += offer_ids(other.take("OFFERS"))
        if got:
            break
        hog.take()
    assert got, "the other framework was never offered the agent"


def test_without_a_timeout_offers_stay_outstanding():
    h = MasterHarness()
    h.add_agent("cpus:2;mem:1024")
    fw = h.subscribe()
    h.settle()
    (offer,) = offer_ids(fw.take("OFFERS"))
    h.advance(3600.0)
    assert fw.of_type("RESCIND") == []
    assert h.master.book.offers[offer].state is OfferState.OUTSTANDING


def test_rescinded_offers_end_once():
    h = MasterHarness()
    agent = h.add_agent("cpus:2;mem:1024")
    fw = h.subscribe()
    h.settle()
    (offer,) = offer_ids(fw.take("OFFERS"))
    record = h.master.book.offers[offer]
    h.master.rescind_offer(record)
    h.master.rescind_offer(record)
    assert len(fw.take("RESCIND")) == 1
    assert record.state is OfferState.RESCINDED
    assert not agent.record.offered


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["master", *argv])


def test_the_master_cli_takes_an_offer_timeout():
    assert config_from_args(parse()).offer_timeout is None
    assert config_from_args(parse("--offer-timeout", "2.5")).offer_timeout == 2.5


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf")])
def test_a_bad_offer_timeout_stops_the_master_with_a_reason(bad):
    with pytest.raises(ValueError, match="offer timeout"):
        MasterHarness(offer_timeout=bad)
