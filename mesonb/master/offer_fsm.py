"""The offer's life, as the master sees it: a pure state machine over the outstanding offers.

The allocator's decisions become offers (:class:`Made`); each then ends exactly once. The
framework ACCEPTs or DECLINEs it, the master RESCINDs it (its agent went away, its framework
disconnected, role weights changed), or it is held past the offer timeout (Mesos's master
flag ``--offer_timeout``; ``--offer-timeout`` here, none by default as in Mesos) and
EXPIRES: the framework is told RESCIND and the resources go back to the allocator. Unlike
Mesos, which recovers them with no filter, an expired offer counts as declined with a
DECLINE's default filter (:class:`Refuse`, ``refuse_seconds`` 5): the allocator breaks
equal shares by framework id, so without it the framework that sat on the offer would be
offered the same resources again at once, and a notebook left open would starve the
frameworks after it::

                          ACCEPT (its framework)
                    ┌──────────────────────────────► ACCEPTED
                    │     DECLINE (its framework)
      Made ──► OUTSTANDING ─────────────────────────► DECLINED
                    │  │  master takes it back
                    │  └────────────────────────────► RESCINDED
                    │     Tick(now ≥ created + offer timeout)
                    └───────────────────────────────► EXPIRED

Transitions (every ending withdraws the offer from the book, :class:`Withdraw`, and frees
its resources for the next allocation run, :class:`Release`):

===========  =====================================  ===========  ===========================
from         event                                  to           actions
===========  =====================================  ===========  ===========================
(none)       Made(offer)                            OUTSTANDING  (none; tracked for timeout)
OUTSTANDING  Accept(framework, ids) holding it      ACCEPTED     Withdraw, Release, Pooled
OUTSTANDING  Decline(framework, ids) holding it     DECLINED     Withdraw, Release, Pooled
OUTSTANDING  Rescind(offer, notify=True)            RESCINDED    Withdraw, TellRescinded,
                                                                 Release
OUTSTANDING  Rescind(offer, notify=False)           RESCINDED    Withdraw, Release
OUTSTANDING  Tick(now ≥ created + timeout)          EXPIRED      Withdraw, TellRescinded,
                                                                 Refuse, Release
OUTSTANDING  Tick(now < created + timeout)          OUTSTANDING  (none)
ended        Rescind / Tick                         unchanged    (none)
ended/none   Accept/Decline naming it               unchanged    Pooled(problem "Offer X is
                                                                 no longer valid")
===========  =====================================  ===========  ===========================

An ACCEPT or DECLINE names several offers at once; :class:`Pooled` carries what they add up
to, or the first problem with the call (no offers, the same offer twice, an offer that is
not outstanding for this framework, offers on different agents) as Mesos words it. The
offers of a call with a problem end all the same, and their resources go back.

Time comes in as ``now`` (the master's monotonic clock), never read here.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import logging
from collections.abc import Mapping
from typing import Protocol

from mesonb.protocol.resources import Resources

log = logging.getLogger(__name__)
DEFAULT_REFUSE_SECONDS = 5.0  # Mesos's Filters.refuse_seconds default


class OfferState(enum.StrEnum):
    OUTSTANDING = "OUTSTANDING"
    ACCEPTED = "ACCEPTED"
    DECLINED = "DECLINED"
    RESCINDED = "RESCINDED"
    EXPIRED = "EXPIRED"


class OfferRecord(Protocol):
    """What the machine reads and writes of an offer (the book's ``Offer``)."""

    id: str
    framework_id: str
    agent_id: str
    role: str
    resources: Resources
    created: float
    state: OfferState


# Events and actions are values, but not frozen dataclasses: one of each is made for every
# offer, and a frozen dataclass's __init__ costs about 0.3 µs more per field.

# -- events ------------------------------------------------------------------------------
@dataclasses.dataclass(slots=True)
class Made:
    """The allocator offered it, at ``offer.created``."""

    offer: OfferRecord


@dataclasses.dataclass(slots=True)
class Accept:
    framework_id: str
    offer_ids: list[str]


@dataclasses.dataclass(slots=True)
class Decline:
    framework_id: str
    offer_ids: list[str]


@dataclasses.dataclass(slots=True)
class Rescind:
    """The master takes it back; ``notify``: tell its framework (RESCIND)."""

    offer: OfferRecord
    notify: bool = True


@dataclasses.dataclass(slots=True)
class Tick:
    now: float


Event = Made | Accept | Decline | Rescind | Tick


# -- actions -----------------------------------------------------------------------------
@dataclasses.dataclass(slots=True)
class Withdraw:
    """Take the offer out of the book (its resources are no longer offered)."""

    offer: OfferRecord


@dataclasses.dataclass(slots=True)
class Release:
    """Resources on this agent are free again: allocate them soon."""

    agent_id: str


@dataclasses.dataclass(slots=True)
class TellRescinded:
    """Send RESCIND for the offer to its framework."""

    offer: OfferRecord


@dataclasses.dataclass(slots=True)
class Refuse:
    """Filter the offer's resources from its framework for ``seconds``, as a DECLINE
    without filters would."""

    offer: OfferRecord
    seconds: float = DEFAULT_REFUSE_SECONDS


@dataclasses.dataclass(slots=True)
class Pooled:
    """What an ACCEPT or DECLINE took: the offers' agent, resources and role (of the last
    offer taken, ``"*"`` when none was), and the call's first problem, if any."""

    agent_id: str | None
    resources: Resources
    role: str
    problem: str | None


Action = Withdraw | Release | TellRescinded | Refuse | Pooled

TRANSITIONS: dict[tuple[OfferState | None, OfferState], str] = {
    (None, OfferState.OUTSTANDING): "the allocator offered it",
    (OfferState.OUTSTANDING, OfferState.ACCEPTED): "its framework accepted it",
    (OfferState.OUTSTANDING, OfferState.DECLINED): "its framework declined it",
    (OfferState.OUTSTANDING, OfferState.RESCINDED): "the master took it back",
    (OfferState.OUTSTANDING, OfferState.EXPIRED): "held past the offer timeout",
}


class OfferLifecycle:
    """The master's outstanding offers: ``handle(event) -> actions``.

    ``outstanding`` is the book's id -> offer map, read here and changed only by the owner
    carrying out :class:`Withdraw` (and adding what it offers). ``timeout``: seconds an
    offer may stay outstanding (None: forever).
    """

    def __init__(self, outstanding: Mapping[str, OfferRecord], timeout: float | None = None):
        if timeout is not None and not 0 < timeout < float("inf"):
            raise ValueError(f"offer timeout must be a positive number of seconds, not {timeout}")
        self.outstanding = outstanding
        self.timeout = timeout
        self._by_age: collections.deque[OfferRecord] = collections.deque()  # oldest first

    def handle(self, event: Event) -> list[Action]:
        if isinstance(event, Accept):
            return self._take(event.framework_id, event.offer_ids, OfferState.ACCEPTED)
        if isinstance(event, Made):
            event.offer.state = OfferState.OUTSTANDING
            if self.timeout is not None:
                self._by_age.append(event.offer)
            return []
        if isinstance(event, Rescind):
            return self._end(event.offer, OfferState.RESCINDED, event.notify)
        if isinstance(event, Decline):
            return self._take(event.framework_id, event.offer_ids, OfferState.DECLINED)
        if isinstance(event, Tick):
            return self._expire(event.now)
        raise TypeError(f"unknown offer event {event!r}")

    def _end(self, offer: OfferRecord, state: OfferState, notify: bool) -> list[Action]:
        if offer.state is not OfferState.OUTSTANDING:
            return []
        offer.state = state
        if state is OfferState.EXPIRED:
            return [Withdraw(offer), TellRescinded(offer), Refuse(offer), Release(offer.agent_id)]
        if notify:
            return [Withdraw(offer), TellRescinded(offer), Release(offer.agent_id)]
        return [Withdraw(offer), Release(offer.agent_id)]

    def _expire(self, now: float) -> list[Action]:
        if self.timeout is None:
            self._by_age.clear()  # the timeout was switched off
            return []
        cutoff = now - self.timeout
        queue = self._by_age
        actions: list[Action] = []
        while queue:
            offer = queue[0]
            if offer.state is OfferState.OUTSTANDING:
                if offer.created > cutoff:
                    break  # offers are made in time order: the rest are younger
                log.info("offer %s to framework %s expired after %gs", offer.id,
                         offer.framework_id, self.timeout)
                actions += self._end(offer, OfferState.EXPIRED, notify=True)
            queue.popleft()
        return actions

    def _take(self, framework_id: str, offer_ids: list[str], ended: OfferState) -> list[Action]:
        """Mesos's checks of an ACCEPT's or DECLINE's offers (master/validation.cpp)."""
        actions: list[Action] = []
        resources = Resources()
        agent_id: str | None = None
        role = "*"
        problem = None
        if not offer_ids:
            problem = "No offers specified"
        if len(set(offer_ids)) != len(offer_ids):
            problem = "Duplicate offers specified"
        released: set[str] = set()
        for offer_id in dict.fromkeys(offer_ids):
            offer = self.outstanding.get(offer_id)
            if (offer is None or offer.framework_id != framework_id
                    or offer.state is not OfferState.OUTSTANDING):
                problem = problem or f"Offer {offer_id} is no longer valid"
                continue
            offer.state = ended
            actions.append(Withdraw(offer))
            released.add(offer.agent_id)
            if agent_id is not None and offer.agent_id != agent_id:
                problem = problem or "Aggregated offers must belong to one single agent"
                continue
            agent_id = offer.agent_id
            role = offer.role
            resources = resources + offer.resources
        actions.extend(Release(a) for a in released)
        actions.append(Pooled(agent_id, resources, role, problem))
        return actions
