"""The secret of a local cluster, kept where only its user can read it.

``Cluster.local()`` and ``mesonb local`` generate a random bearer token for the cluster
they start (unless given one) and write it, for each address the cluster listens on (the
master's and every agent's), to a file of mode 0600 in a directory of mode 0700 under the
user's runtime directory::

    $MESONB_RUNTIME_DIR, else $XDG_RUNTIME_DIR/mesonb, else ~/.config/mesonb/run
        port-5050.json        {"secret": "...", "master": "127.0.0.1:5050", "pid": 4242,
                               "ca": "/home/me/.config/mesonb/run/tls-.../ca.pem" or null}

Another local user cannot read the file, so cannot call the cluster; the user's own
clients (``Cluster("127.0.0.1:5050")``, ``mesonb execute``, ``mesonb exec``, the Jupyter
proxy, :func:`mesonb.testing.processes.get_json`) find the secret there by address
(:func:`lookup`). The files are removed when the cluster stops; a file whose process is
gone is ignored.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import secrets
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)
ENV = "MESONB_RUNTIME_DIR"


@dataclass(frozen=True)
class LocalSecret:
    """What a client of a local cluster needs: its secret and, with TLS, its CA."""

    secret: str
    master: str
    ca: Path | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


def generate() -> str:
    """A new random secret (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def runtime_dir() -> Path:
    """Where local clusters' secrets are kept (see the module docstring)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir():
        return Path(xdg) / "mesonb"
    return Path.home() / ".config" / "mesonb" / "run"


def private_dir() -> Path:
    """:func:`runtime_dir`, made (mode 0700) if missing."""
    directory = runtime_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    return directory


def _file(address: str) -> Path:
    # by port: one listening socket per port on this machine, whatever name reaches it
    _, _, port = normalize(address).rpartition(":")
    return runtime_dir() / f"port-{int(port)}.json"


def _this_machine(host: str) -> bool:
    """Whether ``host`` names this machine (loopback, its hostname or one of its IPs)."""
    host = host.strip("[]")
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        if host in ("localhost", socket.gethostname(), socket.getfqdn()):
            return True
    try:
        local = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
        target = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(local & target) or any(ipaddress.ip_address(a).is_loopback for a in target)


def normalize(address: str) -> str:
    """``host:port`` of an address or URL (``http(s)://host:port/...``)."""
    text = address.strip()
    parts = urlsplit(text if "//" in text else f"//{text}")
    host = parts.hostname or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    return f"[{host}]:{parts.port}" if ":" in host else f"{host}:{parts.port}"


def publish(addresses: list[str], secret: str, ca: Path | None = None) -> list[Path]:
    """Write ``secret`` for each of ``addresses`` (the master's first); the files written."""
    private_dir()
    record = {"secret": secret, "master": normalize(addresses[0]), "pid": os.getpid(),
              "ca": str(ca) if ca else None}
    written = []
    for address in addresses:
        path = _file(address)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, path)
        written.append(path)
    return written


def withdraw(paths: list[Path]) -> None:
    """Remove the files :func:`publish` wrote."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def lookup(address: str) -> LocalSecret | None:
    """The secret of the local cluster listening on ``address`` (``host:port`` or a URL),
    if this user started one there; None otherwise (or if the file is not private)."""
    try:
        path = _file(address)
        host = normalize(address).rpartition(":")[0]
    except (ValueError, TypeError):
        return None
    if not path.exists() or not _this_machine(host):
        return None
    try:
        info = path.stat()
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("ignoring %s: it must be the user's own, mode 0600", path)
            return None
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("secret"), str):
        return None
    pid = record.get("pid")
    if isinstance(pid, int) and not _alive(pid):
        return None
    ca = record.get("ca")
    return LocalSecret(record["secret"], str(record.get("master", "")),
                       Path(ca) if isinstance(ca, str) else None)


def secret_for(address: str, given: str | None = None) -> str | None:
    """The secret a command-line client sends to ``address``: the one ``given``
    (``--secret``, ``MESONB_SECRET``), else a local cluster's of this user's there.
    With TLS off in this process and the local cluster's CA known, TLS is turned on to
    trust it (a ``mesonb local --tls`` cluster)."""
    if given or address.strip().lower().startswith(("zk://", "zoo://")):
        return given
    found = lookup(address)
    if found is None:
        return None
    if found.ca is not None:
        from mesonb import tls

        if not tls.enabled():
            tls.configure(tls.TlsSettings(ca=found.ca))
    return found.secret


def headers_for(address: str) -> dict[str, str]:
    """``Authorization`` for the local cluster at ``address``, or nothing."""
    found = lookup(address)
    return found.headers() if found is not None else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
