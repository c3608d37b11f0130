"""The client's face of a notebook framework (:mod:`mesonb.frameworks.notebook`).

``cluster.framework("explore")`` gives a :class:`NotebookFramework`: the framework itself,
plus what a notebook wants of it: the held offers and its tasks as DataFrames, the offers
widget, and sizes in words (``mem="128MiB"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mesonb.frameworks import notebook
from mesonb.frameworks.notebook import tell

from . import state
from .sizes import parse_size

__all__ = ["LaunchedTask", "NotebookFramework", "Offer", "tell"]


class Offer(notebook.Offer):
    __doc__ = notebook.Offer.__doc__

    def _repr_html_(self) -> str:
        from .reprs import offer_html

        return offer_html(self)


class LaunchedTask(notebook.LaunchedTask):
    __doc__ = notebook.LaunchedTask.__doc__

    def _repr_html_(self) -> str:
        from .reprs import task_html

        return task_html(self)


class NotebookFramework(notebook.NotebookFramework):
    """A framework of the notebook's own; see :mod:`mesonb.frameworks.notebook`."""

    offer_type = Offer
    task_type = LaunchedTask

    def launch(self, offer: notebook.Offer, fn: Callable[..., Any] | None = None, *args: Any,
               command: str | None = None, cpus: float = 0.1, mem: str | float = "128MiB",
               disk: str | float | None = None, gpus: float | None = None,
               name: str | None = None, refuse_seconds: float | None = None,
               **kwargs: Any) -> notebook.LaunchedTask:
        """Launch ``fn(*args, **kwargs)`` or a shell ``command`` on ``offer`` with the
        given resources (``mem="128MiB"``, or MB); what the task does not use is
        declined (``refuse_seconds``)."""
        return super().launch(offer, fn, *args, command=command, cpus=cpus,
                              mem=parse_size(mem, "mem"),
                              disk=parse_size(disk, "disk") if disk else None, gpus=gpus,
                              name=name, refuse_seconds=refuse_seconds, **kwargs)

    def offers(self) -> Any:
        """The offers held now, as a DataFrame (:data:`~.state.OFFER_COLUMNS`)."""
        return state.frame([state.offer_row(o.raw) for o in self.offer_list()],
                           state.OFFER_COLUMNS)

    def tasks(self) -> Any:
        """This framework's tasks as the master lists them (a DataFrame)."""
        frame = self.cluster.tasks(all_frameworks=True)  # type: ignore[attr-defined]
        return frame[frame.framework_id == self.framework_id].reset_index(drop=True)

    def offers_widget(self, fn: Callable[..., Any] | None = None, *args: Any,
                      **kwargs: Any) -> Any:
        """The held offers as they come and go, each with resource inputs (cpus, mem,
        disk, gpus) and Accept/Decline buttons. Accept launches ``fn(*args, **kwargs)``
        when a function is given (or the row's shell command). In Jupyter an ipywidgets
        view (:class:`~mesonb.widgets.offers.OffersView`), elsewhere a text one
        (:class:`~mesonb.widgets.offers.OffersText`) with the same ``accept``/``decline``.
        """
        from mesonb.widgets.offers import OffersModel, OffersText
        from mesonb.widgets.progress import in_kernel

        model = OffersModel(self, fn, *args, **kwargs)
        if in_kernel():
            from mesonb.widgets.offers import OffersView

            return OffersView(model)
        return OffersText(model)

    def offers_widget_view(self, fn: Callable[..., Any] | None = None, *args: Any,
                           **kwargs: Any) -> Any:
        """The ipywidgets :class:`~mesonb.widgets.offers.OffersView`, in a kernel or not."""
        from mesonb.widgets.offers import OffersModel, OffersView

        return OffersView(OffersModel(self, fn, *args, **kwargs))
