"""Operator calls of the maintenance module, carried out on a harness master as HTTP would."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from mesonb.http.base import Security
from mesonb.master.http.operator_maintenance import MAINTENANCE_CALLS
from mesonb.master.master import Master
from mesonb.protocol.operator import Call, CallType


def operator(master: Master, kind: str, **body: Any) -> Any:
    """Carry out an operator call as the HTTP handler does (an open, permissive master)."""
    call = Call.from_json({"type": kind, **body}, "Call")
    caller = SimpleNamespace(master=master, security=Security(), principal=None)
    return MAINTENANCE_CALLS[CallType(kind)](caller, call)
