"""What the dataflow driver and its executors say to each other, and how it is framed.

Each executor keeps one TCP connection to the driver (the *control* connection): it
introduces itself with :class:`Hello`, then receives :class:`RunTask` and :class:`Forget`
and answers each task with a :class:`TaskResult`. Executors serve their shuffle outputs to
one another on a second port (:mod:`.shuffle`); that data never passes through the driver
or the Mesos master.

A frame is a 4-byte big-endian length and a pickle. Both ends hold the same shared secret
(``token``, sent in the Mesos task's data): a connection's first frame is the raw token,
and a peer that does not present it is dropped before anything it sends is unpickled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import pickle
import socket
import struct
from typing import Any

_LEN = struct.Struct(">I")
MAX_FRAME = 2**31 - 1


@dataclasses.dataclass
class ExecutorConfig:
    """The Mesos task's data: where the driver listens and the secret to show it."""

    driver: str  # host:port of the control server
    token: str
    executor_id: str
    slots: int = 1
    memory_limit: int = 256 * 2**20  # bytes of persisted partitions kept before spilling
    # The driver serves its control socket over TLS (it runs with mesonb.tls on and a
    # certificate): the executor connects with TLS and serves its shuffle over TLS too.
    tls: bool = False


@dataclasses.dataclass
class Hello:
    """The executor's first message, after the raw token frame."""

    executor_id: str
    shuffle_address: str  # host:port of the executor's shuffle server
    host: str
    pid: int


@dataclasses.dataclass
class RunTask:
    """Run one partition of a stage. ``stage`` is the cloudpickled stage function
    (the same bytes for every task of a stage: executors unpickle it once), ``inputs`` the
    data of source partitions this task reads (``parallelize``), ``locations`` where each
    shuffle's map outputs are: ``{shuffle_id: [(executor_id, address, [map ids])]}``."""

    task_id: int
    stage_key: str
    stage: bytes
    partition: int
    inputs: dict[tuple[int, int], Any]
    locations: dict[int, list[tuple[str, str, list[int]]]]


@dataclasses.dataclass
class TaskResult:
    """How a task ended. A map task's ``sizes`` are the bytes of each reduce bucket; a
    result task's ``value`` is the pickled value. A failed task has ``error`` (the pickled
    exception, or None when it does not pickle), ``error_type`` and ``traceback``;
    ``fetch_failed`` names the executor whose shuffle output could not be read."""

    task_id: int
    ok: bool
    value: bytes | None = None
    sizes: list[int] | None = None
    error: bytes | None = None
    error_type: str = ""
    traceback: str = ""
    fetch_failed: str | None = None
    duration: float = 0.0
    bytes_read: int = 0
    cached: list[tuple[int, int]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Forget:
    """Drop these shuffles' outputs and these persisted partitions."""

    shuffles: list[int] = dataclasses.field(default_factory=list)
    blocks: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    datasets: list[int] = dataclasses.field(default_factory=list)


def dumps(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    size = _LEN.unpack(await reader.readexactly(4))[0]
    return await reader.readexactly(size)


async def read_message(reader: asyncio.StreamReader) -> Any:
    return pickle.loads(await read_frame(reader))


def check_token(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """``n`` bytes from a blocking socket (EOFError if it closes first)."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if not k:
            raise EOFError("connection closed")
        got += k
    return bytes(buf)


def recv_frame(sock: socket.socket) -> bytes:
    return recv_exact(sock, _LEN.unpack(recv_exact(sock, 4))[0])


def frame(data: bytes) -> bytes:
    return _LEN.pack(len(data)) + data
