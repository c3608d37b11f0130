"""The fetcher against real files and a real HTTP server on a free loopback port."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mesonb.agent.fetcher import Fetcher, FetcherCache, FetchFailed, FetchURI


def make_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


class Server:
    """Serves ``files`` and counts requests; ``/stall`` sends headers, then nothing."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests = 0
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                if self.path == "/stall":
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    outer.release.wait(10)
                    return
                data = outer.files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    archive = make_tar(tmp_path / "app.tar.gz", {"app/run.sh": b"echo hi\n"})
    s = Server({"app.tar.gz": archive.read_bytes(), "tool": b"#!/bin/sh\necho tool\n"})
    try:
        yield s
    finally:
        s.close()


def fetch(uris: list[FetchURI], sandbox: Path, cache_dir: Path, stall: float = 5.0) -> None:
    sandbox.mkdir(parents=True, exist_ok=True)
    fetcher = Fetcher(FetcherCache(cache_dir), stall)
    asyncio.run(fetcher.fetch(uris, sandbox))


def test_archives_executables_and_output_files(tmp_path: Path, server: Server) -> None:
    sandbox = tmp_path / "sandbox"
    plain = tmp_path / "data.csv"
    plain.write_text("a,b\n")
    zipped = tmp_path / "bundle.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("lib/x.py", "X = 1\n")
    gz = tmp_path / "notes.txt.gz"
    gz.write_bytes(gzip.compress(b"notes\n"))
    bz = make_tar(tmp_path / "b.tar.bz2", {"b.txt": b"b"}, "w:bz2")
    xz = make_tar(tmp_path / "c.txz", {"c.txt": b"c"}, "w:xz")
    fetch([FetchURI(f"{server.url}/app.tar.gz"),
           FetchURI(f"{server.url}/tool", executable=True),
           FetchURI(f"file://{plain}", output_file="input/data.csv"),
           FetchURI(str(zipped)), FetchURI(str(gz)), FetchURI(str(bz)), FetchURI(str(xz)),
           FetchURI(str(make_tar(tmp_path / "kept.tar", {"k": b"k"})), extract=False)],
          sandbox, tmp_path / "cache")
    assert (sandbox / "app.tar.gz").exists()
    assert (sandbox / "app" / "run.sh").read_text() == "echo hi\n"
    assert os.access(sandbox / "tool", os.X_OK)
    assert (sandbox / "input" / "data.csv").read_text() == "a,b\n"
    assert (sandbox / "lib" / "x.py").read_text() == "X = 1\n"
    assert (sandbox / "notes.txt").read_text() == "notes\n"
    assert (sandbox / "b.txt").read_text() == "b" and (sandbox / "c.txt").read_text() == "c"
    assert not (sandbox / "k").exists()
    assert "Fetched '" in (sandbox / "stderr").read_text()


@pytest.mark.parametrize("name", ["../escape.txt", "/tmp/absolute.txt", "a/../../up.txt"])
def test_members_leaving_the_sandbox_are_refused(tmp_path: Path, name: str) -> None:
    archive = make_tar(tmp_path / "evil.tar.gz", {name: b"x"})
    sandbox = tmp_path / "sandbox"
    with pytest.raises(FetchFailed, match="refusing archive member"):
        fetch([FetchURI(str(archive))], sandbox, tmp_path / "cache")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "up.txt").exists()


def test_links_out_of_the_sandbox_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tar:
        link = tarfile.TarInfo("etc-passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../../etc/passwd"
        tar.addfile(link)
    with pytest.raises(FetchFailed, match="refusing archive link"):
        fetch([FetchURI(str(archive))], tmp_path / "sandbox", tmp_path / "cache")


def test_failures_name_the_uri_and_the_cause(tmp_path: Path, server: Server) -> None:
    sandbox = tmp_path / "sandbox"
    with pytest.raises(FetchFailed, match=r"Failed to fetch '.*/missing': Not Found"):
        fetch([FetchURI(f"{server.url}/missing")], sandbox, tmp_path / "cache")
    with pytest.raises(FetchFailed, match="No such file"):
        fetch([FetchURI("/no/such/file.tgz")], sandbox, tmp_path / "cache")
    with pytest.raises(FetchFailed, match="unsupported scheme 'ftp'"):
        fetch([FetchURI("ftp://example.com/x")], sandbox, tmp_path / "cache")
    with pytest.raises(FetchFailed, match="leaves the sandbox"):
        fetch([FetchURI(str(tmp_path / "x"), output_file="../x")], sandbox, tmp_path / "c")
    assert "Failed to fetch" in (sandbox / "stderr").read_text()


def test_a_stalled_download_times_out(tmp_path: Path, server: Server) -> None:
    started = time.monotonic()
    with pytest.raises(FetchFailed, match="stalled"):
        fetch([FetchURI(f"{server.url}/stall")], tmp_path / "s", tmp_path / "cache", stall=0.5)
    assert time.monotonic() - started < 5


def test_a_hundred_cached_fetches_download_once(tmp_path: Path, server: Server) -> None:
    cache = FetcherCache(tmp_path / "cache")
    fetcher = Fetcher(cache, 5.0)
    uri = FetchURI(f"{server.url}/app.tar.gz", cache=True)

    async def main() -> None:
        sandboxes = [tmp_path / f"s{i}" for i in range(100)]
        for s in sandboxes:
            s.mkdir()
        await asyncio.gather(*(fetcher.fetch([uri], s) for s in sandboxes))
        assert all((s / "app" / "run.sh").exists() for s in sandboxes)

    asyncio.run(main())
    assert server.requests == 1 and cache.downloads == 1


def test_the_cache_evicts_least_recently_used(tmp_path: Path) -> None:
    files = {f"f{i}": bytes(400) for i in range(3)}
    server = Server(files)
    try:
        cache = FetcherCache(tmp_path / "cache", size=1000)

        async def main() -> None:
            for name in ("f0", "f1", "f0", "f2"):  # f1 is the least recently used
                await cache.get(FetchURI(f"{server.url}/{name}", cache=True), 5.0)

        asyncio.run(main())
        kept = {p.name for p in (tmp_path / "cache").iterdir()}
        assert FetcherCache.key(f"{server.url}/f1") not in kept
        assert FetcherCache.key(f"{server.url}/f0") in kept
        assert cache.downloads == 3
    finally:
        server.close()
