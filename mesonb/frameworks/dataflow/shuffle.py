"""Shuffle outputs on an executor: written to its sandbox, served to the other executors.

A map task writes its buckets, each pickled, one after the other into one file
``shuffle/<shuffle>-<map>.data`` of the executor's sandbox; the bucket offsets stay in
memory (:class:`ShuffleStore`). A reduce task gets its bucket of every map output: read
from the file when the output is on its own executor, else from the executor holding it,
through that executor's :class:`ShuffleServer` (one request per executor and reduce
partition, naming the map outputs wanted). The driver and the Mesos master never see this
data: the driver only learns each map output's location and bucket sizes.

Wire: the fetching side sends a frame with the raw token, then a pickled
``(shuffle_id, reduce_partition, [map ids])``; the server answers a pickled list of bucket
sizes (``None`` for an output it does not have) followed by the buckets' bytes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import shutil
import socket
import threading
from typing import Any

from mesonb import tls

from . import messages

log = logging.getLogger(__name__)


class FetchFailed(Exception):
    """A map output could not be read from ``executor_id``: the driver recomputes it."""

    def __init__(self, executor_id: str, message: str) -> None:
        super().__init__(f"fetching shuffle data from {executor_id} failed: {message}")
        self.executor_id = executor_id


class ShuffleStore:
    """Map outputs of this executor: files under ``directory``, offsets in memory."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.offsets: dict[tuple[int, int], list[int]] = {}
        self._lock = threading.Lock()

    def path(self, shuffle_id: int, map_id: int) -> str:
        return os.path.join(self.directory, f"{shuffle_id}-{map_id}.data")

    def write(self, shuffle_id: int, map_id: int, buckets: list[Any]) -> list[int]:
        """Write one map output; the byte size of each bucket."""
        sizes, offsets = [], [0]
        tmp = self.path(shuffle_id, map_id) + ".tmp"
        with open(tmp, "wb") as f:
            for bucket in buckets:
                data = pickle.dumps(bucket, protocol=pickle.HIGHEST_PROTOCOL)
                f.write(data)
                sizes.append(len(data))
                offsets.append(offsets[-1] + len(data))
        os.replace(tmp, self.path(shuffle_id, map_id))
        with self._lock:
            self.offsets[(shuffle_id, map_id)] = offsets
        return sizes

    def read(self, shuffle_id: int, map_id: int, partition: int) -> bytes | None:
        offsets = self.offsets.get((shuffle_id, map_id))
        if offsets is None:
            return None
        start, end = offsets[partition], offsets[partition + 1]
        with open(self.path(shuffle_id, map_id), "rb") as f:
            f.seek(start)
            return f.read(end - start)

    def drop(self, shuffle_id: int) -> None:
        with self._lock:
            for key in [k for k in self.offsets if k[0] == shuffle_id]:
                del self.offsets[key]
                with _suppress_oserror():
                    os.unlink(self.path(*key))

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, *rest: Any) -> bool:
        return kind is not None and issubclass(kind, OSError)


class ShuffleServer:
    """Serves this executor's map outputs to other executors (asyncio, on its loop)."""

    def __init__(self, store: ShuffleStore, token: str, secure: bool = False) -> None:
        self.store = store
        self.token = token
        self.secure = secure  # over TLS (mesonb.tls's certificate), as the driver asked
        self.server: asyncio.Server | None = None
        self.address = ""
        self.bytes_served = 0

    async def start(self, host: str) -> str:
        self.server = await asyncio.start_server(
            self._serve, host, 0, ssl=tls.server_context() if self.secure else None)
        port = self.server.sockets[0].getsockname()[1]
        self.address = f"{host}:{port}"
        return self.address

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            token = (await messages.read_frame(reader)).decode(errors="replace")
            if not messages.check_token(token, self.token):
                log.warning("shuffle fetch with a wrong token refused")
                return
            while True:
                try:
                    request = await messages.read_message(reader)
                except asyncio.IncompleteReadError:
                    return
                shuffle_id, partition, map_ids = request
                parts = [self.store.read(shuffle_id, m, partition) for m in map_ids]
                sizes = [None if p is None else len(p) for p in parts]
                writer.write(messages.frame(pickle.dumps(sizes)))
                for part in parts:
                    if part:
                        writer.write(part)
                        self.bytes_served += len(part)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError) as exc:
            log.debug("shuffle connection ended: %s", exc)
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class Fetcher:
    """Reads reduce buckets for tasks (blocking; runs in the task's thread)."""

    def __init__(self, store: ShuffleStore, executor_id: str, token: str,
                 timeout: float = 60.0, secure: bool = False) -> None:
        self.secure = secure
        self.store = store
        self.executor_id = executor_id
        self.token = token
        self.timeout = timeout

    def fetch(self, shuffle_id: int, partition: int,
              locations: list[tuple[str, str, list[int]]]) -> tuple[list[Any], int]:
        """Every map output's bucket ``partition``, in map order; and the bytes read."""
        by_map: dict[int, Any] = {}
        total = 0
        for executor_id, address, map_ids in locations:
            if executor_id == self.executor_id:
                for m in map_ids:
                    data = self.store.read(shuffle_id, m, partition)
                    if data is None:
                        raise FetchFailed(executor_id, f"map output {shuffle_id}/{m} is gone")
                    total += len(data)
                    by_map[m] = pickle.loads(data)
                continue
            for m, data in zip(map_ids, self._remote(executor_id, address, shuffle_id,
                                                      partition, map_ids), strict=True):
                total += len(data)
                by_map[m] = pickle.loads(data)
        return [by_map[m] for m in sorted(by_map)], total

    def _connect(self, host: str, port: int) -> socket.socket:
        sock = socket.create_connection((host, port), timeout=self.timeout)
        if not self.secure:
            return sock
        try:
            return tls.client_context().wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise

    def _remote(self, executor_id: str, address: str, shuffle_id: int, partition: int,
                map_ids: list[int]) -> list[bytes]:
        host, port = address.rsplit(":", 1)
        try:
            with self._connect(host, int(port)) as sock:
                sock.sendall(messages.frame(self.token.encode()))
                sock.sendall(messages.frame(pickle.dumps((shuffle_id, partition, map_ids))))
                sizes = pickle.loads(messages.recv_frame(sock))
                if any(s is None for s in sizes):
                    raise FetchFailed(executor_id, "map outputs are gone")
                return [messages.recv_exact(sock, s) if s else b"" for s in sizes]
        except (OSError, EOFError) as exc:
            raise FetchFailed(executor_id, str(exc)) from None
