"""How the client's DataFrames show in a notebook: short ids, times to the second.

:func:`shown` wraps a DataFrame of :mod:`.state` in :class:`Frame`, a DataFrame whose
text and HTML reprs show ids cut short (``5f3c0e6e…S0``) and times to the second, while
the data keep every value whole (``frame.task_id`` is the full id, times keep their
nanoseconds); selections and copies stay :class:`Frame`\\ s.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

_UUID_HEAD = re.compile(r"^[0-9a-f]{8}-[0-9a-f-]{20,}")
ID_MAX = 24


def short_id(ident: str) -> str:
    """``5f3c0e6e-…-S0`` -> ``5f3c0e6e…S0``; long other ids cut to :data:`ID_MAX`."""
    if _UUID_HEAD.match(ident):
        return f"{ident[:8]}…{ident.rsplit('-', 1)[-1]}"
    return ident if len(ident) <= ID_MAX else ident[:ID_MAX - 1] + "…"


def for_display(df: Any) -> Any:
    """A plain copy of ``df`` as it shows: ids short, times to the second."""
    import pandas as pd

    out = pd.DataFrame(df).copy()
    for name in out.columns:
        column = out[name]
        if str(name).endswith("_id") and len(column):
            out[name] = column.map(lambda v: short_id(v) if isinstance(v, str) else v)
        elif isinstance(column.dtype, pd.DatetimeTZDtype):
            out[name] = column.dt.floor("s")
    return out


@cache
def frame_class() -> type:
    import pandas as pd

    class Frame(pd.DataFrame):
        """A DataFrame shown with short ids and times to the second (the data whole)."""

        @property
        def _constructor(self) -> type:
            return Frame

        def __repr__(self) -> str:
            return repr(for_display(self))

        def _repr_html_(self) -> str | None:
            return for_display(self)._repr_html_()

    return Frame


def shown(df: Any) -> Any:
    """``df`` as a :class:`Frame` (same data)."""
    return frame_class()(df)
