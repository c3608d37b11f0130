"""Offers as they arrive, with resource inputs and Accept/Decline buttons.

The data is the framework's own (:class:`~mesonb.client.interactive.NotebookFramework`
keeps the offers it holds and tells listeners of ``offers``/``rescind``); this is only a
view of it: one row per held offer (ipywidgets, imported here), rebuilt when offers come
and go. Accept launches ``command`` (a shell command) with the row's resources; Decline
declines with the row's ``refuse_seconds``.
"""

from __future__ import annotations

import threading
from typing import Any


class OfferRow:
    """The inputs and buttons of one offer."""

    def __init__(self, view: OffersView, offer: Any) -> None:
        import ipywidgets as w

        self.view, self.offer = view, offer
        res = offer.resources
        self.label = w.HTML(f"<code>{offer.hostname}</code> cpus {res.get('cpus', 0):g}, "
                            f"mem {res.get('mem', 0):g} MB")
        self.cpus = w.BoundedFloatText(value=min(0.1, res.get("cpus", 0.1)), min=0.01,
                                       max=max(res.get("cpus", 0.1), 0.01), step=0.1,
                                       description="cpus", layout={"width": "11em"})
        self.mem = w.BoundedFloatText(value=min(64.0, res.get("mem", 64.0)), min=1,
                                      max=max(res.get("mem", 1.0), 1.0), description="mem MB",
                                      layout={"width": "13em"})
        self.command = w.Text(value="hostname", description="command")
        self.refuse = w.FloatText(value=5.0, description="refuse s", layout={"width": "11em"})
        self.accept_button = w.Button(description="Accept", button_style="success")
        self.decline_button = w.Button(description="Decline", button_style="warning")
        self.accept_button.on_click(lambda _: self.accept())
        self.decline_button.on_click(lambda _: self.decline())
        self.widget = w.HBox([self.label, self.cpus, self.mem, self.command,
                              self.accept_button, self.refuse, self.decline_button])

    def accept(self) -> Any:
        task = self.view.framework.launch(self.offer, command=self.command.value,
                                          cpus=self.cpus.value, mem=self.mem.value)
        self.view.launched.append(task)
        self.view.remove(self.offer.id)
        return task

    def decline(self) -> None:
        self.view.framework.decline(self.offer, refuse_seconds=self.refuse.value)
        self.view.remove(self.offer.id)


class OffersView:
    """A live list of a notebook framework's offers (see the module docstring)."""

    def __init__(self, framework: Any) -> None:
        import ipywidgets as w

        self.framework = framework
        self.rows: dict[str, OfferRow] = {}
        self.launched: list[Any] = []
        self._lock = threading.Lock()
        self.box = w.VBox()
        self.title = w.HTML()
        self._widget = w.VBox([self.title, self.box])
        for offer in framework.offer_list():
            self.rows[offer.id] = OfferRow(self, offer)
        self._unsubscribe = framework.subscribe(self._on_event)
        self._redraw()

    def _on_event(self, kind: str, payload: Any) -> None:
        with self._lock:
            if kind == "offers":
                for offer in payload:
                    self.rows[offer.id] = OfferRow(self, offer)
            elif kind == "rescind":
                self.rows.pop(payload.id, None)
            else:
                return
        self._redraw()

    def remove(self, offer_id: str) -> None:
        with self._lock:
            self.rows.pop(offer_id, None)
        self._redraw()

    def _redraw(self) -> None:
        with self._lock:
            rows = list(self.rows.values())
        self.title.value = f"<b>{self.framework.name}</b>: {len(rows)} offers held"
        self.box.children = [r.widget for r in rows]

    def widget(self) -> Any:
        return self._widget

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self._widget)

    def close(self) -> None:
        self._unsubscribe()
