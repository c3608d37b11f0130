"""The errors the notebook client raises."""

from __future__ import annotations


class ResourceError(ValueError):
    """No registered agent could ever hold the request (it would wait forever)."""


class TaskError(RuntimeError):
    """A task ended without a result: killed for a limit, lost with its agent, refused.

    ``state`` and ``reason`` are Mesos's names (``TASK_FAILED``,
    ``REASON_CONTAINER_LIMITATION_MEMORY``); ``message`` is the status message.
    """

    def __init__(self, task_id: str, state: str, reason: str | None, message: str | None):
        self.task_id, self.state, self.reason, self.message = task_id, state, reason, message
        why = f" ({reason})" if reason else ""
        super().__init__(f"task {task_id}: {state}{why}" + (f": {message}" if message else ""))


class RemoteTraceback(Exception):
    """Carries the remote traceback text; set as ``__cause__`` of a re-raised exception."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class RemoteError(Exception):
    """A remote exception that could not be pickled back: its type name and message."""
