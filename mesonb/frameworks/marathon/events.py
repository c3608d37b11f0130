"""Marathon's event bus: what ``/v2/events`` streams and callback subscribers receive.

Each event is a JSON object with ``eventType`` and ``timestamp`` (Marathon's names, e.g.
``status_update_event``, ``deployment_success``). Subscribers are queues; a slow one
loses its oldest events rather than holding the framework up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

from mesonb.tasks import spawn

from .model import timestamp

log = logging.getLogger(__name__)
QUEUE_LIMIT = 10_000


class Subscription:
    """One listener; ``types`` empty means every event."""

    def __init__(self, types: Iterable[str] = ()) -> None:
        self.types = frozenset(types)
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)

    def offer(self, event: dict[str, Any]) -> None:
        if self.types and event["eventType"] not in self.types:
            return
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait(event)


class EventBus:
    """Publishes events to the subscriptions and to HTTP callback URLs."""

    def __init__(self) -> None:
        self.subscriptions: set[Subscription] = set()
        self.callback_urls: list[str] = []
        self.counts: Counter[str] = Counter()
        self._posts: set[asyncio.Future[Any]] = set()

    def subscribe(self, types: Iterable[str] = ()) -> Subscription:
        sub = Subscription(types)
        self.subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscriptions.discard(sub)

    def publish(self, event_type: str, **fields: Any) -> dict[str, Any]:
        event = {**fields, "eventType": event_type, "timestamp": timestamp()}
        self.counts[event_type] += 1
        for sub in list(self.subscriptions):
            sub.offer(event)
        if self.callback_urls:
            with contextlib.suppress(RuntimeError):  # no loop: nothing to post from
                asyncio.get_running_loop()
                spawn(self._post(event), self._posts, "posting an event", logger=log)
        return event

    async def _post(self, event: dict[str, Any]) -> None:
        from tornado.httpclient import AsyncHTTPClient, HTTPRequest

        body = json.dumps(event)
        for url in list(self.callback_urls):
            try:
                await AsyncHTTPClient().fetch(HTTPRequest(
                    url, method="POST", body=body, request_timeout=5,
                    headers={"Content-Type": "application/json"}), raise_error=False)
            except OSError as exc:
                log.info("event callback %s failed: %s", url, exc)


def sse(event: dict[str, Any]) -> bytes:
    """One server-sent event: ``event:`` line and a single-line JSON ``data:`` line."""
    data = json.dumps(event, separators=(",", ":"))
    return f"event: {event['eventType']}\ndata: {data}\n\n".encode()
