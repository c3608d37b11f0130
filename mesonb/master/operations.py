"""The resource operations: RESERVE, UNRESERVE, CREATE, DESTROY, GROW_VOLUME,
SHRINK_VOLUME (and the refusal of CREATE_DISK / DESTROY_DISK), applied to a :class:`Pool`.

The same code serves an ACCEPT (the pool is what the accepted offers held, the role their
allocation role, the principal the framework's) and the operator calls RESERVE_RESOURCES,
UNRESERVE_RESOURCES, CREATE_VOLUMES, DESTROY_VOLUMES, GROW_VOLUME and SHRINK_VOLUME (the pool
is the agent's free resources, any role, the caller's principal). :func:`apply` changes
the pool and the agent's reserved :class:`~mesonb.protocol.reservations.Portion` together,
or raises :class:`OperationError` with Mesos's kind of reason and changes nothing. None of
these operations changes the agent's total: they move resources between the unreserved
part, a reservation and a volume.

Mesos's rules kept here (src/master/validation.cpp): a RESERVE takes unreserved resources
and names a DYNAMIC reservation for the offer's role, with the framework's principal if it
names one; a RESERVE whose ``reservations`` stack has more than one entry *refines* the
reservation below the last one (``[eng, eng/dev]`` takes resources reserved to ``eng``
and pushes ``eng/dev`` on them); UNRESERVE pops the last reservation of dynamically
reserved resources that are not volumes (back to the one below it, or unreserved);
CREATE turns reserved disk into a volume whose persistence id is new on the agent, DESTROY
turns a volume nobody uses back into reserved disk; GROW/SHRINK resize a volume with disk
of the same reservation. The ACLs ``reserve_resources`` (object: the role),
``unreserve_resources`` (the reserver's principal), ``create_volumes`` (the role),
``destroy_volumes`` (the creator's principal) and ``resize_volumes`` (the role) apply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from mesonb.protocol.errors import BadRequest
from mesonb.protocol.mesos import OperationType
from mesonb.protocol.reservations import DYNAMIC, Portion, Volume, split
from mesonb.protocol.resources import EMPTY, Resources
from mesonb.security.acls import Action

# (action, principal, object) -> None when allowed, else the reason
Authorize = Callable[[Action, str | None, str | None], str | None]

RESOURCE_OPERATIONS = frozenset({
    OperationType.RESERVE, OperationType.UNRESERVE, OperationType.CREATE,
    OperationType.DESTROY, OperationType.GROW_VOLUME, OperationType.SHRINK_VOLUME,
    OperationType.CREATE_DISK, OperationType.DESTROY_DISK,
})


class OperationError(Exception):
    """An operation that cannot be carried out; ``forbidden`` when the ACLs said no."""


    def __init__(self, message: str, forbidden: bool = False, conflict: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.forbidden = forbidden
        self.conflict = conflict  # valid, but the resources are not there (409)


@dataclasses.dataclass(slots=True)
class Pool:
    """Resources an operation may use: an unreserved bag and a reserved portion."""

    unreserved: Resources
    portion: Portion

    def copy(self) -> Pool:
        return Pool(self.unreserved, self.portion.copy())

    def total(self) -> Resources:
        return self.unreserved + self.portion.total()


@dataclasses.dataclass(slots=True)
class Context:
    """Who asks: the role the resources were offered to (None: the operator, any role),
    the principal acting, and the authorizer."""

    role: str | None
    principal: str | None
    authorize: Authorize


def _body(op_type: OperationType, body: Any, key: str) -> Any:
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise OperationError(f"Invalid {op_type.value} operation: expected "
                             f"'{op_type.value.lower()}.{key}' to be an array of resources")
    return body[key]


def _split(op_type: OperationType, items: Any, where: str) -> tuple[Resources, Portion]:
    try:
        return split(items, where)
    except BadRequest as exc:
        raise OperationError(f"Invalid {op_type.value} operation: {exc.message}") from None


def _check(ctx: Context, action: Action, obj: str | None) -> None:
    reason = ctx.authorize(action, ctx.principal, obj)
    if reason is not None:
        raise OperationError(reason, forbidden=True)


def _role_ok(ctx: Context, op: str, role: str) -> None:
    if ctx.role is not None and role != ctx.role:
        raise OperationError(f"Invalid {op} operation: the resources are for role {role!r}"
                             f" but were offered to role {ctx.role!r}")


def apply(op_type: OperationType, body: Any, pool: Pool, reserved: Portion,
          ctx: Context) -> None:
    """Carry out one resource operation on ``pool`` and the agent's ``reserved``
    portion (both changed in place only when it succeeds)."""
    handler = _HANDLERS.get(op_type)
    if handler is None:
        raise OperationError(
            f"{op_type.value} is not supported: it needs a storage resource provider, and"
            " mesonb agents have none (only their default disk)")
    work, book = pool.copy(), reserved.copy()
    handler(op_type, body, work, book, ctx)
    pool.unreserved, pool.portion = work.unreserved, work.portion
    reserved.reserved, reserved.volumes = book.reserved, book.volumes


def _reserve(op_type: OperationType, body: Any, pool: Pool, reserved: Portion,
             ctx: Context) -> None:
    plain, portion = _split(op_type, _body(op_type, body, "resources"), "reserve.resources")
    if plain or portion.volumes or not portion.reserved:
        raise OperationError("Invalid RESERVE operation: every resource needs a"
                             " 'reservations' entry (and none may be a persistent volume)")
    for k, res in portion.reserved.items():
        if k.type != DYNAMIC:
            raise OperationError("Invalid RESERVE operation: only DYNAMIC reservations can"
                                 " be made; STATIC ones come from the agent's --resources")
        _role_ok(ctx, "RESERVE", k.role)
        if ctx.principal is not None and k.principal not in (None, ctx.principal):
            raise OperationError(
                f"Invalid RESERVE operation: the reservation names principal {k.principal!r}"
                f" but the request comes from principal {ctx.principal!r}")
        _check(ctx, Action.RESERVE_RESOURCES, k.role)
        below = k.popped()
        if below is not None:  # a refinement: pushed on the reservation below it
            if not pool.portion.reserved.get(below, EMPTY).contains(res):
                raise OperationError(f"Invalid RESERVE operation: {res} of the"
                                     f" {below.describe()} is not available to refine",
                                     conflict=True)
            pool.portion.take(below, res)
            reserved.take(below, res)
        elif not pool.unreserved.contains(res):
            raise OperationError(f"Invalid RESERVE operation: {res} is more than the"
                                 f" unreserved {pool.unreserved} available", conflict=True)
        else:
            pool.unreserved = pool.unreserved - res
        pool.portion.add(k, res)
        reserved.add(k, res)


def _unreserve(op_type: OperationType, body: Any, pool: Pool, reserved: Portion,
               ctx: Context) -> None:
    plain, portion = _split(op_type, _body(op_type, body, "resources"), "unreserve.resources")
    if plain or not portion:
        raise OperationError("Invalid UNRESERVE operation: the resources are not reserved")
    if portion.volumes:
        raise OperationError("Invalid UNRESERVE operation: the resources include a persistent"
                             " volume; DESTROY it first")
    for k, res in portion.reserved.items():
        if k.type != DYNAMIC:
            raise OperationError("Invalid UNRESERVE operation: a STATIC reservation cannot"
                                 " be unreserved")
        _role_ok(ctx, "UNRESERVE", k.role)
        _check(ctx, Action.UNRESERVE_RESOURCES, k.principal)
        if not pool.portion.reserved.get(k, EMPTY).contains(res):
            raise OperationError(f"Invalid UNRESERVE operation: {res} of the {k.describe()}"
                                 " is not available to unreserve", conflict=True)
        pool.portion.take(k, res)
        reserved.take(k, res)
        below = k.popped()
        if below is not None:  # pops the last: back to the reservation below it
            pool.portion.add(below, res)
            reserved.add(below, res)
        else:
            pool.unreserved = pool.unreserved + res


def _volumes(op_type: OperationType, body: Any, where: str) -> list[Volume]:
    plain, portion = _split(op_type, _body(op_type, body, "volumes"), where)
    if plain or portion.reserved or not portion.volumes:
        raise OperationError(f"Invalid {op_type.value} operation: every resource must be a"
                             " disk with 'disk.persistence.id' and 'disk.volume'")
    return list(portion.volumes.values())


def _create(op_type: OperationType, body: Any, pool: Pool, reserved: Portion,
            ctx: Context) -> None:
    for volume in _volumes(op_type, body, "create.volumes"):
        _role_ok(ctx, "CREATE", volume.role)
        if ctx.principal is not None and volume.principal not in (None, ctx.principal):
            raise OperationError(
                f"Invalid CREATE operation: persistence principal {volume.principal!r} does"
                f" not match the principal {ctx.principal!r} making the request")
        _check(ctx, Action.CREATE_VOLUME, volume.role)
        if volume.id in reserved.volumes:
            raise OperationError(f"Invalid CREATE operation: persistent volume {volume.id!r}"
                                 " already exists on this agent")
        disk = Resources({"disk": volume.disk})
        if not volume.disk or not pool.portion.reserved.get(volume.reservation,
                                                            EMPTY).contains(disk):
            raise OperationError(
                f"Invalid CREATE operation: {volume.disk:g} MB of disk with the"
                f" {volume.reservation.describe()} is not available for volume {volume.id!r}",
                conflict=True)
        if volume.principal is None and ctx.principal is not None:
            volume = dataclasses.replace(volume, principal=ctx.principal)
        pool.portion.take(volume.reservation, disk)
        pool.portion.volumes[volume.id] = volume
        reserved.take(volume.reservation, disk)
        reserved.volumes[volume.id] = volume


def _offered_volume(op: str, volume: Volume, pool: Pool, reserved: Portion) -> Volume:
    have = pool.portion.volumes.get(volume.id)
    if have is None:
        if volume.id in reserved.volumes:
            raise OperationError(f"Invalid {op} operation: persistent volume {volume.id!r} is"
                                 " in use (or offered elsewhere)", conflict=True)
        raise OperationError(f"Invalid {op} operation: persistent volume {volume.id!r} does"
                             " not exist on this agent")
    if have.reservation != volume.reservation or have.disk != volume.disk:
        raise OperationError(f"Invalid {op} operation: persistent volume {volume.id!r} does"
                             " not match the volume on the agent (size or reservation)")
    return have


def _destroy(op_type: OperationType, body: Any, pool: Pool, reserved: Portion,
             ctx: Context) -> None:
    for volume in _volumes(op_type, body, "destroy.volumes"):
        have = _offered_volume("DESTROY", volume, pool, reserved)
        _role_ok(ctx, "DESTROY", have.role)
        _check(ctx, Action.DESTROY_VOLUME, have.principal)
        disk = Resources({"disk": have.disk})
        del pool.portion.volumes[have.id]
        del reserved.volumes[have.id]
        pool.portion.add(have.reservation, disk)
        reserved.add(have.reservation, disk)


def _one_volume(op_type: OperationType, data: Any, where: str) -> Volume:
    plain, portion = _split(op_type, [data] if isinstance(data, dict) else data, where)
    if plain or portion.reserved or len(portion.volumes) != 1:
        raise OperationError(f"Invalid {op_type.value} operation: '{where}' must be one"
                             " persistent volume")
    return next(iter(portion.volumes.values()))


def _resize(op_type: OperationType, body: Any, pool: Pool, reserved: Portion,
            ctx: Context) -> None:
    if not isinstance(body, dict):
        raise OperationError(f"Invalid {op_type.value} operation: expected a body")
    field = op_type.value.lower()
    have = _offered_volume(op_type.value,
                           _one_volume(op_type, body.get("volume"), f"{field}.volume"),
                           pool, reserved)
    _role_ok(ctx, op_type.value, have.role)
    _check(ctx, Action.RESIZE_VOLUME, have.role)
    if op_type is OperationType.GROW_VOLUME:
        plain, portion = _split(op_type, [body.get("addition")], "grow_volume.addition")
        add = portion.reserved.get(have.reservation)
        if plain or portion.volumes or len(portion.reserved) != 1 or add is None \
                or set(add.scalars) != {"disk"} or add.ranges or add.sets:
            raise OperationError("Invalid GROW_VOLUME operation: 'addition' must be disk with"
                                 " the volume's own reservation")
        if not pool.portion.reserved.get(have.reservation, EMPTY).contains(add):
            raise OperationError(f"Invalid GROW_VOLUME operation: {add} of the"
                                 f" {have.reservation.describe()} is not available", conflict=True)
        pool.portion.take(have.reservation, add)
        reserved.take(have.reservation, add)
        grown = have.resized(have.disk + add.get("disk"))
    else:
        try:
            cut = float(body["subtract"]["value"])
        except (KeyError, TypeError, ValueError):
            raise OperationError("Invalid SHRINK_VOLUME operation: expected"
                                 " 'subtract': {'value': MB}") from None
        if not 0 < cut < have.disk:
            raise OperationError(f"Invalid SHRINK_VOLUME operation: subtract {cut:g} MB must"
                                 f" be above 0 and below the volume's {have.disk:g} MB")
        back = Resources({"disk": cut})
        pool.portion.add(have.reservation, back)
        reserved.add(have.reservation, back)
        grown = have.resized(have.disk - cut)
    pool.portion.volumes[have.id] = grown
    reserved.volumes[have.id] = grown


_HANDLERS: dict[OperationType, Callable[[OperationType, Any, Pool, Portion, Context], None]] = {
    OperationType.RESERVE: _reserve,
    OperationType.UNRESERVE: _unreserve,
    OperationType.CREATE: _create,
    OperationType.DESTROY: _destroy,
    OperationType.GROW_VOLUME: _resize,
    OperationType.SHRINK_VOLUME: _resize,
}


def body_of(op: Any) -> Any:
    """The raw body of an ``Offer.Operation`` (``op.reserve`` for a RESERVE, ...)."""
    return getattr(op, op.type.value.lower(), None)


def converted(op_type: OperationType, body: Any) -> list[dict[str, Any]] | None:
    """``OperationStatus.converted_resources`` of an operation that finished: what its
    resources became (None for a resize, which converts nothing)."""
    if op_type is OperationType.RESERVE:
        return list(body["resources"])
    if op_type is OperationType.CREATE:
        return list(body["volumes"])
    if op_type is OperationType.UNRESERVE:
        out: list[dict[str, Any]] = []
        for k, res in split(body["resources"])[1].reserved.items():
            below = k.popped()
            out.extend(res.to_json("*") if below is None
                       else Portion({below: res}).to_json())
        return out
    if op_type is OperationType.DESTROY:
        return [{k: v for k, v in item.items() if k != "disk"} for item in body["volumes"]]
    return None
