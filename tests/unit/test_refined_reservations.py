"""Hierarchical (refined) reservations: a ``reservations`` stack read whole, RESERVE
pushing a sub-role's reservation on its parent's, UNRESERVE popping the last (pure: the
protocol and the operations, no master)."""

from __future__ import annotations

from typing import Any

import pytest

from mesonb.master.operations import Context, OperationError, Pool, apply, converted
from mesonb.protocol.errors import BadRequest
from mesonb.protocol.mesos import OperationType
from mesonb.protocol.reservations import (
    STATIC,
    Portion,
    Reservation,
    carved_from_static,
    render,
    split,
)
from mesonb.protocol.resources import EMPTY, Resources

ENG = Reservation("eng", principal="ops")
DEV = Reservation("eng/dev", principal="ops", parents=(ENG,))


def cpus(value: float, *stack: tuple[str, str]) -> dict[str, Any]:
    return {"name": "cpus", "type": "SCALAR", "scalar": {"value": value},
            "reservations": [{"type": kind, "role": role, "principal": "ops"}
                             for kind, role in stack]}


def allow(*_: Any) -> None:
    return None


def test_a_stack_is_read_whole_and_written_back_the_same():
    items = [cpus(1, ("DYNAMIC", "eng"), ("DYNAMIC", "eng/dev"))]
    plain, portion = split(items)
    assert not plain and portion.reserved == {DEV: Resources({"cpus": 1})}
    assert DEV.popped() == ENG and ENG.popped() is None
    [out] = render(EMPTY, portion, "eng/dev")
    assert out["role"] == "eng/dev" and out["allocation_info"] == {"role": "eng/dev"}
    assert [r["role"] for r in out["reservations"]] == ["eng", "eng/dev"]
    assert split([out])[1].reserved == portion.reserved
    assert "refining eng" in DEV.describe()


@pytest.mark.parametrize("stack, needle", [
    ((("DYNAMIC", "eng"), ("DYNAMIC", "ops")), "not a sub-role of 'eng'"),
    ((("DYNAMIC", "eng"), ("DYNAMIC", "eng")), "not a sub-role"),
    ((("DYNAMIC", "eng"), ("STATIC", "eng/dev")), "only the first"),
])
def test_a_malformed_stack_is_refused_with_the_reason(stack, needle):
    with pytest.raises(BadRequest) as refused:
        split([cpus(1, *stack)])
    assert needle in refused.value.message


def reserve(pool: Pool, ledger: Portion, *stack: tuple[str, str], value: float = 1) -> None:
    apply(OperationType.RESERVE, {"resources": [cpus(value, *stack)]}, pool, ledger,
          Context(None, "ops", allow))


def unreserve(pool: Pool, ledger: Portion, *stack: tuple[str, str], value: float = 1) -> None:
    apply(OperationType.UNRESERVE, {"resources": [cpus(value, *stack)]}, pool, ledger,
          Context(None, "ops", allow))


def test_reserve_pushes_and_unreserve_pops_the_last():
    pool, ledger = Pool(Resources({"cpus": 4}), Portion()), Portion()
    reserve(pool, ledger, ("DYNAMIC", "eng"), value=3)
    reserve(pool, ledger, ("DYNAMIC", "eng"), ("DYNAMIC", "eng/dev"), value=2)
    assert ledger.reserved == {ENG: Resources({"cpus": 1}), DEV: Resources({"cpus": 2})}
    assert pool.unreserved == Resources({"cpus": 1})
    # Refining needs the parent's reservation, not unreserved resources.
    with pytest.raises(OperationError) as refused:
        reserve(pool, ledger, ("DYNAMIC", "eng"), ("DYNAMIC", "eng/dev"), value=2)
    assert refused.value.conflict and "not available to refine" in refused.value.message
    # UNRESERVE pops eng/dev: back to eng, not unreserved.
    unreserve(pool, ledger, ("DYNAMIC", "eng"), ("DYNAMIC", "eng/dev"))
    assert ledger.reserved == {ENG: Resources({"cpus": 2}), DEV: Resources({"cpus": 1})}
    assert pool.unreserved == Resources({"cpus": 1})
    body = {"resources": [cpus(1, ("DYNAMIC", "eng"), ("DYNAMIC", "eng/dev"))]}
    [back] = converted(OperationType.UNRESERVE, body) or []
    assert [r["role"] for r in back["reservations"]] == ["eng"]
    unreserve(pool, ledger, ("DYNAMIC", "eng"), value=2)
    assert pool.unreserved == Resources({"cpus": 3})


def test_an_operators_role_limit_applies_to_the_top_of_the_stack():
    pool = Pool(EMPTY, Portion({ENG: Resources({"cpus": 2})}))
    ledger = pool.portion.copy()
    with pytest.raises(OperationError) as refused:
        apply(OperationType.RESERVE, {"resources": [
            cpus(1, ("DYNAMIC", "eng"), ("DYNAMIC", "eng/dev"))]}, pool, ledger,
            Context("eng", "ops", allow))
    assert "offered to role 'eng'" in refused.value.message
    apply(OperationType.RESERVE, {"resources": [
        cpus(1, ("DYNAMIC", "eng"), ("DYNAMIC", "eng/dev"))]}, pool, ledger,
        Context("eng/dev", "ops", allow))
    assert ledger.reserved[DEV] == Resources({"cpus": 1})


def test_a_refinement_of_a_static_reservation_is_carved_out_of_it():
    static = Reservation("eng", STATIC)
    refined = Reservation("eng/dev", principal="ops", parents=(static,))
    dynamic = Portion({refined: Resources({"cpus": 1})})
    assert carved_from_static(dynamic).reserved == {static: Resources({"cpus": 1})}


def test_an_operator_refinement_needs_the_offers_holding_the_parents_reservation():
    from mesonb.master.book import Offer
    from mesonb.master.http.operator_resources import holds, needed

    body = {"resources": [cpus(1, ("DYNAMIC", "eng"), ("DYNAMIC", "eng/dev"))]}
    plain, portion = needed(OperationType.RESERVE, body)
    assert not plain and portion.reserved == {ENG: Resources({"cpus": 1})}
    unreserved = Offer("o1", "f", "a", "web", Resources({"cpus": 4}), 0.0)
    engs = Offer("o2", "f", "a", "eng/dev", Resources({"cpus": 2}), 0.0,
                 portion=Portion({ENG: Resources({"cpus": 2})}))
    assert not holds(unreserved, plain, portion) and holds(engs, plain, portion)
    plain, portion = needed(OperationType.RESERVE, {"resources": [cpus(1, ("DYNAMIC", "x"))]})
    assert plain == Resources({"cpus": 1}) and holds(unreserved, plain, portion)
    assert not holds(engs, plain, portion)
