"""The agent's HTTP endpoints, in one application.

``/api/v1/executor`` (executor API), ``/state`` and ``/state.json`` (Mesos agent v0
state, also under ``/slave(1)/``), ``/health`` (public), ``/version`` (public),
``/flags``, ``/metrics/snapshot``, ``/monitor/statistics`` and the files API. Handlers
are thin: the agent builds every answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mesonb.http.base import NotFoundHandler, Security, SlashCollapsingApplication
from mesonb.logging_level import LoggingLevel, LoggingToggleHandler

from . import metrics
from .executor_api import ExecutorApiHandler
from .files import BrowseHandler, DebugHandler, DownloadHandler, ReadHandler
from .nested import NestedContainers
from .operator_api import OPERATOR_PATH, AgentOperatorHandler

if TYPE_CHECKING:
    from .surface import AgentSurface

from mesonb.http.base import BaseHandler


class StateHandler(BaseHandler):
    agent: AgentSurface

    def get(self) -> None:
        # what the caller may see of it (view_frameworks/tasks/executors), as Mesos filters
        self.write_jsonp_or_json(self.viewer().v0_frameworks(self.agent.state()))


class HealthHandler(BaseHandler):
    public = True

    def get(self) -> None:
        self.set_status(200)
        self.finish()


class VersionHandler(BaseHandler):
    public = True
    agent: AgentSurface

    def get(self) -> None:
        self.write_json(self.agent.version_info())


class FlagsHandler(BaseHandler):
    endpoint_acl = True  # get_endpoints
    agent: AgentSurface

    def get(self) -> None:
        self.write_jsonp_or_json({"flags": self.agent.flags()})


class MetricsHandler(BaseHandler):
    agent: AgentSurface

    def get(self) -> None:
        self.write_jsonp_or_json(self.agent.metrics_snapshot())


class MonitorHandler(BaseHandler):
    """``/monitor/statistics``: measured usage of each running executor."""

    endpoint_acl = True  # get_endpoints
    agent: AgentSurface

    def get(self) -> None:
        self.write_jsonp_or_json(self.agent.monitor_statistics())


class ContainersHandler(BaseHandler):
    """``/containers``: each running container, its ids and measured usage (Mesos)."""

    endpoint_acl = True  # get_endpoints
    agent: AgentSurface

    def get(self) -> None:
        self.write_jsonp_or_json(self.agent.monitor.containers(
            self.agent.executors.all_executors()))


def make_app(agent: AgentSurface, security: Security) -> SlashCollapsingApplication:
    """The agent's tornado application."""
    kw = {"security": security, "agent": agent}
    slave = r"(?:/slave\(1\))?"
    logging_level = LoggingLevel()
    operator = {**kw, "nested": NestedContainers(), "logging_level": logging_level}
    routes = [
        (slave + r"/api/v1/executor/?", ExecutorApiHandler, kw),
        (OPERATOR_PATH, AgentOperatorHandler, operator),
        (r"/logging/toggle/?", LoggingToggleHandler, {**kw, "logging_level": logging_level}),
        (slave + r"/state(?:\.json)?", StateHandler, kw),
        (slave + r"/health", HealthHandler, kw),
        (slave + r"/flags", FlagsHandler, kw),
        (r"/version", VersionHandler, kw),
        (r"/metrics/snapshot", metrics.MetricsHandler, kw),
        (r"/metrics/?", metrics.PrometheusHandler, kw),
        (slave + r"/monitor/statistics(?:\.json)?", MonitorHandler, kw),
        (slave + r"/containers(?:\.json)?", ContainersHandler, kw),
        (r"/files/browse(?:\.json)?", BrowseHandler, kw),
        (r"/files/read(?:\.json)?", ReadHandler, kw),
        (r"/files/download(?:\.json)?", DownloadHandler, kw),
        (r"/files/debug(?:\.json)?", DebugHandler, kw),
    ]
    return SlashCollapsingApplication(
        routes,
        default_handler_class=NotFoundHandler,
        default_handler_args={"security": security},
        compress_response=False,
    )
