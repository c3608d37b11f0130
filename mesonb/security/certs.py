"""A private CA and the certificates it signs, made with the ``openssl`` command.

``Cluster.local(tls=True)`` and ``mesonb local --tls`` make one for the embedded cluster
(the CA and every key in a 0700 directory of the user's, keys mode 0600); tests make one
per test. EC P-256 keys: a handshake with them costs a fraction of an RSA one's.

    bundle = make_bundle(Path("~/.config/mesonb/tls").expanduser())
    bundle.ca, bundle.cert, bundle.key              # paths, PEM
    bundle.client_cert, bundle.client_key           # a client certificate for mTLS
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DAYS = 825  # the longest validity clients accept for a server certificate


class CertificateError(RuntimeError):
    """The certificates could not be made (no ``openssl`` command, or it failed)."""


@dataclass(frozen=True)
class Bundle:
    """A CA, a server certificate for the names given, and a client certificate."""

    ca: Path
    ca_key: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise CertificateError("the 'openssl' command is needed to make certificates "
                               "(apt-get install openssl)")
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise CertificateError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def _private(path: Path) -> None:
    os.chmod(path, 0o600)


def make_ca(directory: Path, name: str = "mesonb local CA") -> tuple[Path, Path]:
    """A self-signed CA in ``directory``: ``(ca.pem, ca-key.pem)``."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory = directory.resolve()
    key, cert = directory / "ca-key.pem", directory / "ca.pem"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key.name,
             cwd=directory)
    _private(key)
    _openssl("req", "-x509", "-new", "-key", key.name, "-out", cert.name, "-days", str(DAYS),
             "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    return cert, key


def make_cert(directory: Path, stem: str, ca: Path, ca_key: Path,
              hosts: Sequence[str] = ("127.0.0.1", "localhost"),
              client: bool = False) -> tuple[Path, Path]:
    """A certificate signed by the CA for ``hosts`` (IP addresses or names): ``(cert, key)``
    named ``<stem>.pem`` and ``<stem>-key.pem``."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca, ca_key = ca.resolve(), ca_key.resolve()  # openssl runs in ``directory``
    key, csr, cert = (directory / f"{stem}-key.pem", directory / f"{stem}.csr",
                      directory / f"{stem}.pem")
    names = []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
            names.append(f"IP:{host}")
        except ValueError:
            names.append(f"DNS:{host}")
    ext = directory / f"{stem}.ext"
    usage = "clientAuth" if client else "serverAuth,clientAuth"
    ext.write_text(f"subjectAltName={','.join(names)}\nextendedKeyUsage={usage}\n"
                   "basicConstraints=CA:FALSE\n")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key.name,
             cwd=directory)
    _private(key)
    _openssl("req", "-new", "-key", key.name, "-out", csr.name, "-subj",
             f"/CN={hosts[0] if hosts else stem}", cwd=directory)
    _openssl("x509", "-req", "-in", csr.name, "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", cert.name, "-days", str(DAYS), "-extfile", ext.name,
             cwd=directory)
    csr.unlink(missing_ok=True)
    ext.unlink(missing_ok=True)
    return cert, key


def make_bundle(directory: Path, hosts: Sequence[str] = ("127.0.0.1", "localhost")
                ) -> Bundle:
    """A new CA with a server certificate for ``hosts`` and a client certificate."""
    ca, ca_key = make_ca(directory)
    cert, key = make_cert(directory, "server", ca, ca_key, hosts)
    client_cert, client_key = make_cert(directory, "client", ca, ca_key, ["mesonb-client"],
                                        client=True)
    return Bundle(ca, ca_key, cert, key, client_cert, client_key)


def load_bundle(directory: Path) -> Bundle | None:
    """The bundle :func:`make_bundle` left in ``directory``, if it is whole."""
    bundle = Bundle(directory / "ca.pem", directory / "ca-key.pem", directory / "server.pem",
                    directory / "server-key.pem", directory / "client.pem",
                    directory / "client-key.pem")
    whole = all(p.is_file() for p in (bundle.ca, bundle.cert, bundle.key, bundle.client_cert,
                                      bundle.client_key))
    return bundle if whole else None
