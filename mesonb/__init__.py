"""mesonb: Apache Mesos, rebuilt in Python for notebooks and scripts.

The daemons (``mesonb master``, ``mesonb agent``, ``mesonb local``) pool the resources of
many machines; frameworks speak Mesos's v1 scheduler API to the master. The public
surface is listed in ``__all__``; everything else may change.
"""

from mesonb.config import MESONB_VERSION as __version__

__all__ = ["__version__"]
