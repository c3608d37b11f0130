"""A Spark-like dataflow framework: a Mesos framework of its own (v1 API only).

* :mod:`.context` — :class:`Dataflow`, the user's entry point;
* :mod:`.dataset` / :mod:`.dataframe` — the lazy APIs over records and pandas frames;
* :mod:`.lineage` — the lineage graph; :mod:`.partitioning` — shuffle split/merge;
* :mod:`.dag` — stages and tasks; :mod:`.record` — ``flow.jobs()``/``flow.stages()``;
* :mod:`.framework` — executors as Mesos tasks and the driver's control server;
* :mod:`.executor` — the executor process; :mod:`.shuffle` — map outputs served
  executor to executor; :mod:`.blocks` — persisted partitions with spill;
* :mod:`.messages` — what driver and executors say; :mod:`.progress` — progress bars.
"""

from .context import Dataflow
from .dataframe import DataFrame
from .dataset import Dataset
from .remote import RemoteError, RemoteTraceback

__all__ = ["DataFrame", "Dataflow", "Dataset", "RemoteError", "RemoteTraceback"]
