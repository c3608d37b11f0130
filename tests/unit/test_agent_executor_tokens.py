"""Executors' tokens: signed by the agent (HMAC) for one container, they name its framework,
executor and container; a token speaks only for its own executor, and no longer once its
container is gone."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from test_agent_executor_side import FW, Side, until

from mesonb.agent.executors import Executors
from mesonb.protocol.errors import Unauthorized
from mesonb.security import tokens


@pytest.fixture
async def side(tmp_path: Path) -> Any:
    s = Side(tmp_path)
    key = tokens.agent_key(tmp_path / "executor-token.key")
    s.executors = Executors(dataclasses.replace(s.executors.host, token_key=key))
    s.key = key
    yield s
    await s.stop()


async def test_tokens_are_signed_for_one_container(side: Side) -> None:
    first, second = side.run("a"), side.run("b")
    claims = tokens.verify(side.key, first.token)
    assert claims == tokens.ExecutorClaims(FW, first.executor_id, first.container_id)
    assert side.executors.authenticate(f"Bearer {first.token}") == (FW, "a")
    assert side.executors.authenticate(f"Bearer {second.token}") == (FW, "b")
    forged = tokens.sign(tokens.new_key(), tokens.ExecutorClaims(FW, "a", first.container_id))
    with pytest.raises(Unauthorized):
        side.executors.authenticate(f"Bearer {forged}")
    await until(lambda: first.container is not None)
    side.executors.shutdown_executor(first)
    side.clock.advance(3.0)
    side.executors.lifecycle.tick()
    await until(lambda: first.state.value == "TERMINATED")
    with pytest.raises(Unauthorized):  # the container is gone: its token with it
        side.executors.authenticate(f"Bearer {first.token}")


def test_the_key_is_kept_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "agent" / "executor-token.key"
    key = tokens.agent_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert tokens.agent_key(path) == key  # recovered executors keep their tokens


async def test_a_tokens_signature_is_checked_once_and_its_liveness_every_call(
        side: Side, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every executor call carries its token: the HMAC is checked on the first call only
    (it cannot change), whether its container still lives on every call."""
    first = side.run("a")
    checked: list[str] = []
    verify = tokens.verify

    def counting(key: bytes, token: str) -> tokens.ExecutorClaims:
        checked.append(token)
        return verify(key, token)

    monkeypatch.setattr(tokens, "verify", counting)
    for _ in range(5):
        assert side.executors.authenticate(f"Bearer {first.token}") == (FW, "a")
    assert checked == [first.token]
    await until(lambda: first.container is not None)
    side.executors.shutdown_executor(first)
    side.clock.advance(3.0)
    side.executors.lifecycle.tick()
    await until(lambda: first.state.value == "TERMINATED")
    with pytest.raises(Unauthorized):  # checked once, but gone with its container
        side.executors.authenticate(f"Bearer {first.token}")
