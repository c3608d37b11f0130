"""Instances persist in shards: 10,000 of one app never make a value near ZooKeeper's
1 MB, a status update rewrites one shard, a whole list from an earlier version is read
and rewritten as shards."""

from __future__ import annotations

import json
from typing import Any

from mesonb.frameworks.marathon.instance_fsm import InstanceState
from mesonb.frameworks.marathon.instance_store import InstanceStore, shard_count, shard_of
from mesonb.frameworks.marathon.instances import Instance, new_task_id
from mesonb.frameworks.marathon.storage import MemoryStore

ZNODE_LIMIT = 1024 * 1024


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.puts: list[str] = []

    async def put(self, key: str, value: Any) -> None:
        self.puts.append(key)
        await super().put(key, value)


def many(app_id: str, count: int) -> list[Instance]:
    return [Instance(new_task_id(app_id), app_id, "v1", "v1", f"agent-{i % 7}",
                     f"host-{i % 7}.example.com", "10.0.0.1", [31000 + i % 100], "*",
                     InstanceState.RUNNING, "2026-01-01T00:00:00.000Z",
                     "2026-01-01T00:00:01.000Z") for i in range(count)]


async def test_ten_thousand_instances_fit_in_znodes_and_load_back() -> None:
    store = CountingStore()
    instances = many("/big/app", 10_000)
    await InstanceStore(store).save("/big/app", instances)
    sizes = {k: len(json.dumps(v).encode()) for k, v in store.data.items()}
    assert len(sizes) == shard_count(10_000) == 32
    assert max(sizes.values()) < ZNODE_LIMIT / 4
    assert sum(sizes.values()) > 2 * ZNODE_LIMIT  # one value would not have fitted
    loaded = await InstanceStore(store).load("/big/app")
    assert sorted(i["id"] for i in loaded) == sorted(i.id for i in instances)
    assert loaded[0] == next(i for i in instances if i.id == loaded[0]["id"]).to_store()


async def test_a_change_rewrites_only_its_shard_and_an_emptied_shard_goes() -> None:
    store = CountingStore()
    instances = many("/web", 200)
    shards = InstanceStore(store)
    await shards.save("/web", instances)
    store.puts.clear()
    await shards.save("/web", instances)
    assert store.puts == []  # nothing changed, nothing written
    instances[0].state = InstanceState.KILLING
    await shards.save("/web", instances)
    assert store.puts == ["instances/%2Fweb/00"]  # one shard up to 500 instances
    grown = instances + many("/web", 400)
    await shards.save("/web", grown)  # 600: two shards now, each instance in its own
    assert await store.children("instances/%2Fweb") == ["00", "01"]
    assert {i["id"] for i in await InstanceStore(store).load("/web")} == {
        i.id for i in grown}
    store.puts.clear()
    grown[-1].state = InstanceState.KILLING
    await shards.save("/web", grown)
    assert store.puts == [f"instances/%2Fweb/{shard_of(grown[-1].id, 2)}"]
    lonely = many("/solo", 1)
    await shards.save("/solo", lonely)
    assert await store.children("instances/%2Fsolo") == ["00"]
    await shards.save("/solo", [])
    assert await store.children("instances/%2Fsolo") == []
    await shards.forget("/web")
    assert await store.children("instances/%2Fweb") == []


async def test_a_whole_list_stored_by_an_earlier_version_is_resharded() -> None:
    store = MemoryStore()
    instances = many("/old", 30)
    await store.put("instances/%2Fold", [i.to_store() for i in instances])
    shards = InstanceStore(store)
    loaded = await shards.load("/old")
    assert {i["id"] for i in loaded} == {i.id for i in instances}
    await shards.save("/old", instances[:20])  # ten ended meanwhile
    assert await store.get("instances/%2Fold") is None
    again = await InstanceStore(store).load("/old")
    assert {i["id"] for i in again} == {i.id for i in instances[:20]}
