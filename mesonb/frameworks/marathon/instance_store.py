"""The instances of each app, persisted in shards so that no key outgrows ZooKeeper.

A znode holds at most 1 MB (``jute.maxbuffer``), about 2,300 instances in one list: an
app's instances are spread over keys ``instances/<app>/<shard>`` by a hash of their id,
as many shards as it takes to keep each near :data:`SHARD_SIZE` instances (a power of
two: 1 up to 500 instances, 32 for 10,000, ~150 KB each). Only the shards whose content
changed are written again (one status update rewrites one shard, not the whole list);
when the count changes the instances move and stale shards are removed. An app's list
stored whole under ``instances/<app>`` by an earlier version is read, rewritten as
shards and cleared.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any

from .instances import Instance
from .storage import Store, key_part

log = logging.getLogger(__name__)
SHARD_SIZE = 500


def shard_count(instances: int) -> int:
    """How many shards ``instances`` instances take: a power of two."""
    count = 1
    while count * SHARD_SIZE < instances:
        count *= 2
    return count


def shard_of(instance_id: str, count: int) -> str:
    """The shard an instance is kept in among ``count`` (by its id only)."""
    return f"{zlib.crc32(instance_id.encode()) % count:02d}"


class InstanceStore:
    """Reads and writes the instances of apps through a :class:`~.storage.Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # app id -> shard -> the items last stored (compared by value: no serialising)
        self._written: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self._legacy: set[str] = set()  # apps whose whole list is still stored unsharded

    async def load(self, app_id: str) -> list[dict[str, Any]]:
        """The stored instances of ``app_id`` (``Instance.to_store`` dicts)."""
        base = f"instances/{key_part(app_id)}"
        by_id: dict[str, dict[str, Any]] = {}
        legacy = await self.store.get(base)
        if isinstance(legacy, list) and legacy:
            self._legacy.add(app_id)
            by_id.update((item["id"], item) for item in legacy if isinstance(item, dict))
        written = self._written.setdefault(app_id, {})
        for shard in await self.store.children(base):
            items = await self.store.get(f"{base}/{shard}")
            if not isinstance(items, list):
                continue
            if app_id not in self._legacy:
                written[shard] = sorted(items, key=lambda item: str(item.get("id")))
            by_id.update((item["id"], item) for item in items if isinstance(item, dict))
        return list(by_id.values())

    async def save(self, app_id: str, instances: list[Instance]) -> None:
        """Write the shards of ``app_id`` whose instances changed (remove emptied ones)."""
        base = f"instances/{key_part(app_id)}"
        shards: dict[str, list[dict[str, Any]]] = {}
        count = shard_count(len(instances))
        for inst in instances:
            shards.setdefault(shard_of(inst.id, count), []).append(inst.to_store())
        written = self._written.setdefault(app_id, {})
        for shard, items in shards.items():
            items.sort(key=lambda item: item["id"])
            if written.get(shard) != items:
                await self.store.put(f"{base}/{shard}", items)
                written[shard] = items
        for shard in [s for s in written if s not in shards]:
            await self.store.delete(f"{base}/{shard}")
            del written[shard]
        if app_id in self._legacy:  # every instance is in its shard now
            await self.store.put(base, None)
            self._legacy.discard(app_id)

    async def forget(self, app_id: str) -> None:
        """Delete every shard of a removed app."""
        self._written.pop(app_id, None)
        self._legacy.discard(app_id)
        await self.store.delete(f"instances/{key_part(app_id)}")
