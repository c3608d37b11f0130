"""What datasets and data frames need of their context: a typed protocol.

:class:`~.dataset.Dataset` and :class:`~.dataframe.DataFrame` run their jobs through the
:class:`~.context.Dataflow` that made them, but only through these three calls; typing
them against this protocol keeps ``context`` -> ``dataset``/``dataframe`` one way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from .lineage import Node


class Runner(Protocol):
    """The part of a dataflow context its datasets use (:class:`~.context.Dataflow`)."""

    def _run(self, node: Node, func: Callable[[int, Iterator[Any]], Any],
             partitions: list[int] | None, description: str) -> list[Any]:
        """Run ``func`` over ``node``'s ``partitions`` (all for None) as one job."""
        ...

    def _reducers(self, inputs: int) -> int:
        """A shuffle's reduce partitions when its call names none."""
        ...

    def _unpersist(self, node: Node) -> None:
        """Drop ``node``'s kept partitions from the executors."""
        ...
