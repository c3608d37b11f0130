"""Per-container executor tokens, HMAC-signed, as Mesos's JWT executor tokens.

The agent signs, for each container it launches, the framework, executor and container
ids with a key of its own (``secrets.token_bytes`` at start-up, or checkpointed so that
recovered executors keep working); an executor presents the token as a bearer token and
the agent learns from the signature alone whom it speaks for — no table to keep, and a
token for one container never passes for another's.

    token = base64url(json claims) "." base64url(HMAC-SHA256(key, json claims))
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

PREFIX = "mxt1."


class InvalidToken(ValueError):
    """Not a token this key signed."""


@dataclass(frozen=True)
class ExecutorClaims:
    framework_id: str
    executor_id: str
    container_id: str


def new_key() -> bytes:
    return secrets.token_bytes(32)


def agent_key(path: Path) -> bytes:
    """The signing key kept at ``path`` (mode 0600), made on first use, so that executors
    recovered after an agent restart keep their tokens."""
    try:
        key = path.read_bytes()
        if len(key) == 32:
            return key
    except FileNotFoundError:
        pass
    key = new_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, claims: ExecutorClaims) -> str:
    body = json.dumps({"fid": claims.framework_id, "eid": claims.executor_id,
                       "cid": claims.container_id}, separators=(",", ":")).encode()
    mac = hmac.new(key, body, hashlib.sha256).digest()
    return f"{PREFIX}{_b64(body)}.{_b64(mac)}"


def verify(key: bytes, token: str) -> ExecutorClaims:
    """The claims of a token this key signed; :class:`InvalidToken` otherwise."""
    if not token.startswith(PREFIX):
        raise InvalidToken("not an executor token")
    try:
        body_text, mac_text = token[len(PREFIX):].split(".")
        body, mac = _unb64(body_text), _unb64(mac_text)
    except ValueError:
        raise InvalidToken("malformed executor token") from None
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise InvalidToken("executor token signature does not match")
    try:
        data = json.loads(body)
        return ExecutorClaims(str(data["fid"]), str(data["eid"]), str(data["cid"]))
    except (ValueError, KeyError, TypeError):
        raise InvalidToken("malformed executor token claims") from None
