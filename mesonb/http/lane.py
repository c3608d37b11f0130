"""The calls lane: a mesonb master's second port for a framework's non-SUBSCRIBE calls.

A mesonb master answers SUBSCRIBE with a ``Mesonb-Calls-Port`` header naming a TCP port,
bound on the same address as its HTTP port, that serves ``POST /api/v1/scheduler`` for
every call but SUBSCRIBE: the same HTTP/1.1 requests and answers, credentials, checks
and errors, parsed with :mod:`mesonb.http.wire` (httptools) instead of tornado's request
machinery, which cost the master 3-4 times as much CPU per call
(:mod:`mesonb.master.http.scheduler_lane` serves it). TLS when the master speaks TLS.

mesonb's scheduler driver sends its calls there (:func:`calls_for`); when the lane
cannot be reached it falls back to the master's HTTP port for good. Other Mesos clients
(pymesos, ...) ignore the header and keep using the HTTP port.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from . import wire
from .client import Connection, Response

log = logging.getLogger(__name__)
LANE_HEADER = "Mesonb-Calls-Port"
CONNECT_TIMEOUT = 5.0  # seconds; a lane that does not answer by then is not used


class LaneUnreachable(Exception):
    """The lane's port could not be connected to (nothing was sent)."""


class LaneConnection(Connection):
    """Requests over the calls lane; over ``fallback`` (the master's HTTP port) once the
    lane cannot be reached. A request whose connection breaks after it was sent is not
    sent again elsewhere: it fails as it would on the HTTP port."""

    def __init__(self, fallback: Connection, port: int) -> None:
        super().__init__(fallback.host, port, fallback.default_headers,
                         secure=fallback.secure)
        self.fallback = fallback
        self.failed = False

    async def _open(self) -> tuple[wire.ResponseReader, asyncio.StreamWriter]:
        if self._writer is not None and not self._writer.is_closing():
            return await super()._open()  # open: no wait_for (a task and 3 loop turns)
        try:
            return await asyncio.wait_for(super()._open(), CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise LaneUnreachable(f"{self.host}:{self.port}: {exc}") from exc

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: Mapping[str, str] | None = None) -> Response:
        if not self.failed:
            try:
                return await super().request(method, path, body, headers)
            except LaneUnreachable as exc:
                if not self.failed:
                    log.warning("calls go to the master's HTTP port: its calls lane "
                                "cannot be reached (%s)", exc)
                self.failed = True
                super().close()
        return await self.fallback.request(method, path, body, headers)

    def close(self) -> None:
        super().close()
        self.fallback.close()


def calls_for(current: Connection, answer_headers: Mapping[str, str]) -> Connection:
    """The connection for a framework's calls after a SUBSCRIBE answered with
    ``answer_headers`` (lower-case names): the lane it names, else the master's HTTP port.
    ``current`` is the connection used so far (a lane of an earlier subscription is left)."""
    port = answer_headers.get(LANE_HEADER.lower(), "")
    base = current.fallback if isinstance(current, LaneConnection) else current
    if isinstance(current, LaneConnection) and str(current.port) == port \
            and not current.failed:
        return current  # the same master's lane, still open
    if isinstance(current, LaneConnection):
        Connection.close(current)  # that lane only: the HTTP connection stays
    if not port.isdigit() or not 0 < int(port) < 65536:
        return base
    base.close()  # its idle keep-alive connection (it reopens if the lane fails)
    return LaneConnection(base, int(port))
