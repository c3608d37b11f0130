"""A notebook framework's offers as they come and go, to accept or decline by hand.

* :class:`OffersModel` is the data: the offers the framework holds now (kept current by
  the framework's ``offers``/``rescind``/``gone``/``closed`` events, so an offer launched
  on or declined from code, or rescinded by the master, leaves at once), the tasks
  launched from it, and ``accept``/``decline``. No display code.
* :class:`OffersView` draws it with ipywidgets (imported here): one row per offer with
  cpus, mem, disk and gpus inputs, the shell command (or, given a function, a choice
  between it and a command), Accept, ``refuse_seconds`` and Decline.
* :class:`OffersText` is the same outside a Jupyter kernel: a text table, and
  ``accept(i, ...)``/``decline(i)`` by row number or offer id.

Both stop listening when the framework closes (or on ``close()``).

Example::

    view = fw.offers_widget(pow, 2, 10)   # Accept runs pow(2, 10) on that offer
    view                                   # in Jupyter: the widget; elsewhere: a table
    task = view.accept(0, cpus=0.2, mem=128)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from html import escape
from typing import Any

log = logging.getLogger(__name__)

SCALARS = ("cpus", "mem", "disk", "gpus")
DEFAULTS = {"cpus": 0.1, "mem": 64.0, "disk": 0.0, "gpus": 0.0}
DEFAULT_COMMAND = "hostname"
DEFAULT_REFUSE = 5.0  # Mesos's default refuse_seconds


class OffersModel:
    """The offers a framework holds, and what was launched on them (see the module
    docstring). ``fn(*args, **kwargs)`` is what Accept launches unless given a command."""

    def __init__(self, framework: Any, fn: Callable[..., Any] | None = None, *args: Any,
                 **kwargs: Any) -> None:
        self.framework = framework
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.offers: dict[str, Any] = {}  # held now, in arrival order
        self.launched: list[Any] = []
        self.error = ""  # the last accept/decline failure, for the views
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str, Any], Any]] = []
        self.closed = bool(framework.closed)
        self._unsubscribe: Callable[[], Any] = lambda: None
        if not self.closed:
            self._unsubscribe = framework.subscribe(self._on_event)
            held = framework.offer_list()  # after subscribing: no offer slips between
            with self._lock:
                for offer in held:
                    if offer.gone is None:
                        self.offers.setdefault(offer.id, offer)
                for offer_id in [i for i, o in self.offers.items() if o.gone is not None]:
                    del self.offers[offer_id]

    # -- events (the framework's, on the client's loop thread) -----------------------
    def _on_event(self, kind: str, payload: Any) -> None:
        with self._lock:
            if kind == "offers":
                for offer in payload:
                    if offer.gone is None:
                        self.offers[offer.id] = offer
            elif kind in ("rescind", "gone"):
                self.offers.pop(payload.id, None)
            elif kind == "closed":
                self.closed = True
                self.offers.clear()
            elif kind != "update" or payload not in self.launched:
                return
        if kind == "closed":
            self.close()
        self._tell(kind, payload)

    def subscribe(self, listener: Callable[[str, Any], Any]) -> None:
        """``listener(kind, payload)`` after every change the views should show."""
        self._listeners.append(listener)

    def _tell(self, kind: str, payload: Any) -> None:
        for listener in list(self._listeners):  # a failing view must not break the model
            try:
                listener(kind, payload)
            except Exception:
                log.exception("offers view %r failed on %s", listener, kind)

    # -- data --------------------------------------------------------------------------
    def offer_list(self) -> list[Any]:
        with self._lock:
            return list(self.offers.values())

    def find(self, which: Any) -> Any:
        """An offer held now, by row number, offer id or the Offer itself."""
        offers = self.offer_list()
        if isinstance(which, int):
            if not 0 <= which < len(offers):
                raise IndexError(f"no offer number {which}: {len(offers)} held")
            return offers[which]
        offer_id = which if isinstance(which, str) else which.id
        for offer in offers:
            if offer.id == offer_id:
                return offer
        raise ValueError(f"offer {offer_id} is not held (launched on, declined or rescinded)")

    def defaults(self, offer: Any) -> dict[str, float]:
        """What a row starts with: a small task, never more than the offer has."""
        return {r: min(DEFAULTS[r], offer.resources.get(r, 0.0)) for r in SCALARS}

    # -- actions -----------------------------------------------------------------------
    def accept(self, which: Any, *, cpus: float | None = None, mem: float | None = None,
               disk: float | None = None, gpus: float | None = None,
               command: str | None = None, refuse_seconds: float | None = None) -> Any:
        """Launch on one held offer with these resources (mem and disk in MB): the
        command if given, else the model's function; returns the
        :class:`~mesonb.client.interactive.LaunchedTask`."""
        given = {"cpus": cpus, "mem": mem, "disk": disk, "gpus": gpus}
        try:
            offer = self.find(which)
            res = {k: (self.defaults(offer)[k] if v is None else float(v))
                   for k, v in given.items()}
            if command is None and self.fn is None:
                raise ValueError("give a shell command (this view has no function)")
            if command is not None:
                task = self.framework.launch(offer, command=command, cpus=res["cpus"],
                                             mem=res["mem"], disk=res["disk"] or None,
                                             gpus=res["gpus"] or None,
                                             refuse_seconds=refuse_seconds)
            else:
                task = self.framework.launch(offer, self.fn, *self.args, cpus=res["cpus"],
                                             mem=res["mem"], disk=res["disk"] or None,
                                             gpus=res["gpus"] or None,
                                             refuse_seconds=refuse_seconds, **self.kwargs)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self._tell("error", exc)
            raise
        self.error = ""
        with self._lock:
            self.offers.pop(offer.id, None)
            self.launched.append(task)
        self._tell("launched", task)
        if hasattr(task, "add_done_callback"):  # a LaunchedTask: a future
            task.add_done_callback(lambda t: self._tell("result", t))
        return task

    def decline(self, which: Any, refuse_seconds: float | None = DEFAULT_REFUSE) -> None:
        """Decline one held offer (no offer of that agent for ``refuse_seconds``)."""
        try:
            offer = self.find(which)
            self.framework.decline(offer, refuse_seconds=refuse_seconds)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self._tell("error", exc)
            raise
        self.error = ""
        with self._lock:
            self.offers.pop(offer.id, None)
        self._tell("declined", offer)

    def close(self) -> None:
        """Stop listening to the framework (it may still run)."""
        unsubscribe, self._unsubscribe = self._unsubscribe, lambda: None
        unsubscribe()

    @property
    def what(self) -> str:
        """What Accept runs, in words."""
        if self.fn is None:
            return "a shell command"
        name = getattr(self.fn, "__name__", "function")
        args = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        text = f"{name}({', '.join(args)})"
        return text if len(text) <= 60 else text[:59] + "…"


class OffersText:
    """:class:`OffersModel` as text, outside a Jupyter kernel (see the module docstring)."""

    def __init__(self, model: OffersModel) -> None:
        self.model = model

    def text(self) -> str:
        model = self.model
        offers = model.offer_list()
        head = f"{model.framework.name}: "
        if model.closed:
            head += "the framework is closed"
        else:
            head += f"{len(offers)} offers held; accept(i, cpus=, mem=, disk=, gpus=, " \
                    f"command=) runs {model.what}; decline(i, refuse_seconds)"
        lines = [head]
        for i, offer in enumerate(offers):
            res = ", ".join(f"{r} {_amount(r, offer.resources.get(r, 0.0))}" for r in SCALARS
                            if offer.resources.get(r))
            lines.append(f"  [{i}] {_agent(offer)}: {res}  (offer {offer.id})")
        for task in model.launched:
            lines.append(f"  launched {task.name} {task.task_id} on {_agent(task)}: "
                         f"{outcome(task)}")
        if model.error:
            lines.append(f"  error: {model.error}")
        return "\n".join(lines)

    def accept(self, which: Any, **options: Any) -> Any:
        return self.model.accept(which, **options)

    def decline(self, which: Any, refuse_seconds: float | None = DEFAULT_REFUSE) -> None:
        self.model.decline(which, refuse_seconds)

    @property
    def launched(self) -> list[Any]:
        return self.model.launched

    def close(self) -> None:
        self.model.close()

    def __repr__(self) -> str:
        return self.text()


class OfferRow:
    """The inputs and buttons of one offer."""

    def __init__(self, view: OffersView, offer: Any) -> None:
        import ipywidgets as w

        self.view, self.offer = view, offer
        model = view.model
        res = offer.resources
        start = model.defaults(offer)
        self.label = w.HTML(
            f"<code title='{escape(offer.agent_id, quote=True)}'>{escape(_agent(offer))}"
            "</code> " + escape(", ".join(f"{r} {_amount(r, res.get(r, 0.0))}"
                                          for r in SCALARS if res.get(r))))
        self.inputs: dict[str, Any] = {}
        label = {"description_width": "initial"}  # the whole name shows, never clipped
        for r, unit, width in (("cpus", "", "9em"), ("mem", " MB", "12em"),
                               ("disk", " MB", "12em"), ("gpus", "", "9em")):
            have = float(res.get(r, 0.0))
            self.inputs[r] = w.BoundedFloatText(
                value=start[r], min=0.0, max=max(have, start[r]),
                step=0.1 if r == "cpus" else 1.0, description=r + unit,
                disabled=not have, style=label, layout={"width": width})
        self.cpus, self.mem = self.inputs["cpus"], self.inputs["mem"]
        self.disk, self.gpus = self.inputs["disk"], self.inputs["gpus"]
        self.command = w.Text(value=DEFAULT_COMMAND, description="command", style=label,
                              layout={"width": "22em"})
        self.kind = w.ToggleButtons(options=[model.what, "command"], value=model.what,
                                    layout={"display": "flex" if model.fn else "none"})
        self.kind.observe(lambda _: self._show_command(), names="value")
        self._show_command()
        self.refuse = w.FloatText(value=DEFAULT_REFUSE, description="refuse s",
                                  style=label, layout={"width": "11em"})
        self.accept_button = w.Button(description="Accept", button_style="success")
        self.decline_button = w.Button(description="Decline", button_style="warning")
        self.accept_button.on_click(lambda _: view._act(self.accept))
        self.decline_button.on_click(lambda _: view._act(self.decline))
        self.widget = w.VBox([
            w.HBox([self.label, self.kind]),
            w.HBox([self.cpus, self.mem, self.disk, self.gpus]),
            w.HBox([self.command, self.accept_button, self.refuse, self.decline_button])])

    def _show_command(self) -> None:
        """The command box shows only when Accept runs a command."""
        self.command.layout.display = "none" if self.runs_function else "flex"

    @property
    def runs_function(self) -> bool:
        return self.view.model.fn is not None and self.kind.value != "command"

    def accept(self) -> Any:
        """Launch with this row's inputs (the function, or the command)."""
        return self.view.model.accept(
            self.offer.id, cpus=self.cpus.value, mem=self.mem.value, disk=self.disk.value,
            gpus=self.gpus.value, command=None if self.runs_function else self.command.value)

    def decline(self) -> None:
        self.view.model.decline(self.offer.id, refuse_seconds=self.refuse.value)


class OffersView:
    """:class:`OffersModel` as ipywidgets (see the module docstring)."""

    def __init__(self, model: OffersModel) -> None:
        import ipywidgets as w

        self.model = model
        self.framework = model.framework
        self.rows: dict[str, OfferRow] = {}
        self._lock = threading.Lock()
        self.title = w.HTML()
        self.box = w.VBox()
        self.tasks = w.HTML()
        self.message = w.HTML()
        self._widget = w.VBox([self.title, self.box, self.tasks, self.message])
        model.subscribe(self._on_change)
        self._redraw()

    @property
    def launched(self) -> list[Any]:
        return self.model.launched

    def _on_change(self, kind: str, payload: Any) -> None:
        self._redraw()
        if kind == "closed":  # the last picture, sent whole from the closing cell:
            for widget in (self.title, self.box, self.tasks, self.message):
                widget.send_state()  # changes made between cells belong to no cell

    def _act(self, action: Callable[[], Any]) -> None:
        """A button's action; its failure shows in the view (a click has no caller)."""
        try:
            action()
        except Exception:
            self._redraw()

    def _redraw(self) -> None:
        with self._lock:
            offers = self.model.offer_list()
            self.rows = {o.id: self.rows.get(o.id) or OfferRow(self, o) for o in offers}
            rows = list(self.rows.values())
        name = escape(self.framework.name)
        if self.model.closed:
            self.title.value = f"<b>{name}</b>: the framework is closed"
        else:
            released = getattr(self.framework, "released", 0)
            given = (f" ({released} given back to the client's waiting calls)"
                     if released else "")
            self.title.value = (f"<b>{name}</b>: {len(rows)} offers held{given}; Accept runs "
                                f"{escape(self.model.what)}")
        self.box.children = [r.widget for r in rows]
        self.tasks.value = "".join(
            f"<div><code>{escape(t.name)}</code> <small>{escape(t.task_id)}</small> "
            f"on {escape(_agent(t))}: "
            f"{escape(outcome(t))}</div>" for t in self.model.launched)
        self.message.value = (f"<span style='color:#c33'>{escape(self.model.error)}</span>"
                              if self.model.error else "")

    def widget(self) -> Any:
        return self._widget

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self._widget)

    def __repr__(self) -> str:
        return OffersText(self.model).text()

    def close(self) -> None:
        self.model.close()


def _agent(thing: Any) -> str:
    """An offer's or task's agent as ``hostname:port``."""
    return str(getattr(thing, "agent", "") or thing.hostname)


def _amount(name: str, value: float) -> str:
    if name in ("mem", "disk"):
        return f"{value / 1024:.1f} GiB" if value >= 1024 else f"{value:g} MiB"
    return f"{value:g}"


def outcome(task: Any) -> str:
    """A launched task's state, and once done its result (or error) in short."""
    if not getattr(task, "done", lambda: False)():
        return str(task.state)
    if task.cancelled():
        return f"{task.state}: cancelled"
    exc = task.exception()
    if exc is not None:
        return f"{task.state}: {type(exc).__name__}: {exc}"[:200]
    text = repr(task.result()).split("\n", 1)[0]
    return f"{task.state} → {text if len(text) <= 120 else text[:119] + '…'}"
