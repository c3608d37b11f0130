"""The notebook client: :class:`Cluster`, its futures, and the helpers around them."""

from .cluster import Cluster
from .errors import RemoteError, ResourceError, TaskError
from .futures import CommandResult, Future, Logs, as_completed, wait

__all__ = ["Cluster", "CommandResult", "Future", "Logs", "RemoteError", "ResourceError",
           "TaskError", "as_completed", "wait"]
