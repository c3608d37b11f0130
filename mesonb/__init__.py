"""mesonb: Apache Mesos, rebuilt in Python for notebooks and scripts.

The daemons (``mesonb master``, ``mesonb agent``, ``mesonb local``) pool the resources of
many machines; frameworks speak Mesos's v1 scheduler API to the master. The notebook
client::

    from mesonb import Cluster
    with Cluster.local(agents=2) as cluster:
        print(cluster.submit(sum, [1, 2, 3]).result())

The public surface is listed in ``__all__``; everything else may change. The client is
imported lazily (executors import ``mesonb`` too, and should stay light).
"""

from typing import Any

from mesonb.config import MESONB_VERSION as __version__

__all__ = ["Cluster", "__version__", "as_completed", "progress", "wait"]


def __getattr__(name: str) -> Any:
    if name in ("Cluster", "as_completed", "wait"):
        from mesonb import client

        return getattr(client, name)
    if name == "progress":
        from mesonb.widgets.progress import progress

        return progress
    raise AttributeError(f"module 'mesonb' has no attribute {name!r}")
