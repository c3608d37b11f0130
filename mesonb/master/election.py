"""Leader election in ZooKeeper, in Mesos's layout: the contender state machine and its
kazoo driver.

Each master creates an ephemeral sequential znode ``<path>/json.info_NNNNNNNNNN`` holding
its MasterInfo JSON; the lowest sequence leads. The machine (pure, time comes in)::

                 membership: ours is lowest
    CONTENDING ───────────────────────────────────────────► LEADING
      │   ▲  ▲                                                │  │
      │   │  │ session lost (LOST, or SUSPENDED past the      │  │ SUSPENDED: keep leading,
      │   │  │ session timeout): re-contend on reconnect      │  │ but only until the session
      │   │  │                                                │  │ timeout; our znode vanished
      │   │  │  ours is lowest                                │  │ or session lost:
      │   │  └──────────────────── STANDBY(leader) ◄──────────┘  ▼
      └───┼─ another is lowest ─►  (follows the lowest)        ABORTED  (terminal)
          └──── session lost ──────────┘

Why a leader that loses its session aborts (exits non-zero) rather than stepping down:
as in Mesos, its in-memory book (offers, task states, connected frameworks) may already
disagree with what a new leader is doing; a fresh process rebuilds from the registry and
re-registering agents, and a supervisor (systemd, Marathon, the bench) restarts it.

Events come from kazoo threads; the driver marshals them onto the IOLoop with
``IOLoop.add_callback`` and the machine runs only there.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
from collections.abc import Callable
from typing import Any

from mesonb.discovery import MASTER_LABEL, ZkUrl, choose_leader, make_client, master_address

log = logging.getLogger(__name__)


class State(enum.StrEnum):
    CONTENDING = "CONTENDING"
    LEADING = "LEADING"
    STANDBY = "STANDBY"
    ABORTED = "ABORTED"


# -- events ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Created:
    node: str  # our znode's name, e.g. "json.info_0000000003"


@dataclasses.dataclass(frozen=True)
class Membership:
    children: tuple[str, ...]
    leader_address: str | None  # address in the lowest znode (None if it is ours/unread)


@dataclasses.dataclass(frozen=True)
class Suspended:
    now: float


@dataclasses.dataclass(frozen=True)
class Reconnected:
    now: float


@dataclasses.dataclass(frozen=True)
class SessionLost:
    now: float


@dataclasses.dataclass(frozen=True)
class Tick:
    now: float


Event = Created | Membership | Suspended | Reconnected | SessionLost | Tick


# -- actions -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Lead:
    pass


@dataclasses.dataclass(frozen=True)
class Follow:
    leader: str | None  # None: nobody known to lead right now


@dataclasses.dataclass(frozen=True)
class Contend:
    """Create a new znode (after the old session was lost)."""


@dataclasses.dataclass(frozen=True)
class Abort:
    reason: str


Action = Lead | Follow | Contend | Abort

TRANSITIONS: dict[tuple[State, State], str] = {
    (State.CONTENDING, State.LEADING): "our znode is the lowest",
    (State.CONTENDING, State.STANDBY): "another znode is the lowest",
    (State.STANDBY, State.LEADING): "the leaders before us left",
    (State.STANDBY, State.CONTENDING): "session lost while standing by",
    (State.LEADING, State.ABORTED): "session lost, or our znode vanished, while leading",
}


class Election:
    """The contender's state: ``handle(event) -> actions``."""

    def __init__(self, session_timeout: float) -> None:
        self.session_timeout = session_timeout
        self.state = State.CONTENDING
        self.node: str | None = None
        self.children: tuple[str, ...] = ()
        self.leader: str | None = None
        self.suspended_until: float | None = None
        self._lost = False  # the session was lost: contend again once reconnected
        self._followed: str | None = None  # the leader last announced with Follow

    def _go(self, state: State) -> None:
        if state is not self.state:
            assert (self.state, state) in TRANSITIONS, (self.state, state)
            log.info("election: %s -> %s (%s)", self.state, state, TRANSITIONS[self.state, state])
            self.state = state

    def handle(self, event: Event) -> list[Action]:
        if self.state is State.ABORTED:
            return []
        if isinstance(event, Created):
            self.node = event.node
            return self._evaluate()
        if isinstance(event, Membership):
            self.children = event.children
            self.leader = event.leader_address
            return self._evaluate()
        if isinstance(event, Suspended):
            self.suspended_until = event.now + self.session_timeout
            return []
        if isinstance(event, Tick):
            if self.suspended_until is not None and event.now >= self.suspended_until:
                return self._lose("no ZooKeeper connection for the whole session timeout")
            return []
        if isinstance(event, SessionLost):
            return self._lose("ZooKeeper session expired")
        if isinstance(event, Reconnected):
            self.suspended_until = None
            if self._lost:
                self._lost = False
                return [Contend()]
            return []
        raise TypeError(f"unknown election event {event!r}")

    def _lose(self, why: str) -> list[Action]:
        self.suspended_until = None
        if self.state is State.LEADING:
            self._go(State.ABORTED)
            return [Abort(why)]
        self._go(State.CONTENDING)
        self.node, self.children, self.leader, self._lost = None, (), None, True
        self._followed = None
        return [Follow(None)]

    def _evaluate(self) -> list[Action]:
        lowest = choose_leader(self.children)
        if self.state is State.LEADING:
            if self.node is not None and self.node not in self.children:
                self._go(State.ABORTED)
                return [Abort("our election znode vanished")]
            return []
        if lowest is not None and lowest == self.node:
            self._go(State.LEADING)
            return [Lead()]
        if lowest is None or self.leader is None:
            if self._followed is not None:
                self._followed = None
                return [Follow(None)]
            return []
        self._go(State.STANDBY)
        if self._followed != self.leader:
            self._followed = self.leader
            return [Follow(self.leader)]
        return []


class ZooKeeperContender:
    """Drives an :class:`Election` from a kazoo client; calls ``on_action`` on the IOLoop.

    ``schedule`` must be thread-safe (``IOLoop.add_callback``); ``now`` reads the clock.
    """

    def __init__(
        self,
        url: ZkUrl,
        info: bytes,
        schedule: Callable[..., None],
        on_action: Callable[[Action], None],
        now: Callable[[], float],
        session_timeout: float = 10.0,
        client: Any = None,
    ) -> None:
        self.url = url
        self.info = info
        self.schedule = schedule
        self.on_action = on_action
        self.now = now
        self.election = Election(session_timeout)
        self.client = client if client is not None else make_client(url, session_timeout)
        self.node_path: str | None = None  # our znode's full path (the registry's fence)
        self._own_address = master_address(info)
        self._stopped = False
        self._create_lock = threading.Lock()

    # -- lifecycle (blocking: call from a worker thread) --------------------------------
    def start(self, timeout: float = 30.0) -> None:
        from kazoo.recipe.watchers import ChildrenWatch

        self.client.start(timeout=timeout)
        self.client.add_listener(self._on_state)
        self.client.ensure_path(self.url.path)
        self._create()
        ChildrenWatch(self.client, self.url.path, self._on_children)

    def stop(self) -> None:
        """Leave the election (our znode goes with the session) and close the client."""
        self._stopped = True
        self.client.remove_listener(self._on_state)
        try:
            self.client.stop()
        finally:
            self.client.close()

    def tick(self) -> None:
        """Call on the IOLoop now and then (the daemon's timer): enforces the session timeout."""
        self._handle(Tick(self.now()))

    # -- IOLoop side ------------------------------------------------------------------
    def _handle(self, event: Event) -> None:
        if self._stopped:
            return
        for action in self.election.handle(event):
            if isinstance(action, Contend):
                threading.Thread(target=self._create, daemon=True, name="zk-contend").start()
            else:
                self.on_action(action)

    def _post(self, event: Event) -> None:
        self.schedule(self._handle, event)

    # -- kazoo threads ------------------------------------------------------------------
    def _create(self) -> None:
        with self._create_lock:
            try:
                path = self.client.create(f"{self.url.path}/{MASTER_LABEL}", self.info,
                                          ephemeral=True, sequence=True, makepath=True)
            except Exception:
                if not self._stopped:
                    log.exception("could not create the election znode")
                return
            self.node_path = path
            log.info("contending for leadership as %s", path)
            self._post(Created(path.rsplit("/", 1)[1]))

    def _on_children(self, children: list[str]) -> bool | None:
        if self._stopped:
            return False
        lowest = choose_leader(children)
        address = None
        if lowest is not None and self.node_path != f"{self.url.path}/{lowest}":
            try:
                data, _ = self.client.get(f"{self.url.path}/{lowest}")
                address = master_address(data)
            except Exception as exc:  # gone already (the watch fires again) or bad data
                log.debug("could not read leader znode %s: %r", lowest, exc)
            if address == self._own_address:  # ours, before create() told us its name
                address = None
        self._post(Membership(tuple(children), address))
        return None

    def _on_state(self, state: Any) -> None:
        from kazoo.protocol.states import KazooState

        if state == KazooState.SUSPENDED:
            self._post(Suspended(self.now()))
        elif state == KazooState.LOST:
            self._post(SessionLost(self.now()))
        elif state == KazooState.CONNECTED:
            self._post(Reconnected(self.now()))
