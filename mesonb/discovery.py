"""Finding the leading master: ``host:port`` or a ``zk://`` URL, the way Mesos does it.

Masters contend in ZooKeeper by creating ephemeral sequential znodes
``<path>/json.info_NNNNNNNNNN`` that hold their MasterInfo as JSON; the lowest sequence
number leads (mesos: src/zookeeper/group.cpp, src/master/contender/zookeeper.cpp).
Agents, schedulers and the client read the same URL::

    zk://h1:2181,h2:2181/mesonb          zoo://h1:2181/mesonb
    zk://user:pass@h1:2181/mesonb        (digest auth, passed to kazoo)
    10.0.0.5:5050                        10.0.0.5  (port 5050, as pymesos does)

One-shot, from async code::

    address = await resolve_master("zk://127.0.0.1:2181/mesonb")   # "127.0.0.1:5050"

Following the leader as it changes (``on_change`` runs on a kazoo thread unless a
``loop`` is given, in which case it runs on that asyncio loop)::

    detector = LeaderDetector("zk://127.0.0.1:2181/mesonb", print)
    detector.start()
    ...
    detector.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from mesonb.protocol.mesos import DEFAULT_MASTER_PORT

log = logging.getLogger(__name__)

MASTER_LABEL = "json.info_"  # mesos: src/master/constants.hpp MASTER_INFO_JSON_LABEL + "_"
ZK_SCHEMES = ("zk://", "zoo://")


@dataclasses.dataclass(frozen=True)
class ZkUrl:
    """A parsed ``zk://[user:pass@]h1:p1,h2:p2/path``."""

    hosts: str  # "h1:2181,h2:2181", kazoo's connect string
    path: str  # "/mesonb", never with a trailing slash (except the root "/")
    auth: str | None = None  # "user:pass" for kazoo's digest scheme

    @property
    def auth_data(self) -> list[tuple[str, str]] | None:
        return [("digest", self.auth)] if self.auth else None

    def __str__(self) -> str:
        cred = f"{self.auth}@" if self.auth else ""
        return f"zk://{cred}{self.hosts}{self.path}"


def is_zk(spec: str) -> bool:
    return spec.strip().lower().startswith(ZK_SCHEMES)


def parse_zk_url(url: str) -> ZkUrl:
    """Split a ``zk://`` (or ``zoo://``) URL; ValueError with a clear message if malformed."""
    text = url.strip()
    scheme = next((s for s in ZK_SCHEMES if text.lower().startswith(s)), None)
    if scheme is None:
        raise ValueError(f"{url!r} is not a ZooKeeper URL (expected zk://host:port/path)")
    rest = text[len(scheme):]
    authority, slash, path = rest.partition("/")
    auth = None
    if "@" in authority:
        auth, _, authority = authority.rpartition("@")
        if ":" not in auth:
            raise ValueError(f"{url!r}: credentials must be user:password")
    if not slash or not path.strip("/"):
        raise ValueError(f"{url!r}: a ZooKeeper URL needs a path, e.g. zk://host:2181/mesonb")
    hosts = []
    for host in authority.split(","):
        host = host.strip()
        if not host:
            raise ValueError(f"{url!r}: empty host in the host list")
        name, colon, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if colon and (not port.isdigit() or not 0 < int(port) < 65536 or not name):
            raise ValueError(f"{url!r}: bad host:port {host!r}")
        hosts.append(host)
    return ZkUrl(",".join(hosts), "/" + path.strip("/"), auth)


def parse_master(spec: str, *, schemes: Iterable[str] = ()) -> str:
    """``host:port`` (``host`` alone gets port 5050, IPv6 as ``[addr]:port``); ValueError
    otherwise. This is mesonb's one parser of a master's address: a prefix in ``schemes``
    (e.g. ``"http://"``) is accepted and dropped, with a trailing slash, for callers that
    take URLs; a ``zk://`` URL is not an address (see :func:`resolve_master`)."""
    text = spec.strip()
    for scheme in schemes:
        if text.lower().startswith(scheme):
            text = text[len(scheme):].rstrip("/")
            break
    if "://" in text:
        raise ValueError(f"master {spec!r}: expected host:port or zk://hosts/path "
                         "(there is no http:// form, as in Mesos)")
    if "/" in text or "@" in text:
        raise ValueError(f"master {spec!r}: expected host:port")
    if text.startswith("["):  # [v6]:port
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else str(DEFAULT_MASTER_PORT)
        text_out = f"[{host}]:{port}"
    elif ":" not in text:
        host, port = text, str(DEFAULT_MASTER_PORT)
        text_out = f"{host}:{port}"
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        text_out = text
    else:
        raise ValueError(f"master {spec!r}: write IPv6 addresses as [addr]:port")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"master {spec!r}: expected host:port")
    return text_out


def redirected_master(location: str) -> str:
    """The ``host:port`` a standby's 307 ``Location`` names: Mesos sends
    ``//host:port/path``; ``http://host:port/path`` and a bare ``host:port`` are read too."""
    rest = location.strip()
    if "://" in rest:
        rest = rest.split("://", 1)[1]
    rest = rest.removeprefix("//").split("/", 1)[0]
    return parse_master(rest)


def choose_leader(children: Iterable[str]) -> str | None:
    """The contender with the lowest sequence number among ``json.info_NNNNNNNNNN`` children."""
    best: tuple[int, str] | None = None
    for child in children:
        if not child.startswith(MASTER_LABEL):
            continue
        seq = child[len(MASTER_LABEL):]
        if not seq.isdigit():
            continue
        if best is None or int(seq) < best[0]:
            best = (int(seq), child)
    return best[1] if best else None


def master_address(data: bytes | str) -> str:
    """``ip:port`` from MasterInfo JSON (``address.ip``/``address.port``, as pymesos reads)."""
    info: dict[str, Any] = json.loads(data)
    address = info.get("address") or {}
    ip, port = address.get("ip"), address.get("port")
    if not ip or not port:
        raise ValueError(f"MasterInfo without address.ip/address.port: {info!r}")
    host = f"[{ip}]" if ":" in ip else ip
    return f"{host}:{int(port)}"


def make_client(url: ZkUrl, session_timeout: float = 10.0) -> Any:
    """A KazooClient for ``url`` that retries its connection for ever."""
    from kazoo.client import KazooClient

    return KazooClient(
        hosts=url.hosts,
        timeout=session_timeout,
        auth_data=url.auth_data,
        connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 2.0},
        command_retry={"max_tries": 3, "delay": 0.1, "max_delay": 1.0},
    )


class LeaderDetector:
    """Watches ``url``'s path and calls ``on_change(address | None)`` when the leader changes.

    The address is ``"ip:port"``; ``None`` means no master leads (no contender, or this
    client's ZooKeeper session was lost). A ChildrenWatch finds the lowest sequence and a
    DataWatch on that znode reads its MasterInfo.
    """

    def __init__(
        self,
        url: str | ZkUrl,
        on_change: Callable[[str | None], object],
        *,
        client: Any = None,
        loop: asyncio.AbstractEventLoop | None = None,
        session_timeout: float = 10.0,
    ) -> None:
        self.url = parse_zk_url(url) if isinstance(url, str) else url
        self.on_change = on_change
        self.loop = loop
        self.leader: str | None = None  # the last address reported
        self.leader_node: str | None = None
        self._own_client = client is None
        self.client = client if client is not None else make_client(self.url, session_timeout)
        self._lock = threading.Lock()
        self._stopped = False
        self._reported = False

    def start(self, timeout: float = 30.0) -> None:
        """Connect (blocking, up to ``timeout``) and begin watching."""
        from kazoo.recipe.watchers import ChildrenWatch

        if self._own_client:
            self.client.start(timeout=timeout)
        self.client.add_listener(self._on_state)
        self.client.ensure_path(self.url.path)
        ChildrenWatch(self.client, self.url.path, self._on_children)

    def stop(self) -> None:
        self._stopped = True
        self.client.remove_listener(self._on_state)
        if self._own_client:
            self.client.stop()
            self.client.close()

    # -- kazoo callbacks (kazoo threads) ---------------------------------------------
    def _on_state(self, state: Any) -> None:
        from kazoo.protocol.states import KazooState

        if state == KazooState.LOST:
            with self._lock:
                self.leader_node = None
            self._report(None)

    def _on_children(self, children: list[str]) -> bool | None:
        if self._stopped:
            return False
        from kazoo.recipe.watchers import DataWatch

        node = choose_leader(children)
        with self._lock:
            if node == self.leader_node and self._reported:
                return None
            self.leader_node = node
        if node is None:
            self._report(None)
            return None
        DataWatch(self.client, f"{self.url.path}/{node}", self._data_callback(node))
        return None

    def _data_callback(self, node: str) -> Callable[[Any, Any], bool | None]:
        def on_data(data: bytes | None, _stat: Any) -> bool | None:
            if self._stopped or self.leader_node != node:
                return False  # superseded: drop this watch
            if data is None:
                return None  # deleted; the ChildrenWatch picks the next one
            try:
                address = master_address(data)
            except ValueError as exc:
                log.warning("leader znode %s holds no usable MasterInfo: %s", node, exc)
                return None
            self._report(address)
            return None

        return on_data

    def _report(self, address: str | None) -> None:
        with self._lock:
            if self._reported and address == self.leader:
                return
            self.leader, self._reported = address, True
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.on_change, address)
        else:
            self.on_change(address)


def detect_leader(url: str | ZkUrl, timeout: float = 30.0) -> str:
    """Blocking one-shot detection: the leader's ``ip:port``; TimeoutError if none leads."""
    from kazoo.exceptions import NoNodeError

    zk = parse_zk_url(url) if isinstance(url, str) else url
    deadline = time.monotonic() + timeout
    client = make_client(zk)
    changed = threading.Event()
    try:
        client.start(timeout=max(0.1, timeout))
        while True:
            changed.clear()
            try:
                children = client.get_children(zk.path, watch=lambda _e: changed.set())
            except NoNodeError:
                children = []
                if client.exists(zk.path, watch=lambda _e: changed.set()):
                    continue
            node = choose_leader(children)
            if node is not None:
                try:
                    data, _ = client.get(f"{zk.path}/{node}")
                    return master_address(data)
                except NoNodeError:
                    continue  # it left between the two reads
            left = deadline - time.monotonic()
            if left <= 0 or not changed.wait(left):
                raise TimeoutError(f"no master leads under {zk} after {timeout:g}s")
    finally:
        client.stop()
        client.close()


async def resolve_master(spec: str, timeout: float = 30.0, *,
                         schemes: Iterable[str] = ()) -> str:
    """The ``host:port`` of the leading master named by ``spec``.

    ``host:port`` comes back as :func:`parse_master` reads it (``host`` gets :5050); a
    ``zk://`` URL is resolved by a one-shot detection in a worker thread, so the event loop
    keeps running. Raises ValueError for a malformed spec and TimeoutError when no leader
    appears.
    """
    if not is_zk(spec):
        return parse_master(spec, schemes=schemes)
    url = parse_zk_url(spec)
    return await asyncio.to_thread(detect_leader, url, timeout)


class LeaderWatch:
    """Follows the leading master named by a ``zk://`` URL from asyncio code.

    The one way mesonb's clients (the scheduler driver, the agent's master link, the
    client's :class:`~mesonb.client.leader.LeaderConnection`) find and follow the leader:
    a :class:`LeaderDetector` on kazoo's threads, whose reports arrive on the loop that
    called :meth:`start`, in :attr:`leader` and through ``on_change``::

        watch = LeaderWatch("zk://127.0.0.1:2181/mesonb", on_change=print)
        if await watch.start(timeout=10):       # False: ZooKeeper could not be reached
            address = await watch.wait(timeout=30)   # "ip:port" once a master leads
        await watch.stop()
    """

    def __init__(
        self,
        spec: str,
        on_change: Callable[[str | None], object] | None = None,
        *,
        session_timeout: float = 10.0,
    ) -> None:
        self.url = parse_zk_url(spec)  # ValueError now for a malformed URL
        self.spec = spec
        self.leader: str | None = None  # the last address ZooKeeper named (None: none leads)
        self._on_change = on_change
        self._session_timeout = session_timeout
        self._detector: LeaderDetector | None = None
        self._changed: asyncio.Event | None = None
        self._stopped = False

    @property
    def watching(self) -> bool:
        return self._detector is not None

    async def start(self, timeout: float = 30.0, *, fallback: bool = True) -> bool:
        """Connect to ZooKeeper and watch; True once watching. When ZooKeeper cannot be
        reached within ``timeout`` this raises what kazoo raised, or with ``fallback``
        logs it and returns False: the caller looks the leader up with
        :func:`resolve_master` instead. A report that came while connecting is in
        :attr:`leader` already when this returns."""
        loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        detector = LeaderDetector(self.url, self._report, loop=loop,
                                  session_timeout=self._session_timeout)
        try:
            await asyncio.to_thread(detector.start, timeout)
        except Exception as exc:
            await asyncio.to_thread(detector.stop)
            if not fallback:
                raise
            log.warning("cannot watch %s (%s); looking the leader up on each try",
                        self.spec, exc)
            return False
        self._detector = detector
        return True

    def _report(self, address: str | None) -> None:  # on the loop
        if self._stopped:
            return
        self.leader = address
        if self._changed is not None:
            self._changed.set()
        if self._on_change is not None:
            self._on_change(address)

    async def wait(self, timeout: float) -> str:
        """The leader's ``ip:port``, waiting up to ``timeout`` while none leads."""
        assert self._changed is not None, "start() first"
        deadline = asyncio.get_running_loop().time() + timeout
        while self.leader is None:
            self._changed.clear()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"no master leads under {self.spec}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return self.leader

    async def changed(self, timeout: float) -> None:
        """Wait up to ``timeout`` for ZooKeeper's next report."""
        assert self._changed is not None, "start() first"
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def stop(self) -> None:
        """Stop watching (the ZooKeeper session closes in a worker thread)."""
        self._stopped = True
        detector, self._detector = self._detector, None
        if detector is not None:
            await asyncio.to_thread(detector.stop)

    def close(self) -> None:
        """:meth:`stop` for synchronous callers (blocks while the session closes)."""
        self._stopped = True
        detector, self._detector = self._detector, None
        if detector is not None:
            detector.stop()
