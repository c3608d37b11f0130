"""TLS for every mesonb server and client, set once per process.

A process either speaks TLS everywhere or nowhere, as a libprocess process does
(``LIBPROCESS_SSL_ENABLED``). The settings come from the daemons' flags
(``--ssl-cert``, ``--ssl-key``, ``--ssl-ca``, ``--ssl-require-client-cert``,
``--ssl-no-verify``, see :func:`add_arguments`) or from the environment, read once::

    MESONB_SSL_CERT / LIBPROCESS_SSL_CERT_FILE     this process's certificate (PEM)
    MESONB_SSL_KEY  / LIBPROCESS_SSL_KEY_FILE      its private key (PEM)
    MESONB_SSL_CA   / LIBPROCESS_SSL_CA_FILE       the CA that peers' certificates chain to
    MESONB_SSL_VERIFY / LIBPROCESS_SSL_VERIFY_CERT servers' certificates are verified (default 1)
    MESONB_SSL_REQUIRE_CLIENT_CERT / LIBPROCESS_SSL_REQUIRE_CERT
                                                   servers refuse clients without a certificate
    MESONB_SSL_ENABLED / LIBPROCESS_SSL_ENABLED    TLS on without files (system CAs)

TLS is on when any of them is set. Then every URL mesonb builds (:func:`url`) is
``https://`` (``wss://`` for the agent's link), every server it binds wraps its sockets
in :func:`server_context`, and every client verifies the peer with :func:`client_context`
(the CA given, else the system's), with the hostname checked against the certificate.
:func:`configure` exports the settings to the environment so that the executors and
tasks a daemon starts inherit them (paths only; the files stay the user's own).

Example::

    from mesonb import tls
    tls.configure(tls.TlsSettings(cert="cert.pem", key="key.pem", ca="ca.pem"))
    tls.url("127.0.0.1", 5050, "/master/state")   # 'https://127.0.0.1:5050/master/state'
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import ssl
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# (mesonb's name, Mesos's libprocess name) for each setting
ENV_NAMES: dict[str, tuple[str, str]] = {
    "cert": ("MESONB_SSL_CERT", "LIBPROCESS_SSL_CERT_FILE"),
    "key": ("MESONB_SSL_KEY", "LIBPROCESS_SSL_KEY_FILE"),
    "ca": ("MESONB_SSL_CA", "LIBPROCESS_SSL_CA_FILE"),
    "verify": ("MESONB_SSL_VERIFY", "LIBPROCESS_SSL_VERIFY_CERT"),
    "require_client_cert": ("MESONB_SSL_REQUIRE_CLIENT_CERT", "LIBPROCESS_SSL_REQUIRE_CERT"),
    "enabled": ("MESONB_SSL_ENABLED", "LIBPROCESS_SSL_ENABLED"),
}
_FALSE = ("0", "false", "no", "off", "")


class TlsError(ValueError):
    """The TLS settings cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class TlsSettings:
    """What this process's servers present and its clients trust.

    ``cert``/``key``: this process's certificate and key (a server needs both; a client
    sends them when a server requires client certificates). ``ca``: the CA file peers'
    certificates must chain to (None: the system's CAs). ``verify``: clients verify the
    server's certificate and name (on by default; off only for tests). ``require_client_cert``:
    servers refuse a client that presents no certificate signed by ``ca``. ``enabled``: TLS
    on even without any file."""

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    verify: bool = True
    require_client_cert: bool = False
    enabled: bool = False

    def __post_init__(self) -> None:
        for name in ("cert", "key", "ca"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if (self.cert is None) != (self.key is None):
            raise TlsError("--ssl-cert and --ssl-key go together")
        if self.require_client_cert and self.ca is None:
            raise TlsError("--ssl-require-client-cert needs --ssl-ca (the CA that signs the "
                           "clients' certificates)")
        for name in ("cert", "key", "ca"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise TlsError(f"--ssl-{name} {path}: no such file")

    @property
    def on(self) -> bool:
        """Whether this process speaks TLS."""
        return self.enabled or any(p is not None for p in (self.cert, self.key, self.ca))

    def env(self) -> dict[str, str]:
        """The environment that gives a child process these settings."""
        if not self.on:
            return {}
        out = {"MESONB_SSL_ENABLED": "1", "MESONB_SSL_VERIFY": "1" if self.verify else "0",
               "MESONB_SSL_REQUIRE_CLIENT_CERT": "1" if self.require_client_cert else "0"}
        for name in ("cert", "key", "ca"):
            path = getattr(self, name)
            if path is not None:
                out[ENV_NAMES[name][0]] = str(path.resolve())
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TlsSettings:
        """The settings the environment names (mesonb's names first, then Mesos's)."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            for key in ENV_NAMES[name]:
                if key in env:
                    return env[key]
            return None

        def flag(name: str, default: bool) -> bool:
            value = get(name)
            return default if value is None else value.strip().lower() not in _FALSE

        return cls(cert=_path(get("cert")), key=_path(get("key")), ca=_path(get("ca")),
                   verify=flag("verify", True),
                   require_client_cert=flag("require_client_cert", False),
                   enabled=flag("enabled", False))


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


_current: TlsSettings | None = None


def settings() -> TlsSettings:
    """This process's settings (read from the environment on first use)."""
    global _current
    if _current is None:
        _current = TlsSettings.from_env()
    return _current


def configure(new: TlsSettings, *, export: bool = True,
              environ: MutableMapping[str, str] | None = None) -> TlsSettings:
    """Make ``new`` this process's settings; with ``export``, write them to the
    environment so that child processes (executors, tasks, ``mesonb`` commands they run)
    inherit them. Returns the previous settings."""
    global _current
    previous = settings()
    _current = new
    client_context.cache_clear()
    server_context.cache_clear()
    if export:
        environ = os.environ if environ is None else environ
        for names in ENV_NAMES.values():
            for key in names:
                environ.pop(key, None)
        environ.update(new.env())
    return previous


def enabled() -> bool:
    """Whether this process speaks TLS."""
    return settings().on


def scheme() -> str:
    """``"https"`` with TLS on, else ``"http"``."""
    return "https" if enabled() else "http"


def ws_scheme() -> str:
    """``"wss"`` with TLS on, else ``"ws"``."""
    return "wss" if enabled() else "ws"


def netloc(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def url(host: str, port: int, path: str = "") -> str:
    """``http(s)://host:port/path`` as this process reaches a mesonb server."""
    return f"{scheme()}://{netloc(host, port)}{path}"


def address_url(address: str, path: str = "") -> str:
    """``http(s)://`` + an address already written ``host:port``."""
    return f"{scheme()}://{address}{path}"


def wants_tls(url_or_scheme: str) -> bool:
    """Whether a connection to ``url_or_scheme`` uses TLS: an explicit ``https://`` or
    ``wss://`` does, ``http://``/``ws://`` does not, no scheme follows :func:`enabled`."""
    head = url_or_scheme.split("://", 1)[0].lower() if "://" in url_or_scheme else ""
    if head in ("https", "wss"):
        return True
    if head in ("http", "ws"):
        return False
    return enabled()


@functools.lru_cache(maxsize=1)
def client_context() -> ssl.SSLContext:
    """What clients verify servers with: the CA given (else the system's), the server's
    name checked, unless ``verify`` is off. Sends this process's certificate, if it has
    one, for servers that require client certificates. Built once."""
    current = settings()
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(current.ca) if current.ca else None)
        if not current.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if current.cert is not None and current.key is not None:
            context.load_cert_chain(str(current.cert), str(current.key))
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"cannot use the TLS files: {exc}") from None
    return context


@functools.lru_cache(maxsize=1)
def server_context() -> ssl.SSLContext:
    """What servers present: this process's certificate and key; with
    ``require_client_cert``, clients must present a certificate signed by the CA."""
    current = settings()
    if current.cert is None or current.key is None:
        raise TlsError("TLS is on but this server has no certificate: pass --ssl-cert and "
                       "--ssl-key (or set MESONB_SSL_CERT and MESONB_SSL_KEY)")
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(current.cert), str(current.key))
        if current.require_client_cert:
            assert current.ca is not None
            context.load_verify_locations(cafile=str(current.ca))
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"cannot use the TLS files: {exc}") from None
    return context


def can_serve() -> bool:
    """Whether this process serves TLS: TLS is on and it has a certificate and key."""
    current = settings()
    return current.on and current.cert is not None and current.key is not None


def server_options() -> ssl.SSLContext | None:
    """A tornado ``HTTPServer``'s ``ssl_options``: the server context with TLS on."""
    return server_context() if enabled() else None


def connect_options(target: str) -> dict[str, Any]:
    """``asyncio.open_connection`` keywords for ``target`` (a URL or a scheme)."""
    return {"ssl": client_context()} if wants_tls(target) else {}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The TLS flags of every daemon and of the CLI."""
    group = parser.add_argument_group("TLS (default: the MESONB_SSL_* or LIBPROCESS_SSL_* "
                                      "environment)")
    group.add_argument("--ssl-cert", type=Path, help="this process's certificate (PEM)")
    group.add_argument("--ssl-key", type=Path, help="its private key (PEM)")
    group.add_argument("--ssl-ca", type=Path,
                       help="CA file that peers' certificates must chain to")
    group.add_argument("--ssl-require-client-cert", action="store_true", default=None,
                       help="servers refuse clients without a certificate signed by --ssl-ca")
    group.add_argument("--ssl-no-verify", action="store_true", default=False,
                       help="do not verify servers' certificates (tests only)")


def configure_from_args(args: argparse.Namespace) -> TlsSettings:
    """Apply :func:`add_arguments`' flags over the environment's settings; raises
    :class:`TlsError` naming a bad flag."""
    base = settings()
    cert = getattr(args, "ssl_cert", None) or base.cert
    key = getattr(args, "ssl_key", None) or base.key
    ca = getattr(args, "ssl_ca", None) or base.ca
    require = getattr(args, "ssl_require_client_cert", None)
    new = TlsSettings(cert=cert, key=key, ca=ca,
                      verify=base.verify and not getattr(args, "ssl_no_verify", False),
                      require_client_cert=base.require_client_cert if require is None
                      else bool(require),
                      enabled=base.enabled)
    if new != base:
        configure(new)
    return new
