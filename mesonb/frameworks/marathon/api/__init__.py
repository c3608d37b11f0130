"""The Marathon v2 REST API, one handler module per resource group (tornado)."""

from __future__ import annotations

from typing import Any

from mesonb.http.base import SlashCollapsingApplication

from .apps import AppHandler, AppsHandler, RestartHandler, VersionHandler, VersionsHandler
from .base import NotFound
from .deployments import DeploymentHandler, DeploymentsHandler
from .events import EventsHandler
from .groups import GroupsHandler, GroupVersionHandler, GroupVersionsHandler
from .pods import (
    PluginsHandler,
    PodHandler,
    PodInstancesHandler,
    PodsHandler,
    PodsStatusHandler,
    PodStatusHandler,
    PodVersionsHandler,
)
from .queue import QueueDelayHandler, QueueHandler
from .system import (
    EventSubscriptionsHandler,
    InfoHandler,
    LeaderHandler,
    MetricsHandler,
    PingHandler,
)
from .tasks import AppTaskHandler, AppTasksHandler, TasksDeleteHandler, TasksHandler

APP = r"(/?[^?]+?)"
POD = r"(/?[^?:]+?)"


def make_application(service: Any) -> SlashCollapsingApplication:
    """The tornado application serving ``service`` (a :class:`~..service.Marathon`)."""
    kw = {"service": service}
    routes = [
        (r"/v2/apps/?", AppsHandler),
        (rf"/v2/apps{APP}/restart/?", RestartHandler),
        (rf"/v2/apps{APP}/tasks/([^/]+)/?", AppTaskHandler),
        (rf"/v2/apps{APP}/tasks/?", AppTasksHandler),
        (rf"/v2/apps{APP}/versions/([^/]+)/?", VersionHandler),
        (rf"/v2/apps{APP}/versions/?", VersionsHandler),
        (rf"/v2/apps{APP}", AppHandler),
        (r"/v2/tasks/?", TasksHandler),
        (r"/v2/tasks/delete/?", TasksDeleteHandler),
        (r"/v2/deployments/?", DeploymentsHandler),
        (r"/v2/deployments/([^/]+)/?", DeploymentHandler),
        (r"/v2/groups/?", GroupsHandler),
        (rf"/v2/groups{APP}/versions/([^/]+)/?", GroupVersionHandler),
        (rf"/v2/groups{APP}/versions/?", GroupVersionsHandler),
        (rf"/v2/groups{APP}/?", GroupsHandler),
        (r"/v2/queue/?", QueueHandler),
        (rf"/v2/queue{APP}/delay/?", QueueDelayHandler),
        (r"/v2/info/?", InfoHandler),
        (r"/v2/leader/?", LeaderHandler),
        (r"/v2/events/?", EventsHandler),
        (r"/v2/eventSubscriptions/?", EventSubscriptionsHandler),
        (r"/v2/pods/?", PodsHandler),
        (r"/v2/pods/?::status/?", PodsStatusHandler),
        (rf"/v2/pods{POD}::status/?", PodStatusHandler),
        (rf"/v2/pods{POD}::versions/?", PodVersionsHandler),
        (rf"/v2/pods{POD}::instances/?", PodInstancesHandler),
        (rf"/v2/pods{POD}::instances/([^/]+)/?", PodInstancesHandler),
        (rf"/v2/pods{POD}/?", PodHandler),
        (r"/v2/plugins/?", PluginsHandler),
        (r"/v2/plugins/(.+)", PluginsHandler),
        (r"/ping/?", PingHandler),
        (r"/metrics/?", MetricsHandler),
    ]
    return SlashCollapsingApplication([(p, h, kw) for p, h in routes],
                                      default_handler_class=NotFound,
                                      default_handler_args=kw)
