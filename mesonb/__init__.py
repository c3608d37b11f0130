"""mesonb: Apache Mesos, rebuilt in Python for notebooks and scripts.

The daemons (``mesonb master``, ``mesonb agent``, ``mesonb local``) pool the resources of
many machines; frameworks speak Mesos's v1 scheduler API to the master. The notebook
client::

    from mesonb import Cluster
    with Cluster.local(agents=2) as cluster:
        print(cluster.submit(sum, [1, 2, 3]).result())

The public surface is listed in ``__all__``; everything else may change. The client is
imported lazily (executors import ``mesonb`` too, and should stay light).

Logging: mesonb's loggers (and tornado's, for an embedded cluster) print nothing unless
asked: configure :mod:`logging` yourself, or call ``mesonb.config(log_level="INFO")``
(``mesonb.config(log_level=None)`` makes them quiet again).
"""

import logging
import sys
from typing import Any

from mesonb import config as _settings
from mesonb.config import MESONB_VERSION as __version__

__all__ = ["Cluster", "__version__", "as_completed", "config", "progress", "wait"]
LOGGERS = ("mesonb", "tornado")
logging.getLogger("mesonb").addHandler(logging.NullHandler())


class _Config:
    """``mesonb.config(log_level=...)``; also the :mod:`mesonb.config` module's names
    (``mesonb.config.MasterConfig``), which this callable stands in front of."""

    _handler: logging.Handler | None = None

    def __call__(self, *, log_level: str | int | None = None) -> None:
        """Show mesonb's (and tornado's) log records at ``log_level`` and above on
        stderr (a notebook cell shows them); ``None``: show none."""
        for name in LOGGERS:
            logger = logging.getLogger(name)
            if self._handler is not None:
                logger.removeHandler(self._handler)
        _Config._handler = None
        if log_level is None:
            return
        level = logging.getLevelName(log_level.upper()) if isinstance(log_level, str) \
            else log_level
        if not isinstance(level, int):
            raise ValueError(f"log_level {log_level!r}: not a logging level")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: "
                                               "%(message)s", "%H:%M:%S"))
        handler.setLevel(level)
        for name in LOGGERS:
            logger = logging.getLogger(name)
            logger.addHandler(handler)
            if logger.getEffectiveLevel() > level or logger.level == logging.NOTSET:
                logger.setLevel(level)
        for name in ("mesonb.http.access",):  # quieted for embedded daemons
            if logging.getLogger(name).level > level:
                logging.getLogger(name).setLevel(level)
        _Config._handler = handler

    def __getattr__(self, name: str) -> Any:
        return getattr(_settings, name)

    def __repr__(self) -> str:
        return "<mesonb.config(log_level=...): mesonb's logging, and mesonb.config's settings>"


config = _Config()


def __getattr__(name: str) -> Any:
    if name in ("Cluster", "as_completed", "wait"):
        from mesonb import client

        return getattr(client, name)
    if name == "progress":
        from mesonb.widgets.progress import progress

        return progress
    raise AttributeError(f"module 'mesonb' has no attribute {name!r}")
