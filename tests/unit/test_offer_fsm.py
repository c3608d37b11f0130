"""The offer machine on bare records and a fake clock: every row of its table, then the
sequences that matter (timeouts in time order, ACCEPT problems as Mesos words them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesonb.master.offer_fsm import (
    TRANSITIONS,
    Accept,
    Action,
    Decline,
    Made,
    OfferLifecycle,
    OfferState,
    Pooled,
    Refuse,
    Release,
    Rescind,
    TellRescinded,
    Tick,
    Withdraw,
)
from mesonb.protocol.resources import Resources
from mesonb.testing.clock import FakeClock

CPU = Resources.parse("cpus:1;mem:64")


@dataclasses.dataclass(eq=False)
class Rec:
    """A bare offer record (what the book's Offer holds)."""

    id: str
    framework_id: str = "F1"
    agent_id: str = "A1"
    role: str = "*"
    resources: Resources = CPU
    created: float = 0.0
    state: OfferState = OfferState.OUTSTANDING


class World:
    """A machine and the outstanding map its owner keeps (Withdraw carried out)."""

    def __init__(self, timeout: float | None = None) -> None:
        self.clock = FakeClock()
        self.outstanding: dict[str, Rec] = {}
        self.fsm = OfferLifecycle(self.outstanding, timeout)

    def make(self, offer_id: str, **kw: object) -> Rec:
        offer = Rec(offer_id, created=self.clock.monotonic(), **kw)  # type: ignore[arg-type]
        self.outstanding[offer_id] = offer
        assert self.fsm.handle(Made(offer)) == []
        return offer

    def handle(self, event: object) -> list[Action]:
        actions = self.fsm.handle(event)  # type: ignore[arg-type]
        for action in actions:
            if isinstance(action, Withdraw):
                del self.outstanding[action.offer.id]
        return actions


# Each row of TRANSITIONS: the event that takes a fresh OUTSTANDING offer there, and the
# actions it must give.
ROWS: dict[tuple[OfferState | None, OfferState], tuple[Callable[[World, Rec], object], str]] = {
    (None, OfferState.OUTSTANDING): (lambda w, o: None, ""),
    (OfferState.OUTSTANDING, OfferState.ACCEPTED):
        (lambda w, o: Accept("F1", [o.id]), "Withdraw Release Pooled"),
    (OfferState.OUTSTANDING, OfferState.DECLINED):
        (lambda w, o: Decline("F1", [o.id]), "Withdraw Release Pooled"),
    (OfferState.OUTSTANDING, OfferState.RESCINDED):
        (lambda w, o: Rescind(o), "Withdraw TellRescinded Release"),
    (OfferState.OUTSTANDING, OfferState.EXPIRED):
        (lambda w, o: Tick(w.clock.advance(10)), "Withdraw TellRescinded Refuse Release"),
}


def names(actions: list[Action]) -> str:
    return " ".join(type(a).__name__ for a in actions)


def test_the_rows_here_are_the_machines_table():
    assert set(ROWS) == set(TRANSITIONS)


@pytest.mark.parametrize("row", list(TRANSITIONS), ids=lambda r: f"{r[0]}->{r[1]}")
def test_every_row_of_the_table(row):
    world = World(timeout=10)
    offer = world.make("O1")
    assert offer.state is OfferState.OUTSTANDING
    make_event, expected = ROWS[row]
    event = make_event(world, offer)
    actions = world.handle(event) if event is not None else []
    assert offer.state is row[1]
    assert names(actions) == expected
    if row[1] is not OfferState.OUTSTANDING:
        assert "O1" not in world.outstanding
        assert Release("A1") in actions
        # An ended offer ends once: every later event leaves it as it is.
        assert world.handle(Rescind(offer)) == []
        assert world.handle(Tick(world.clock.advance(100))) == []
        (pooled,) = world.handle(Accept("F1", ["O1"]))
        assert pooled == Pooled(None, Resources(), "*", "Offer O1 is no longer valid")
        assert offer.state is row[1]


def test_rescind_without_notice_tells_nobody():
    world = World()
    offer = world.make("O1")
    assert world.handle(Rescind(offer, notify=False)) == [Withdraw(offer), Release("A1")]
    assert offer.state is OfferState.RESCINDED


def test_accept_pools_offers_of_one_agent():
    world = World()
    a, b = world.make("O1", role="web"), world.make("O2", role="web")
    actions = world.handle(Accept("F1", ["O1", "O2"]))
    assert actions[:2] == [Withdraw(a), Withdraw(b)]
    assert actions[-1] == Pooled("A1", CPU + CPU, "web", None)
    assert actions.count(Release("A1")) == 1


@pytest.mark.parametrize(("ids", "problem"), [
    ([], "No offers specified"),
    (["O1", "O1"], "Duplicate offers specified"),
    (["O1", "nope"], "Offer nope is no longer valid"),
    (["O1", "O3"], "Offer O3 is no longer valid"),  # another framework's
    (["O1", "O2"], "Aggregated offers must belong to one single agent"),
])
def test_accept_problems_end_the_offers_all_the_same(ids, problem):
    world = World()
    world.make("O1")
    world.make("O2", agent_id="A2")
    other = world.make("O3", framework_id="F2")
    actions = world.handle(Accept("F1", ids))
    pooled = actions[-1]
    assert isinstance(pooled, Pooled) and pooled.problem == problem
    agents = {"O1": "A1", "O2": "A2"}
    taken = [i for i in dict.fromkeys(ids) if i in agents]
    assert not set(taken) & set(world.outstanding)  # they ended all the same
    released = sorted(a.agent_id for a in actions if isinstance(a, Release))
    assert released == sorted({agents[i] for i in taken})
    assert other.state is OfferState.OUTSTANDING


def test_offers_expire_in_the_order_they_were_made():
    world = World(timeout=30)
    first = world.make("O1")
    world.clock.advance(10)
    second = world.make("O2")
    accepted = world.make("O3")
    world.handle(Accept("F1", ["O3"]))
    assert world.handle(Tick(world.clock.advance(19.9))) == []
    actions = world.handle(Tick(world.clock.advance(0.1)))  # 30 s after the first
    assert actions == [Withdraw(first), TellRescinded(first), Refuse(first, 5.0), Release("A1")]
    assert second.state is OfferState.OUTSTANDING
    actions = world.handle(Tick(world.clock.advance(10)))
    assert names(actions) == "Withdraw TellRescinded Refuse Release"
    assert (second.state, accepted.state) == (OfferState.EXPIRED, OfferState.ACCEPTED)
    assert not world.fsm._by_age  # nothing kept for offers that ended


def test_without_a_timeout_offers_stay_and_nothing_is_tracked():
    world = World(timeout=None)
    offer = world.make("O1")
    assert world.handle(Tick(world.clock.advance(10**9))) == []
    assert offer.state is OfferState.OUTSTANDING
    assert not world.fsm._by_age


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan")])
def test_a_timeout_is_a_positive_number_of_seconds(bad):
    with pytest.raises(ValueError, match="offer timeout"):
        OfferLifecycle({}, bad)


def test_unknown_events_fail_fast():
    with pytest.raises(TypeError):
        OfferLifecycle({}).handle("ACCEPT")  # type: ignore[arg-type]


# -- a property: whatever happens, each offer ends once and its resources go back once ----
STEPS = st.lists(st.tuples(
    st.sampled_from(["make", "accept", "decline", "rescind", "quiet", "tick"]),
    st.lists(st.integers(0, 7), max_size=3),
    st.sampled_from(["F1", "F2"]),
    st.floats(0, 20),
), max_size=40)


@settings(max_examples=120, deadline=None)
@given(STEPS, st.sampled_from([None, 15.0]))
def test_every_offer_ends_once_and_its_resources_go_back_once(steps, timeout):
    world = World(timeout)
    made: list[Rec] = []
    withdrawn: dict[str, int] = {}
    for kind, picks, framework, seconds in steps:
        ids = [f"O{i}" for i in picks]
        if kind == "make":
            made.append(world.make(f"O{len(made)}", framework_id=framework,
                                   agent_id=f"A{len(made) % 3}"))
            continue
        if kind == "accept":
            actions = world.handle(Accept(framework, ids))
        elif kind == "decline":
            actions = world.handle(Decline(framework, ids))
        elif kind in ("rescind", "quiet"):
            actions = []
            for offer_id in ids:
                offer = next((o for o in made if o.id == offer_id), None)
                if offer is not None:
                    actions += world.handle(Rescind(offer, notify=kind == "rescind"))
        else:
            actions = world.handle(Tick(world.clock.advance(seconds)))
        for action in actions:
            if isinstance(action, Withdraw):
                withdrawn[action.offer.id] = withdrawn.get(action.offer.id, 0) + 1
        ended = [a.offer for a in actions if isinstance(a, Withdraw)]
        for offer in ended:  # its resources go back to the allocator
            assert Release(offer.agent_id) in actions
        pooled = [a for a in actions if isinstance(a, Pooled)]
        if kind in ("accept", "decline"):
            assert len(pooled) == 1
            assert all(o.framework_id == framework for o in ended)
        else:
            assert pooled == []
    assert all(n == 1 for n in withdrawn.values())
    for offer in made:
        outstanding = offer.state is OfferState.OUTSTANDING
        assert (offer.id in world.outstanding) == outstanding
        assert (offer.id in withdrawn) == (not outstanding)
        if timeout is not None and outstanding:
            assert offer.created > world.clock.monotonic() - timeout
