"""The master's HTTP surface: one module per API, routes assembled here."""

from __future__ import annotations

from typing import Any

import tornado.web

from mesonb.http.base import NotFoundHandler, Security, SlashCollapsingApplication
from mesonb.logging_level import LoggingLevel, LoggingToggleHandler
from mesonb.master.master import Master
from mesonb.protocol.agent import AGENT_PATH

from . import endpoints_files, endpoints_maintenance, state, ui
from .agent_link import AgentSocket
from .allocation import ALLOCATION_PATH, AllocationHandler
from .metrics import MetricsHandler, PrometheusHandler
from .misc import HealthHandler, RedirectHandler, VersionHandler
from .operator import OPERATOR_PATH, OperatorHandler
from .scheduler import SCHEDULER_PATH, SchedulerHandler


def make_app(master: Master, security: Security,
             lane_port: int | None = None) -> tornado.web.Application:
    """The master's routes; ``lane_port``: the calls lane's port, named in SUBSCRIBE
    answers (:mod:`.scheduler_lane`)."""
    deps: dict[str, Any] = {"security": security, "master": master}
    logging_level = {**deps, "logging_level": LoggingLevel()}
    routes = [
        (r"(?:/master)?" + SCHEDULER_PATH + "/?", SchedulerHandler,
         {**deps, "lane_port": lane_port}),
        (AGENT_PATH, AgentSocket, deps),
        (r"/version/?", VersionHandler, deps),
        (r"/health/?", HealthHandler, deps),
        (r"/master/health/?", HealthHandler, deps),
        (r"/master/redirect/?", RedirectHandler, deps),
        (r"(?:/master)?" + OPERATOR_PATH, OperatorHandler, logging_level),
        (r"/logging/toggle/?", LoggingToggleHandler, logging_level),
        (r"/metrics/snapshot/?", MetricsHandler, deps),
        (r"/metrics/?", PrometheusHandler, deps),
        (ALLOCATION_PATH, AllocationHandler, deps),
        *endpoints_maintenance.routes(deps),  # before state's: /master/weights takes PUT
        *endpoints_files.routes(deps),  # the master's log at /master/log
        *state.routes(deps),
        *ui.routes(deps),  # the web UI: /, /panel/<name>, /ui/*
    ]
    return SlashCollapsingApplication(
        routes,
        default_handler_class=NotFoundHandler,
        default_handler_args={"security": security},
        websocket_max_message_size=64 * 1024 * 1024,
    )
