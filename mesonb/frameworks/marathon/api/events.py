"""``GET /v2/events``: Marathon's server-sent events. Needs ``Accept: text/event-stream``
(405 otherwise, as Marathon); ``event_type`` (repeatable) filters. A standby redirects to
the leader (marathon-python follows redirects itself)."""

from __future__ import annotations

import asyncio
import contextlib

from tornado.iostream import StreamClosedError

from mesonb import tls

from ..events import sse
from ..model import timestamp
from .base import MarathonHandler

KEEPALIVE = 15.0
CLOSED: dict = {"eventType": "__closed__"}  # put in the queue when the connection closes


class EventsHandler(MarathonHandler):
    local = True

    async def get(self) -> None:
        if "text/event-stream" not in (self.request.headers.get("Accept") or ""):
            self.write_json({"message": "Expecting 'Accept: text/event-stream'"}, 405)
            return
        if not self.service.is_leader:
            leader = self.service.leader_address
            if not leader:
                self.write_json({"message": "Could not determine the current leader"}, 503)
                return
            self.redirect(tls.address_url(leader, self.request.uri or ""), status=307)
            return
        types = [t for value in self.get_query_arguments("event_type")
                 for t in value.split(",") if t]
        bus = self.service.core.bus
        sub = self._sub = bus.subscribe(types)
        self.set_header("Content-Type", "text/event-stream")
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.set_nodelay(True)
        try:
            attached = {"remoteAddress": self.request.remote_ip, "eventType":
                        "event_stream_attached"}
            if not types or "event_stream_attached" in types:
                attached["timestamp"] = timestamp()
                self.write(sse(attached))
            await self.flush()
            while True:
                try:
                    event = await asyncio.wait_for(sub.queue.get(), KEEPALIVE)
                    if event is CLOSED:
                        return
                    chunk = sse(event)
                    while not sub.queue.empty():
                        chunk += sse(sub.queue.get_nowait())
                    self.write(chunk)
                except TimeoutError:
                    self.write(b"\n")
                await self.flush()
        except StreamClosedError:
            pass
        finally:
            bus.unsubscribe(sub)
            with contextlib.suppress(Exception):
                self.finish()

    def on_connection_close(self) -> None:
        """The client left (or the server stops): end the wait for the next event."""
        sub = getattr(self, "_sub", None)
        if sub is not None:
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(CLOSED)
        super().on_connection_close()
