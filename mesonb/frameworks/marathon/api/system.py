"""``/v2/info``, ``/v2/leader`` (GET, DELETE to abdicate), ``/ping``, ``/metrics`` and the
(deprecated) ``/v2/eventSubscriptions`` callback list."""

from __future__ import annotations

from ..operations import ApiError
from ..views import metrics_json
from .base import MarathonHandler


class InfoHandler(MarathonHandler):
    async def get(self) -> None:
        self.write_json(self.service.info())


class LeaderHandler(MarathonHandler):
    local = True

    async def get(self) -> None:
        leader = self.service.leader_address
        if not leader:
            raise ApiError(404, "There is no leader")
        self.write_json({"leader": leader})

    async def delete(self) -> None:
        if not self.service.is_leader:
            await self.proxy()
            return
        await self.service.abdicate()
        self.write_json({"message": "Leadership abdicated"})


class PingHandler(MarathonHandler):
    local = True

    async def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.finish("pong")

    head = get


class MetricsHandler(MarathonHandler):
    async def get(self) -> None:
        self.write_json(metrics_json(self.service.core, self.service.groups_latency))


class EventSubscriptionsHandler(MarathonHandler):
    async def get(self) -> None:
        self.write_json({"callbackUrls": list(self.service.core.bus.callback_urls)})

    async def post(self) -> None:
        url = self.get_query_argument("callbackUrl", "")
        if not url.startswith(("http://", "https://")):
            raise ApiError(422, "Object is not valid", details=[
                {"path": "/callbackUrl", "errors": ["must be an http(s) URL"]}])
        urls = self.service.core.bus.callback_urls
        if url not in urls:
            urls.append(url)
        event = self.service.core.bus.publish("subscribe_event", clientIp=self.request.remote_ip,
                                              callbackUrl=url)
        self.write_json(event)

    async def delete(self) -> None:
        url = self.get_query_argument("callbackUrl", "")
        urls = self.service.core.bus.callback_urls
        if url in urls:
            urls.remove(url)
        event = self.service.core.bus.publish("unsubscribe_event",
                                              clientIp=self.request.remote_ip, callbackUrl=url)
        self.write_json(event)
