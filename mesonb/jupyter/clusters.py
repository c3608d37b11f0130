"""The clusters a Jupyter server knows: local ones it started, and masters registered by
address. Local clusters run in the server's own event loop, as dask-labextension's do."""

from __future__ import annotations

import ipaddress
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
LOOPBACK_NAMES = ("localhost",)


def is_loopback_address(address: str) -> bool:
    """``host:port`` on this machine (the only masters the proxy reaches by address)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit() or not 0 < int(port) < 65536:
        return False
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ClusterEntry:
    id: str
    name: str
    address: str  # host:port of the master
    local: Any = None  # the LocalCluster this server started, if it did
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self, base_url: str) -> dict[str, Any]:
        agents = len(self.local.agents) if self.local is not None else None
        return {"id": self.id, "name": self.name, "address": self.address,
                "dashboard_link": f"{base_url.rstrip('/')}/mesonb/proxy/{self.id}/",
                "agents": agents, "local": self.local is not None}


class ClusterManager:
    def __init__(self) -> None:
        self.clusters: dict[str, ClusterEntry] = {}

    def get(self, key: str) -> ClusterEntry | None:
        return self.clusters.get(key)

    def target(self, key: str) -> str | None:
        """The master ``host:port`` the proxy should reach for ``key``."""
        entry = self.clusters.get(key)
        if entry is not None:
            return entry.address
        return key if is_loopback_address(key) else None

    async def start(self, key: str | None, options: dict[str, Any]) -> ClusterEntry:
        key = key or uuid.uuid4().hex[:12]
        if key in self.clusters:
            raise ValueError(f"cluster {key!r} exists")
        address = options.get("address")
        if address is not None:
            if not isinstance(address, str) or not is_loopback_address(address):
                raise ValueError("'address' must be a loopback host:port, e.g. 127.0.0.1:5050")
            entry = ClusterEntry(key, str(options.get("name") or address), address)
        else:
            from mesonb.local import LocalCluster

            agents = int(options.get("agents", 2))
            resources = options.get("resources")
            if not 1 <= agents <= 64:
                raise ValueError("'agents' must be from 1 to 64")
            if resources is not None and not isinstance(resources, str):
                raise ValueError("'resources' must be a string like 'cpus:1;mem:1024'")
            # secure by default: a secret only this user's clients (the proxy) can read
            local = LocalCluster(agents, port=0, resources=resources, publish_secret=True)
            await local.start()
            try:
                await local.wait_ready()
            except BaseException:
                await local.stop()
                raise
            entry = ClusterEntry(key, str(options.get("name") or f"local {key}"),
                                 local.master_address, local)
        self.clusters[key] = entry
        log.info("mesonb cluster %s at %s", key, entry.address)
        return entry

    async def stop(self, key: str) -> bool:
        entry = self.clusters.pop(key, None)
        if entry is None:
            return False
        if entry.local is not None:
            await entry.local.stop()
        return True

    async def close(self) -> None:
        for key in list(self.clusters):
            await self.stop(key)
