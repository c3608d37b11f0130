"""Principals and secrets, from a credentials file in Mesos's formats (``--credentials``).

JSON (``{"credentials": [{"principal": "fw", "secret": "s3cret"}, ...]}``) or Mesos's older
text format, one ``principal secret`` pair per line (mesos: src/credentials/credentials.hpp).
A file readable by others than its owner is refused, as Mesos warns about it and a secret
in it would be readable by every local user.
"""

from __future__ import annotations

import hmac
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path


class CredentialsError(ValueError):
    """The credentials file cannot be used; the message says why."""


@dataclass(frozen=True)
class Credential:
    principal: str
    secret: str


class Credentials:
    """The principals a daemon knows, with their secrets; compared in constant time."""

    def __init__(self, credentials: list[Credential] | None = None) -> None:
        self._secrets: dict[str, str] = {}
        for credential in credentials or ():
            if not credential.principal:
                raise CredentialsError("A credential has an empty principal")
            self._secrets[credential.principal] = credential.secret

    def __len__(self) -> int:
        return len(self._secrets)

    def __contains__(self, principal: object) -> bool:
        return principal in self._secrets

    def check(self, principal: str, secret: str) -> bool:
        """Whether ``secret`` is ``principal``'s (a missing principal never matches)."""
        known = self._secrets.get(principal)
        # compare even for an unknown principal, so timing does not tell which exist
        ok = hmac.compare_digest((known or "\0").encode(), secret.encode())
        return known is not None and ok

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, check_mode: bool = True) -> Credentials:
        """Read a credentials file; :class:`CredentialsError` names the problem."""
        file = Path(path)
        try:
            info = file.stat()
            text = file.read_text()
        except OSError as exc:
            raise CredentialsError(f"Cannot read credentials file {file}: {exc.strerror}"
                                   ) from None
        if check_mode and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CredentialsError(
                f"Credentials file {file} is readable by others "
                f"(mode {stat.filemode(info.st_mode)}); run chmod 600 on it")
        return cls.parse(text, str(file))

    @classmethod
    def parse(cls, text: str, where: str = "credentials") -> Credentials:
        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                data = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise CredentialsError(f"{where}: invalid JSON: {exc}") from None
            items = data.get("credentials") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise CredentialsError(f"{where}: expected {{\"credentials\": [...]}}")
            out = []
            for i, item in enumerate(items):
                if not isinstance(item, dict) or not isinstance(item.get("principal"), str):
                    raise CredentialsError(f"{where}: credentials[{i}] needs a 'principal'")
                secret = item.get("secret", "")
                if not isinstance(secret, str):
                    raise CredentialsError(f"{where}: credentials[{i}].secret must be text")
                out.append(Credential(item["principal"], secret))
            return cls(out)
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise CredentialsError(f"{where}:{n}: expected 'principal secret'")
            out.append(Credential(parts[0], parts[1]))
        return cls(out)
