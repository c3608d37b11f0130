"""The master's legacy (v0) endpoints for maintenance, quota and weights (mesos: docs/endpoints).

============================================  =================================================
``GET /master/maintenance/schedule``          the Schedule (``{"windows": [...]}``)
``POST /master/maintenance/schedule``         replace it (a Schedule in the body); 200
``GET /master/maintenance/status``            ClusterStatus (draining machines with the
                                              frameworks' answers, down machines)
``POST /master/machine/down``                 START_MAINTENANCE for a JSON array of MachineIDs
``POST /master/machine/up``                   STOP_MAINTENANCE likewise
``GET /master/quota``                         QuotaStatus (``{"infos": [], "configs": []}``)
``POST /master/quota``                        a QuotaRequest (guarantees = limits); 200
``DELETE /master/quota/<role>``               remove the role's quota; 200
``GET /master/weights``                       a bare array of WeightInfo
``PUT /master/weights``                       a JSON array of WeightInfo; 200
============================================  =================================================

Each is the operator call's twin (:mod:`.operator_maintenance`): same checks, same errors,
same ACLs; each is served by the leading master (a standby redirects).
"""

from __future__ import annotations

from typing import Any

from mesonb.http.base import BaseHandler, method_not_allowed
from mesonb.master import views
from mesonb.master.master import Master
from mesonb.master.quota import QuotaConfig, parse_request
from mesonb.protocol.errors import BadRequest
from mesonb.protocol.operator import Call, CallType

from . import authorize
from .operator import _CALLS
from .operator_maintenance import (
    apply_quota,
    quota_status,
    schedule_json,
    start_machines,
    status_json,
    stop_machines,
    update_schedule,
)


class _Handler(BaseHandler):
    master: Master

    def prepare(self) -> None:
        super().prepare()
        self.master.check_leader()

    async def done(self) -> None:
        """200 once the change is in the registry (:meth:`Master.durable`)."""
        await self.master.durable()
        self.set_status(200)
        self.finish()

    def get(self, *args: str) -> None:
        raise method_not_allowed("POST")

    async def refused(self, *args: str) -> None:  # a write this endpoint does not take
        raise method_not_allowed("POST")

    post = put = delete = patch = refused


class ScheduleHandler(_Handler):
    def get(self, *args: str) -> None:
        self.write_jsonp_or_json(schedule_json(self))

    async def post(self, *args: str) -> None:
        update_schedule(self, self.json_body())
        await self.done()


class StatusHandler(_Handler):
    def get(self, *args: str) -> None:
        self.write_jsonp_or_json(status_json(self))


class MachineDownHandler(_Handler):
    async def post(self, *args: str) -> None:
        start_machines(self, self.json_body(), "machines")
        await self.done()


class MachineUpHandler(_Handler):
    async def post(self, *args: str) -> None:
        stop_machines(self, self.json_body(), "machines")
        await self.done()


class QuotaHandler(_Handler):
    """``/master/quota`` and ``/master/quota/<role>`` (DELETE)."""

    def get(self, *args: str) -> None:
        self.write_jsonp_or_json(quota_status(self))

    async def post(self, *args: str) -> None:
        if args and args[0]:
            raise method_not_allowed("DELETE")
        force, config = parse_request(self.json_body(), "request")
        if config.role in self.master.quotas.configs:
            raise BadRequest(f"Failed to validate set quota request: quota cannot be set for "
                             f"role '{config.role}' which already has quota")
        apply_quota(self, [config], force)
        await self.done()

    async def delete(self, *args: str) -> None:
        role = args[0] if args else ""
        if not role:
            raise BadRequest("Failed to parse request path: expecting /quota/<role>")
        if role not in self.master.quotas.configs:
            raise BadRequest(f"Failed to remove quota: role '{role}' has no quota set")
        apply_quota(self, [QuotaConfig(role)], True)
        await self.done()


class WeightsHandler(_Handler):
    def get(self, *args: str) -> None:
        self.write_jsonp_or_json(views.weight_infos(self.master))

    async def put(self, *args: str) -> None:
        infos = self.json_body()
        if not isinstance(infos, list):
            raise BadRequest("Failed to validate update weights request JSON: expecting an "
                             "array of WeightInfo")
        call = Call.from_json({"type": "UPDATE_WEIGHTS",
                               "update_weights": {"weight_infos": infos}}, "Call")
        authorize.operator_call(self.security, self.principal, self.master, call)
        _CALLS[CallType.UPDATE_WEIGHTS](self, call)  # type: ignore[arg-type]
        await self.done()


def routes(deps: dict[str, Any]) -> list[tuple[str, type, dict[str, Any]]]:
    """These routes go before the read-only state routes (``/master/weights`` is both)."""
    table: list[tuple[str, type]] = [
        (r"/master/maintenance/schedule()", ScheduleHandler),
        (r"/master/maintenance/status()", StatusHandler),
        (r"/master/machine/down()", MachineDownHandler),
        (r"/master/machine/up()", MachineUpHandler),
        (r"/master/quota(?:/(.+?))?", QuotaHandler),  # a role may hold '/' (eng/dev)
        (r"/master/weights()", WeightsHandler),
    ]
    return [(rf"{path}(?:\.json)?/?", handler, deps) for path, handler in table]
