"""The feed's fan-out: one model, many browsers, one encoded delta per flush.

A page connects (WebSocket ``/ui/feed``), gets the snapshot, then every
:attr:`Hub.interval` seconds the changes since the last flush, encoded once for all
pages. Sources (the live master, a replayed history) write records into
:attr:`Hub.model` through :meth:`Hub.apply`; listeners (the history recorder) see each
record as it is applied.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

import tornado.ioloop

from .model import UiModel

log = logging.getLogger(__name__)
Listener = Callable[[dict[str, Any]], None]


class Client(Protocol):
    def send_text(self, text: str) -> None: ...


class Source(Protocol):
    """What fills the model: told when pages start and stop watching."""

    def watch(self) -> None: ...

    def unwatch(self) -> None: ...


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


class Hub:
    """The model behind every page of one cluster (live or replayed)."""

    interval = 0.1

    def __init__(self, *, read_only: bool = False, secret: str | None = None) -> None:
        self.model = UiModel()
        self.read_only = read_only
        self.secret = secret  # sent to agents when the master proxies their files
        self.clients: set[Client] = set()
        self.listeners: list[Listener] = []
        self.source: Source | None = None
        self._timer: tornado.ioloop.PeriodicCallback | None = None

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        for _client in list(self.clients):
            self.detach(_client)

    def apply(self, record: dict[str, Any]) -> None:
        self.model.apply(record)
        for listener in list(self.listeners):
            try:
                listener(record)
            except Exception:
                log.exception("web UI record listener failed; removing it")
                self.listeners.remove(listener)

    def attach(self, client: Client) -> None:
        """A new page: it gets the whole model now, deltas from the next flush on.

        The first page starts the source's sampling and the flush timer; the last one to
        leave stops them, so an unwatched cluster costs nothing but its task events."""
        if self.source is not None:
            self.source.watch()
        self.flush()  # what the pages already open have not seen yet goes to them only
        self.clients.add(client)
        if self._timer is None:
            self._timer = tornado.ioloop.PeriodicCallback(self.flush, self.interval * 1000)
            self._timer.start()
        snapshot = self.model.snapshot()
        snapshot["read_only"] = self.read_only
        client.send_text(encode(snapshot))

    def detach(self, client: Client) -> None:
        if client not in self.clients:
            return
        self.clients.discard(client)
        if self.source is not None:
            self.source.unwatch()
        if not self.clients and self._timer is not None:
            self._timer.stop()
            self._timer = None

    def flush(self) -> None:
        delta = self.model.take_delta()
        if delta is None or not self.clients:
            return
        text = encode(delta)
        for client in list(self.clients):
            try:
                client.send_text(text)
            except Exception:
                log.info("web UI page gone while sending; dropping it")
                self.detach(client)

    def agent_url(self, agent_id: str) -> str | None:
        """``http(s)://ip:port`` of an agent the model knows."""
        row = self.model.tables["agents"].rows.get(agent_id)
        if row is None or not row.get("address"):
            return None
        from mesonb import tls

        return tls.address_url(row['address'])
