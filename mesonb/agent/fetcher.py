"""The fetcher: ``CommandInfo.uris`` into the sandbox before the executor starts.

As Mesos's (docs/fetcher.md), for each ``{value, executable, extract, cache, output_file}``:

* ``value``: ``http://``/``https://`` (downloaded with a stall timeout, ``--fetcher-stall-
  timeout``, 60 s), ``file://`` or a plain absolute path (copied);
* ``executable``: ``chmod +x`` and no extraction;
* ``extract`` (default true): ``.tar .tar.gz .tgz .tar.bz2 .tbz2 .tar.xz .txz .zip`` are
  unpacked into the sandbox, a lone ``.gz`` is gunzipped; members with ``..`` or absolute
  paths (or links out of the sandbox) are refused, so nothing is written outside it;
* ``output_file``: the name (relative, inside the sandbox) the download gets;
* ``cache``: fetched once into a per-agent cache keyed by the URI (``--fetcher-cache-size``,
  2 GB, least recently used entries evicted); concurrent fetches of one URI share a single
  download.

URIs are fetched in order; the first failure raises :class:`FetchFailed` ("Failed to fetch
'<uri>': <cause>"), and every step is logged to the sandbox's ``stderr``.
"""

from __future__ import annotations

import asyncio
import bz2
import contextlib
import gzip
import hashlib
import logging
import lzma
import os
import shutil
import stat
import tarfile
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

DEFAULT_CACHE_SIZE = 2 * 1024**3  # Mesos: --fetcher_cache_size
DEFAULT_STALL_TIMEOUT = 60.0  # Mesos: --fetcher_stall_timeout
CHUNK = 1 << 16
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class FetchFailed(Exception):
    """A URI could not be fetched; the message names it and says why."""


@dataclass(frozen=True)
class FetchURI:
    """One ``CommandInfo.URI``."""

    value: str
    executable: bool = False
    extract: bool = True
    cache: bool = False
    output_file: str | None = None

    @classmethod
    def from_json(cls, obj: Any) -> FetchURI:
        if not isinstance(obj, dict) or not isinstance(obj.get("value"), str):
            raise FetchFailed(f"Failed to fetch {obj!r}: a URI needs a string 'value'")
        out = obj.get("output_file")
        return cls(obj["value"], bool(obj.get("executable", False)),
                   bool(obj.get("extract", True)), bool(obj.get("cache", False)),
                   str(out) if out else None)

    @property
    def basename(self) -> str:
        if self.output_file:
            return self.output_file
        path = urllib.parse.urlparse(self.value).path if "://" in self.value else self.value
        name = os.path.basename(path.rstrip("/"))
        return name or "index.html"


def uris_of(commands: Iterable[Any]) -> list[FetchURI]:
    """The URIs of some ``CommandInfo`` objects, in order."""
    out: list[FetchURI] = []
    for command in commands:
        for uri in (getattr(command, "uris", None) or ()):
            out.append(FetchURI.from_json(uri))
    return out


# -- sources ---------------------------------------------------------------------------
def _download(uri: str, target: Path, stall: float) -> None:
    """Copy ``uri`` to ``target``; a read that stalls ``stall`` seconds fails."""
    parsed = urllib.parse.urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("http", "https"):
        request = urllib.request.Request(uri, headers={"User-Agent": "mesonb-fetcher"})
        try:
            with urllib.request.urlopen(request, timeout=stall) as response, \
                    open(target, "wb") as out:
                _copy_stream(response, out)
        except TimeoutError as exc:
            raise FetchFailed(f"no data for {stall:g}s (stalled)") from exc
        except OSError as exc:  # URLError, HTTPError, connection errors
            raise FetchFailed(str(getattr(exc, "reason", None) or exc)) from exc
        return
    if scheme == "file":
        source = Path(urllib.parse.unquote(parsed.path))
    elif scheme:
        raise FetchFailed(f"unsupported scheme '{scheme}' (http, https, file or a path)")
    else:
        source = Path(uri)
        if not source.is_absolute():
            raise FetchFailed("a plain path must be absolute")
    try:
        shutil.copyfile(source, target)
    except OSError as exc:
        raise FetchFailed(exc.strerror or str(exc)) from exc


def _copy_stream(source: IO[bytes], out: IO[bytes]) -> None:
    while True:
        chunk = source.read(CHUNK)
        if not chunk:
            return
        out.write(chunk)


# -- extraction ------------------------------------------------------------------------
def _inside(root: Path, name: str) -> Path:
    """``root/name``, refusing absolute names and any that climb out with ``..``."""
    if name.startswith("/") or os.path.isabs(name):
        raise FetchFailed(f"refusing archive member with an absolute path: {name!r}")
    if ".." in Path(name).parts:
        raise FetchFailed(f"refusing archive member that leaves the sandbox: {name!r}")
    return root / name


def extract(archive: Path, into: Path) -> bool:
    """Unpack ``archive`` into ``into`` when its name says it is one; whether it was."""
    name = archive.name.lower()
    if name.endswith(TAR_SUFFIXES):
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                _inside(into, member.name)
                if member.issym() or member.islnk():
                    base = os.path.dirname(member.name) if member.issym() else ""
                    resolved = os.path.normpath(os.path.join(base, member.linkname))
                    if os.path.isabs(member.linkname) or resolved.split(os.sep)[0] == "..":
                        raise FetchFailed(f"refusing archive link that leaves the sandbox:"
                                          f" {member.name!r} -> {member.linkname!r}")
                if member.isdev():
                    raise FetchFailed(f"refusing device file in archive: {member.name!r}")
            tar.extractall(into, members=members, filter="tar")
        return True
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _inside(into, info.filename)
            zf.extractall(into)
        return True
    if name.endswith((".gz", ".bz2", ".xz")):
        openers: dict[str, Any] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
        with openers[archive.suffix.lower()](archive, "rb") as source, \
                open(into / archive.stem, "wb") as out:
            _copy_stream(source, out)
        return True
    return False


# -- the cache -------------------------------------------------------------------------
class FetcherCache:
    """Downloads kept under ``directory`` by URI, at most ``size`` bytes, LRU."""

    def __init__(self, directory: Path, size: int = DEFAULT_CACHE_SIZE) -> None:
        self.directory = directory
        self.size = size
        self._entries: dict[str, tuple[Path, int, float]] = {}  # key -> (path, bytes, used)
        self._inflight: dict[str, asyncio.Future[Path]] = {}
        self.downloads = 0  # how many times the cache fetched from the source

    @staticmethod
    def key(uri: str) -> str:
        return hashlib.sha256(uri.encode()).hexdigest()[:32]

    async def get(self, uri: FetchURI, stall: float) -> Path:
        """The cached file for ``uri``, fetched now when it is not there yet."""
        key = self.key(uri.value)
        entry = self._entries.get(key)
        if entry is not None and entry[0].exists():
            self._entries[key] = (entry[0], entry[1], time.monotonic())
            return entry[0]
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._fill(key, uri, stall))
            self._inflight[key] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(pending)

    async def _fill(self, key: str, uri: FetchURI, stall: float) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / key
        partial = self.directory / f"{key}.part"
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, _download, uri.value, partial, stall)
        os.replace(partial, final)
        self.downloads += 1
        size = final.stat().st_size
        self._entries[key] = (final, size, time.monotonic())
        self._evict(keep=key)
        return final

    def used(self) -> int:
        """Bytes the cached files take."""
        return sum(e[1] for e in self._entries.values())

    def clear_leftovers(self) -> int:
        """Remove the files in the cache directory that the index does not hold (an
        earlier run's, whose index was in memory); how many."""
        known = {path.name for path, _, _ in self._entries.values()}
        removed = 0
        try:
            names = os.listdir(self.directory)
        except OSError:
            return 0
        for name in names:
            if name in known or any(name.startswith(f"{key}.") for key in self._inflight):
                continue
            path = self.directory / name
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed += 1
        return removed

    def _evict(self, keep: str) -> None:
        total = sum(e[1] for e in self._entries.values())
        for key, (path, size, _) in sorted(self._entries.items(), key=lambda kv: kv[1][2]):
            if total <= self.size:
                return
            if key == keep:
                continue
            with contextlib.suppress(OSError):
                path.unlink()
            del self._entries[key]
            total -= size


class Fetcher:
    """Fetches a container's URIs into its sandbox."""

    def __init__(self, cache: FetcherCache, stall_timeout: float = DEFAULT_STALL_TIMEOUT
                 ) -> None:
        self.cache = cache
        self.stall_timeout = stall_timeout
        self.succeeded = self.failed = 0  # containers' fetches (Mesos's task_fetches_*)

    async def fetch(self, uris: list[FetchURI], sandbox: Path) -> None:
        """Fetch every URI in order into ``sandbox``; FetchFailed on the first failure."""
        if not uris:
            return
        try:
            await self._all(uris, sandbox)
        except FetchFailed:
            self.failed += 1
            raise
        self.succeeded += 1

    async def _all(self, uris: list[FetchURI], sandbox: Path) -> None:
        for uri in uris:
            _note(sandbox, f"Fetching '{uri.value}'")
            try:
                await self._one(uri, sandbox)
            except FetchFailed as exc:
                _note(sandbox, f"Failed to fetch '{uri.value}': {exc}")
                raise FetchFailed(f"Failed to fetch '{uri.value}': {exc}") from None
            except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError,
                    lzma.LZMAError) as exc:
                _note(sandbox, f"Failed to fetch '{uri.value}': {exc}")
                raise FetchFailed(f"Failed to fetch '{uri.value}': {exc}") from None
            _note(sandbox, f"Fetched '{uri.value}' to '{sandbox / uri.basename}'")

    async def _one(self, uri: FetchURI, sandbox: Path) -> None:
        target = _inside(sandbox, uri.basename)
        target.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        copied = False
        if uri.cache:
            try:
                cached = await self.cache.get(uri, self.stall_timeout)
                await loop.run_in_executor(None, shutil.copyfile, cached, target)
                copied = True
            except OSError as exc:  # Mesos: fall back to a direct download
                log.warning("fetcher cache failed for %s (%s); downloading directly",
                            uri.value, exc)
        if not copied:
            await loop.run_in_executor(None, _download, uri.value, target, self.stall_timeout)
        if uri.executable:
            mode = target.stat().st_mode
            target.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        elif uri.extract and await loop.run_in_executor(None, extract, target, sandbox):
            _note(sandbox, f"Extracted '{target}' into '{sandbox}'")


def _note(sandbox: Path, line: str) -> None:
    """A line in the sandbox's stderr, as Mesos's fetcher logs there."""
    with contextlib.suppress(OSError), open(sandbox / "stderr", "a") as f:
        f.write(f"mesonb-fetcher: {line}\n")
