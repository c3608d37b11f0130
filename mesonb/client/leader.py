"""The client's connection to whichever master leads, for ``Cluster("zk://...")``.

:class:`LeaderConnection` has :class:`mesonb.http.client.Connection`'s ``request``,
``post_json`` and ``close``. A :class:`mesonb.discovery.LeaderWatch` watches the
ZooKeeper path in the background, so every call goes to the current leader without a
ZooKeeper round trip. A call that meets a dead master (connection refused or reset), a
standby (307 ``//leader:port/path``) or a master still recovering (503) is sent again, to
the leader named by the redirect or by ZooKeeper, until ``timeout`` runs out; then the
last error (or answer) is what the caller gets. Operator calls and ``GET``\\ s are
idempotent, so sending one twice is harmless::

    conn = LeaderConnection("zk://127.0.0.1:2181/mesonb", headers={})
    await conn.start()
    state = (await conn.request("GET", "/master/state")).json()
    conn.close()
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from mesonb import discovery
from mesonb.frameworks.driver import master_url, resolve_master_url
from mesonb.http.client import Connection, HTTPError, Response, Stream, open_stream

log = logging.getLogger(__name__)
RETRY_STATUSES = (307, 503)
MAX_REDIRECTS = 3


async def open_master_stream(master: str, path: str, payload: Any,
                             headers: Mapping[str, str] | None = None,
                             timeout: float = 30.0) -> tuple[Stream, str]:
    """Open a streaming call (an operator or scheduler SUBSCRIBE) on the leading master.

    ``master`` is ``host:port`` or a ``zk://`` URL (looked up in ZooKeeper); a standby's
    307 is followed to the leader it names. Returns the stream and the leader's
    ``http://host:port``; raises HTTPError for any other refusal, ConnectionError after
    too many redirects, TimeoutError when no master leads::

        stream, url = await open_master_stream("zk://zk1:2181/mesonb", "/api/v1",
                                               {"type": "SUBSCRIBE"})
    """
    url = await resolve_master_url(master, timeout)
    for _ in range(MAX_REDIRECTS):
        try:
            return await open_stream(url, path, payload, headers), url
        except HTTPError as exc:  # a standby names the leader
            location = exc.headers.get("location")
            if exc.status != 307 or not location:
                raise
            url = master_url(discovery.redirected_master(location))
    raise ConnectionError(f"{master}: too many redirects")


class LeaderConnection:
    """A keep-alive connection that follows the leading master named by a ``zk://`` URL."""

    def __init__(self, spec: str, headers: Mapping[str, str] | None = None, *,
                 timeout: float = 30.0, session_timeout: float = 10.0) -> None:
        self.spec = spec
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.url = ""  # http://host:port of the master the last call went to
        self._conn: Connection | None = None
        # ValueError now for a malformed URL
        self._watch = discovery.LeaderWatch(spec, self._on_leader,
                                            session_timeout=session_timeout)

    async def start(self) -> str:
        """Connect to ZooKeeper and wait for a leader; its ``http://host:port``."""
        await self._watch.start(self.timeout, fallback=False)
        return await self._target(time.monotonic() + self.timeout)

    def _on_leader(self, address: str | None) -> None:  # on the client's loop
        log.info("leading master: %s", address or "none")

    async def _target(self, deadline: float) -> str:
        """The current leader's URL, waiting for one while none leads."""
        return master_url(await self._watch.wait(deadline - time.monotonic()))

    def _use(self, url: str) -> Connection:
        if self._conn is None or url != self.url:
            if self._conn is not None:
                self._conn.close()
            self._conn = Connection.to(url, self.headers)
            self.url = url
        return self._conn

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: Mapping[str, str] | None = None) -> Response:
        deadline = time.monotonic() + self.timeout
        redirect: str | None = None
        while True:
            url = redirect or await self._target(deadline)
            redirect = None
            conn = self._use(url)
            try:
                answer = await conn.request(method, path, body, headers)
            except (OSError, asyncio.IncompleteReadError) as exc:
                conn.close()
                if time.monotonic() >= deadline:
                    raise
                log.info("master %s: %s; asking ZooKeeper for the leader", url, exc)
                await self._pause(url, deadline)
                continue
            if answer.status not in RETRY_STATUSES or time.monotonic() >= deadline:
                return answer
            location = answer.headers.get("location", "")
            if answer.status == 307 and location.startswith("//"):
                redirect = master_url(discovery.redirected_master(location))
                if redirect == url:
                    redirect = None
            if redirect is None:
                await self._pause(url, deadline)

    async def _pause(self, failed: str, deadline: float) -> None:
        """Wait until ZooKeeper names a leader other than ``failed``, or 0.1 s at most."""
        leader = self._watch.leader
        if leader is not None and master_url(leader) != failed:
            return
        await self._watch.changed(min(0.1, max(0.0, deadline - time.monotonic())))

    async def post_json(self, path: str, payload: Any,
                        headers: Mapping[str, str] | None = None) -> Response:
        body = json.dumps(payload, separators=(",", ":")).encode()
        answer = await self.request("POST", path, body, {
            "Content-Type": "application/json", "Accept": "application/json",
            **(headers or {})})
        if answer.status >= 300:
            raise HTTPError(answer.status, answer.body, answer.headers)
        return answer

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._watch.close()
