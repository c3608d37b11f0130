"""Where the framework keeps its state: app definitions and their versions, deployments,
instances and the framework id. On the local disk (one JSON file per key under a
directory) or in ZooKeeper (one znode per key under ``<zk path>/state``), so that a
restarted or newly elected ``mesonb marathon`` takes over where the last one stopped.

Keys are ``/``-separated names (``apps/web``, ``versions/web/2024-...``); app ids are
escaped into one segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

log = logging.getLogger(__name__)


def key_part(app_id: str) -> str:
    """An app id as one key segment: ``/a/b`` -> ``%2Fa%2Fb``."""
    return quote(app_id, safe="")


def from_key_part(part: str) -> str:
    return unquote(part)


class Store:
    """The interface: ``get``, ``put``, ``delete``, ``children`` (async)."""

    async def get(self, key: str) -> Any | None:
        raise NotImplementedError

    async def put(self, key: str, value: Any) -> None:
        raise NotImplementedError

    async def delete(self, key: str) -> None:
        raise NotImplementedError

    async def children(self, key: str) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the store holds."""


class MemoryStore(Store):
    """For tests and for an embedded framework that need not survive a restart."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def get(self, key: str) -> Any | None:
        return self.data.get(key)

    async def put(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))

    async def delete(self, key: str) -> None:
        for k in [k for k in self.data if k == key or k.startswith(key + "/")]:
            del self.data[k]

    async def children(self, key: str) -> list[str]:
        prefix = key.rstrip("/") + "/"
        return sorted({k[len(prefix):].split("/")[0] for k in self.data if k.startswith(prefix)})


class LocalStore(Store):
    """JSON files under ``directory`` (written to a temporary name, then renamed)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.directory.joinpath(*key.split("/"))

    async def get(self, key: str) -> Any | None:
        path = self._path(key) / "value.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            log.error("unreadable %s; ignoring it", path)
            return None

    async def put(self, key: str, value: Any) -> None:
        directory = self._path(key)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / "value.json.tmp"
        tmp.write_text(json.dumps(value))
        os.replace(tmp, directory / "value.json")

    async def delete(self, key: str) -> None:
        path = self._path(key)
        if not path.exists():
            return
        for child in sorted(path.rglob("*"), reverse=True):
            if child.is_dir():
                child.rmdir()
            else:
                child.unlink()
        path.rmdir()

    async def children(self, key: str) -> list[str]:
        path = self._path(key)
        if not path.is_dir():
            return []
        return sorted(p.name for p in path.iterdir() if p.is_dir())


class ZooKeeperStore(Store):
    """Znodes under ``<root>/state`` through a kazoo client (calls run in a thread)."""

    def __init__(self, client: Any, root: str) -> None:
        self.client = client
        self.root = root.rstrip("/") + "/state"

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    async def get(self, key: str) -> Any | None:
        from kazoo.exceptions import NoNodeError

        try:
            data, _stat = await asyncio.to_thread(self.client.get, self._path(key))
        except NoNodeError:
            return None
        return json.loads(data) if data else None

    async def put(self, key: str, value: Any) -> None:
        data = json.dumps(value).encode()
        await asyncio.to_thread(self._put, self._path(key), data)

    def _put(self, path: str, data: bytes) -> None:
        from kazoo.exceptions import (
            NodeExistsError,
            NoNodeError,
        )

        try:
            self.client.set(path, data)
        except NoNodeError:
            try:
                self.client.create(path, data, makepath=True)
            except NodeExistsError:
                self.client.set(path, data)

    async def delete(self, key: str) -> None:
        from kazoo.exceptions import NoNodeError

        with contextlib.suppress(NoNodeError):
            await asyncio.to_thread(self.client.delete, self._path(key), recursive=True)

    async def children(self, key: str) -> list[str]:
        from kazoo.exceptions import NoNodeError

        try:
            return sorted(await asyncio.to_thread(self.client.get_children, self._path(key)))
        except NoNodeError:
            return []
