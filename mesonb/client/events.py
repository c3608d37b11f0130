"""The master's operator event stream (``SUBSCRIBE``), opened at the leading master.

Views (the dashboard) read the cluster's events through :meth:`Cluster.operator_stream
<mesonb.client.Cluster.operator_stream>`: the client finds the leader the way it finds it
for every other call (a ``zk://`` cluster's :class:`~.leader.LeaderConnection`, which
follows failovers; else the one master), and a standby's redirect is followed. A view
that loses its stream opens another one the same way.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from mesonb.frameworks.driver import master_url
from mesonb.http.client import HTTPError, open_stream
from mesonb.protocol.recordio import Decoder

from .leader import LeaderConnection

REDIRECTS = 3


class EventStream:
    """Operator events as dicts (``async for event in stream.events()``), from ``url``."""

    def __init__(self, stream: Any, url: str) -> None:
        self.url = url
        self._stream = stream

    async def batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        """The events of each chunk read, as they come (one list per read)."""
        decoder = Decoder()
        async for chunk in self._stream.chunks:
            yield [json.loads(record) for record in decoder.feed(chunk)]

    def close(self) -> None:
        self._stream.close()


async def leader_url(master: Any, address: str) -> str:
    """``http://host:port`` of the leading master, as the client knows it now."""
    if isinstance(master, LeaderConnection):
        # an operator call goes to the leader (a standby redirects), which names it
        await master.post_json("/api/v1", {"type": "GET_HEALTH"})
        return master.url
    return master_url(address)


async def open_events(master: Any, address: str, headers: Mapping[str, str]) -> EventStream:
    """SUBSCRIBE at the leading master (following a standby's redirect)."""
    url = await leader_url(master, address)
    for _ in range(REDIRECTS):
        try:
            stream = await open_stream(url, "/api/v1", {"type": "SUBSCRIBE"}, headers)
            return EventStream(stream, url)
        except HTTPError as exc:  # a standby names the leader
            location = exc.headers.get("location", "")
            if exc.status != 307 or not location:
                raise
            target = urlsplit(location if "//" in location else f"//{location}")
            url = f"{urlsplit(url).scheme}://{target.hostname}:{target.port or 5050}"
    raise ConnectionError(f"{url}: too many redirects")
