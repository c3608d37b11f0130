"""The allocator with reserved resources: a role's reservation goes only to a framework
of that role (pure function, no master)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from mesonb.allocator.drf import allocate
from mesonb.allocator.snapshot import AgentView, Filter, FrameworkView, Snapshot
from mesonb.protocol.resources import EMPTY, Resources

UNRESERVED = Resources({"cpus": 2, "mem": 1024})
DB = Resources({"cpus": 1, "mem": 256, "disk": 100})


def agent(agent_id: str = "a1", available: Resources = UNRESERVED,
          reserved: dict[str, Resources] | None = None) -> AgentView:
    return AgentView(agent_id, "host", available, available + DB, {},
                     reserved if reserved is not None else {"db": DB})


def fw(fid: str, *roles: str, allocated: Resources = EMPTY, **kw) -> FrameworkView:
    return FrameworkView(fid, roles, allocated, **kw)


def run(agents, frameworks):
    total = Resources({"cpus": 100, "mem": 100000, "disk": 100000})
    return allocate(Snapshot(agents, frameworks, total), 0.0, random.Random(1)).offers


def test_a_reservation_goes_only_to_its_role_and_merges_with_the_unreserved_offer():
    offers = run([agent()], [fw("db", "db")])
    [offer] = offers
    assert (offer.framework_id, offer.role) == ("db", "db")
    assert offer.resources == UNRESERVED + DB and offer.reserved == DB
    offers = run([agent()], [fw("web", "web")])
    [offer] = offers
    assert offer.resources == UNRESERVED and not offer.reserved


def test_the_reservation_and_the_unreserved_part_can_go_to_different_frameworks():
    offers = run([agent()], [fw("db", "db", allocated=Resources({"cpus": 50})),
                             fw("web", "web")])
    got = {(o.framework_id, o.role): (o.resources, o.reserved) for o in offers}
    assert got == {("db", "db"): (DB, DB), ("web", "web"): (UNRESERVED, EMPTY)}


def test_a_reservation_alone_is_offered_and_a_filter_on_it_is_respected():
    only = agent(available=EMPTY)
    [offer] = run([only], [fw("db", "db")])
    assert offer.resources == DB
    filtered = fw("db", "db", filters={"a1": Filter(10.0, DB)})
    assert run([only], [filtered]) == []
    other = fw("db2", "db")
    [offer] = run([only], [filtered, other])
    assert offer.framework_id == "db2"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["db", "web", "ops"]), min_size=1, max_size=5),
       st.dictionaries(st.sampled_from(["db", "web", "x"]),
                       st.builds(lambda c: Resources({"cpus": c}), st.integers(1, 4)),
                       max_size=3))
def test_nothing_is_offered_twice_and_reservations_stay_in_their_role(roles, reserved):
    agents = [agent(f"a{i}", reserved=reserved) for i in range(3)]
    frameworks = [fw(f"f{i}", role) for i, role in enumerate(roles)]
    offers = run(agents, frameworks)
    for a in agents:
        mine = [o for o in offers if o.agent_id == a.agent_id]
        unreserved = EMPTY
        for o in mine:
            assert not o.reserved or o.reserved == a.reserved[o.role]
            unreserved = unreserved + (o.resources - o.reserved)
        assert a.available.contains(unreserved)
        assert len({o.role for o in mine if o.reserved}) == len([o for o in mine if o.reserved])


def run_with_quota(agents, frameworks, limits, unheld=None):
    total = Resources({"cpus": 100, "mem": 100000, "disk": 100000})
    snapshot = Snapshot(agents, frameworks, total, quota_limits=limits,
                        unheld_reserved=unheld or {})
    return allocate(snapshot, 0.0, random.Random(1)).offers


def test_reservations_count_against_the_roles_quota_limit():
    """Mesos: a role's reservations are consumed quota. 1 cpu reserved to db (here, free
    and offered with the rest) under a 2 cpu limit leaves 1 unreserved cpu to offer."""
    [offer] = run_with_quota([agent()], [fw("db", "db")], {"db": {"cpus": 2.0}},
                             {"db": DB.scalars})
    assert offer.reserved == DB
    assert offer.resources - DB == Resources({"cpus": 1, "mem": 1024})


def test_a_reservation_held_elsewhere_still_counts_and_its_own_offer_is_not_clipped():
    # db's 1.5 cpus of reservations on another agent, unheld, eat its limit of 2 cpus:
    # of this agent's unreserved cpus only 0.5 is offered; its own reservation here is
    # offered whole (reservations are already counted).
    limits = {"db": {"cpus": 2.0}}
    unheld = {"db": {"cpus": 1.5 + 1, "mem": 256, "disk": 100}}  # + this agent's DB
    [offer] = run_with_quota([agent()], [fw("db", "db")], limits, unheld)
    assert offer.reserved == DB
    assert (offer.resources - DB).get("cpus") == 0.0
    [offer] = run_with_quota([agent()], [fw("db", "db")], {"db": {"cpus": 3.0}}, unheld)
    assert (offer.resources - DB).get("cpus") == 0.5


def test_a_sub_roles_reservation_counts_against_the_parents_limit():
    unheld = {"eng/dev": {"cpus": 2.0}}
    offers = run_with_quota([agent(reserved={})], [fw("ops", "eng/ops")],
                            {"eng": {"cpus": 2.5}}, unheld)
    [offer] = offers
    assert offer.resources.get("cpus") == 0.5
    [offer] = run_with_quota([agent(reserved={})], [fw("ops", "eng/ops")],
                             {"eng": {"cpus": 2.0}}, unheld)
    assert offer.resources == Resources({"mem": 1024})  # mem has no limit


def test_a_roles_reservation_is_offered_to_its_sub_roles_and_not_to_its_parent():
    # eng's reservation goes to eng/dev (Mesos: allocatable to a role and its sub-roles).
    [offer] = run([agent(available=EMPTY, reserved={"eng": DB})], [fw("dev", "eng/dev")])
    assert (offer.role, offer.reserved, offer.reserved_roles) == ("eng/dev", DB, ("eng",))
    # eng/dev's reservation never goes to eng.
    assert run([agent(available=EMPTY, reserved={"eng/dev": DB})], [fw("eng", "eng")]) == []
    # Both reservations to the one eng/dev framework: one offer holding both.
    both = agent(reserved={"eng": DB, "eng/dev": DB})
    [offer] = run([both], [fw("dev", "eng/dev")])
    assert offer.reserved == DB + DB and set(offer.reserved_roles) == {"eng", "eng/dev"}
    assert offer.resources == UNRESERVED + DB + DB
    # With a framework in eng too, the lower-share role gets eng's reservation.
    offers = run([agent(available=EMPTY, reserved={"eng": DB})],
                 [fw("eng", "eng", allocated=Resources({"cpus": 50})), fw("dev", "eng/dev")])
    assert [(o.framework_id, o.role) for o in offers] == [("dev", "eng/dev")]
