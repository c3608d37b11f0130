"""In-process transport: a daemon and its clients in one process talk without sockets.

``Cluster.local()`` and ``mesonb local`` run a master, its agents and the functions
framework on one event loop. Between them, the Mesos calls and events are the messages
sent over HTTP (a JSON call in, a status and a JSON body out; the events of a SUBSCRIBE
stream; agent-link frames), but they are handed over on the loop as the JSON objects
they are read into, instead of as text through a TCP socket and an HTTP parser, as
libprocess delivers messages between actors of one process without the network. Both
sides treat what was handed over as read-only. Everything a handler does — authentication, the
leader check, parsing, validation, the 4xx answers — happens the same way.

A daemon that serves in-process registers an :class:`Endpoint` under its ``host:port``;
the scheduler driver's connections (``Connection(..., inproc=True)``) and the agent's
master link look it up before opening a socket, and use it only from the loop it runs
on. Anything an endpoint does not serve in-process (every other path) goes over the
socket as usual, and so does every other client. Set ``MESONB_INPROC=0`` to send
everything over sockets.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

ENV = "MESONB_INPROC"


@dataclass
class Answer:
    """A finished exchange: HTTP status, lower-case headers and the body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class Channel:
    """One direction of an in-process stream or link: what is put in comes out in order,
    on later loop turns (never inside the sender's own call); ``None`` ends it. The
    reader hangs up with :meth:`hang_up`, which runs ``on_hang_up`` (the server side's
    "connection closed") once, on a later turn."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.closed = False
        self.on_hang_up: Callable[[], Any] | None = None

    def hang_up(self) -> None:
        self.end()
        hook, self.on_hang_up = self.on_hang_up, None
        if hook is not None:
            later(hook)

    def put(self, item: Any) -> None:
        if not self.closed:
            self._queue.put_nowait(item)

    def end(self) -> None:
        if not self.closed:
            self._queue.put_nowait(None)
            self.closed = True

    async def get(self) -> Any:
        """The next item; None once the channel has ended."""
        return await self._queue.get()

    async def items(self) -> AsyncIterator[Any]:
        while (item := await self._queue.get()) is not None:
            yield item


class Link(Protocol):
    """An in-process agent link as the agent sees it (the WebSocket's methods it uses)."""

    def write_message(self, message: str) -> asyncio.Future[None]: ...

    async def read_message(self) -> str | None: ...

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class Endpoint(Protocol):
    """What a daemon serves in-process. Each method returns None for what it does not
    serve in-process (the caller then uses the socket)."""

    loop: asyncio.AbstractEventLoop

    def request(self, method: str, path: str, body: bytes,
                headers: Mapping[str, str]) -> Answer | None: ...

    def request_json(self, method: str, path: str, payload: Any,
                     headers: Mapping[str, str]) -> Answer | None:
        """:meth:`request` with a JSON body handed over as its object (one that
        :func:`~mesonb.protocol.jsontext.reads_back`, read-only on both sides): the same
        answer as ``request(method, path, dumpb(payload), headers)``."""
        ...

    def open_stream(self, path: str, body: bytes, headers: Mapping[str, str],
                    chunks: Channel) -> Answer | None: ...

    def open_link(self, path: str, headers: Mapping[str, str]) -> Link | None: ...


_endpoints: dict[tuple[str, int], Endpoint] = {}


def enabled() -> bool:
    value = os.environ.get(ENV)  # read per call: tests switch it
    return value is None or value.strip().lower() not in ("0", "false", "no", "off")


def serve(host: str, port: int, endpoint: Endpoint) -> None:
    """Offer ``endpoint`` to clients in this process that call ``host:port``."""
    _endpoints[(host, port)] = endpoint


def withdraw(host: str, port: int, endpoint: Endpoint) -> None:
    if _endpoints.get((host, port)) is endpoint:
        del _endpoints[(host, port)]


def find_endpoint(host: str, port: int) -> Endpoint | None:
    """The endpoint serving ``host:port`` on the running loop, if any."""
    endpoint = _endpoints.get((host, port))
    if endpoint is None or not enabled():
        return None
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return endpoint if endpoint.loop is running else None


def later(fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn`` on a later turn of the running loop, as a network delivery would."""
    asyncio.get_running_loop().call_soon(fn, *args)
