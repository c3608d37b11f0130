"""What the dataflow context remembers of its jobs and stages, as pandas DataFrames.

``flow.jobs()`` has one row per job (an action): its tasks, how long it took, executors
lost while it ran and the partitions *recomputed* because their shuffle output was lost
with an executor. ``flow.stages()`` has one row per stage of each job: its kind
(``shuffle map`` or ``result``), tasks, the seconds its tasks ran, the shuffle bytes it
wrote and read, and its recomputed partitions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class JobRecord:
    job_id: int
    description: str
    submitted: float
    status: str = "running"
    duration: float = 0.0
    tasks_total: int = 0
    tasks_done: int = 0
    tasks_failed: int = 0
    tasks_lost: int = 0
    fetch_failures: int = 0
    recomputed: int = 0
    executors_lost: int = 0
    error: str = ""


@dataclass
class StageRecord:
    job_id: int
    stage_id: int
    kind: str
    dataset: str
    partitions: int
    tasks_launched: int = 0
    tasks_done: int = 0
    tasks_failed: int = 0
    recomputed: int = 0
    task_seconds: float = 0.0
    bytes_written: int = 0
    bytes_read: int = 0
    started: float = 0.0
    finished: float = 0.0


@dataclass
class Record:
    jobs: list[JobRecord] = field(default_factory=list)
    stages: list[StageRecord] = field(default_factory=list)

    def frame(self, kind: str) -> Any:
        import pandas as pd

        rows = self.jobs if kind == "jobs" else self.stages
        cls = JobRecord if kind == "jobs" else StageRecord
        columns = [f.name for f in dataclasses.fields(cls)]
        frame = pd.DataFrame([dataclasses.asdict(r) for r in rows], columns=columns)
        for name in ("submitted", "started", "finished"):
            if name in frame:
                frame[name] = pd.to_datetime(frame[name], unit="s")
        return frame
