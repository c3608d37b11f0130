"""What the agent's HTTP handlers see of the agent: a typed surface, not the Agent class.

The endpoints (``http.py``, ``files.py``, ``metrics.py``, ``operator_api.py``, the executor
socket) read the agent through this protocol, so they do not import ``agent.py``, which
builds them: the agent's modules import one another one way only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mesonb.config import AgentConfig
    from mesonb.protocol.mesos import AgentInfo

    from .executors import Executors
    from .monitor import ResourceMonitor


class SandboxResolver(Protocol):
    """Maps a files API path to a real file inside a sandbox (``files.SandboxPaths``)."""

    def resolve(self, path: str | None, virtual: dict[str, Path] | None = None) -> Path: ...


class AgentSurface(Protocol):
    """The agent as its endpoints see it (implemented by :class:`~.agent.Agent`)."""

    config: AgentConfig
    agent_id: str | None
    executors: Executors
    monitor: ResourceMonitor

    @property
    def sandbox_paths(self) -> SandboxResolver: ...

    def agent_info(self) -> AgentInfo: ...

    def virtual_sandboxes(self) -> dict[str, Path]: ...

    def version_info(self) -> dict[str, Any]: ...

    def flags(self) -> dict[str, str]: ...

    def state(self) -> dict[str, Any]: ...

    def metrics_snapshot(self) -> dict[str, float]: ...

    def monitor_statistics(self) -> list[dict[str, Any]]: ...
