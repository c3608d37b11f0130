"""A daemon's logging level as Mesos exposes it: a glog verbosity, changed for a while.

Mesos's ``GET_LOGGING_LEVEL``/``SET_LOGGING_LEVEL`` operator calls and the ``/logging/toggle``
endpoint (libprocess's ``logging.cpp``) read and set glog's verbosity ``level`` (0 is the
normal level) for a ``duration``, after which it reverts to the original. mesonb maps the
verbosity onto Python's ``logging``: level 0 is the level the daemon started with, any level
above 0 is ``DEBUG`` for the ``mesonb`` loggers.

The toggle owns its timer on the asyncio loop it runs on; time comes from that loop.
"""

from __future__ import annotations

import asyncio
import logging
import re

from mesonb.http.base import BaseHandler
from mesonb.protocol.errors import BadRequest

MAX_LEVEL = 3  # glog's practical maximum; Mesos accepts any uint32
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|secs|mins|hrs|days|weeks)\s*$")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "secs": 1.0, "mins": 60.0,
                 "hrs": 3600.0, "days": 86400.0, "weeks": 604800.0}


def parse_duration(text: str) -> float:
    """Mesos's ``Duration`` text (``"10secs"``, ``"1mins"``, ``"500ms"``) in seconds."""
    match = _DURATION.match(text or "")
    if match is None:
        raise BadRequest(f"Failed to parse duration '{text}': expected a number and one of "
                         f"{', '.join(_UNIT_SECONDS)} (for example '30secs')")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class LoggingLevel:
    """The verbosity of one daemon's ``mesonb`` loggers, toggled for a duration."""

    def __init__(self, logger: str = "mesonb") -> None:
        self._logger = logging.getLogger(logger)
        self._original = self._logger.level
        self.level = 0
        self._revert: asyncio.TimerHandle | None = None

    def set(self, level: int, duration: float) -> None:
        """Use verbosity ``level`` for ``duration`` seconds, then go back to level 0."""
        if isinstance(level, bool) or not isinstance(level, int) or level < 0:
            raise BadRequest(f"Invalid logging level '{level}': expected an unsigned integer")
        if not duration > 0 or duration != duration:
            raise BadRequest(f"Invalid duration '{duration}': must be positive")
        if self._revert is not None:
            self._revert.cancel()
            self._revert = None
        self._apply(level)
        if level != 0:
            loop = asyncio.get_running_loop()
            self._revert = loop.call_later(duration, self.reset)

    def reset(self) -> None:
        """Back to verbosity 0, the level the daemon started with."""
        if self._revert is not None:
            self._revert.cancel()
            self._revert = None
        self._apply(0)

    def _apply(self, level: int) -> None:
        self.level = level
        self._logger.setLevel(logging.DEBUG if level > 0 else self._original)


class LoggingToggleHandler(BaseHandler):
    """``/logging/toggle?level=N&duration=D`` (libprocess): set the verbosity for a while.

    Without arguments it answers the current level, as ``GET_LOGGING_LEVEL`` does."""

    endpoint_acl = True  # get_endpoints
    logging_level: LoggingLevel

    def get(self) -> None:
        level = self.get_query_argument("level", None)
        duration = self.get_query_argument("duration", None)
        if level is None and duration is None:
            self.write_json({"level": self.logging_level.level})
            return
        if level is None:
            raise BadRequest("Expecting 'level=value' in query")
        if duration is None:
            raise BadRequest("Expecting 'duration=value' in query")
        try:
            value = int(level)
        except ValueError:
            raise BadRequest(f"Invalid level '{level}': expected an unsigned integer") from None
        self.logging_level.set(value, parse_duration(duration))
        self.set_status(200)
        self.finish()

    post = get
