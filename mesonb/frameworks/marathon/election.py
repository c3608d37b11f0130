"""Leader election among several ``mesonb marathon --zk`` instances (kazoo).

Each instance creates an ephemeral sequential znode ``<path>/leader/member_NNNNNNNNNN``
holding its ``host:port``; the lowest sequence leads. Standbys watch the children, so
when the leader's session ends (kill -9: after the session timeout) the next one learns
it at once. Abdicating deletes the own znode and joins again at the end of the line.
Callbacks run on the asyncio loop given to :meth:`start`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
PREFIX = "member_"


class Election:
    """Membership in the election; ``on_change(is_leader, leader_address)``."""

    def __init__(self, client: Any, path: str, address: str,
                 on_change: Callable[[bool, str | None], None]) -> None:
        self.client = client
        self.path = path.rstrip("/") + "/leader"
        self.address = address
        self.on_change = on_change
        self.node: str | None = None
        self.leader: str | None = None
        self.is_leader = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.client.add_listener(self._connection)
        await asyncio.to_thread(self._join)
        await asyncio.sleep(0)  # the first report (queued by _join) has been handled

    def _connection(self, state: str) -> None:
        """kazoo's state listener: a lost session lost the znode; join again on reconnect."""
        if self._stopped:
            return
        if state == "LOST":
            self.node = None
            if self.is_leader and self._loop is not None:
                self.is_leader = False
                self._loop.call_soon_threadsafe(self.on_change, False, None)
        elif state == "CONNECTED" and self.node is None:
            threading.Thread(target=self._safe_join, daemon=True).start()

    def _safe_join(self) -> None:
        try:
            self._join()
        except Exception as exc:
            log.warning("joining the election again failed: %s", exc)

    def _join(self) -> None:
        self.client.ensure_path(self.path)
        self.node = self.client.create(f"{self.path}/{PREFIX}", self.address.encode(),
                                       ephemeral=True, sequence=True)
        self._look()

    def _look(self, _event: Any = None) -> None:
        """Read the members (and watch them again)."""
        if self._stopped:
            return
        try:
            children = sorted(c for c in self.client.get_children(self.path, watch=self._look)
                              if c.startswith(PREFIX))
            leader = None
            if children:
                data, _ = self.client.get(f"{self.path}/{children[0]}")
                leader = data.decode()
            mine = self.node.rsplit("/", 1)[-1] if self.node else None
            is_leader = bool(children) and children[0] == mine
        except Exception as exc:  # connection trouble: the state listener handles it
            log.warning("reading the election failed: %s", exc)
            return
        if (is_leader, leader) != (self.is_leader, self.leader):
            self.is_leader, self.leader = is_leader, leader
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self.on_change, is_leader, leader)

    async def abdicate(self) -> None:
        """Leave the lead: drop the own znode and queue up again."""
        await asyncio.to_thread(self._rejoin)

    def _rejoin(self) -> None:
        if self.node:
            with contextlib.suppress(Exception):
                self.client.delete(self.node)
        self.node = None
        self._join()

    async def stop(self) -> None:
        self._stopped = True
        if self.node:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.client.delete, self.node)
            self.node = None
