"""The errors the notebook client raises.

:class:`TaskError`, :class:`RemoteError` and :class:`RemoteTraceback` come from the
functions framework's result handling (:mod:`mesonb.frameworks.functions.results`).
"""

from __future__ import annotations

from mesonb.frameworks.functions.results import RemoteError, RemoteTraceback, TaskError

__all__ = ["RemoteError", "RemoteTraceback", "ResourceError", "TaskError"]


class ResourceError(ValueError):
    """No registered agent could ever hold the request (it would wait forever)."""
