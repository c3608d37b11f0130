"""``/v2/pods``: list, create, replace, delete pods; ``::status``, ``::versions`` and
``::instances`` (kill instances); and ``/v2/plugins`` (none, as Marathon without any)."""

from __future__ import annotations

from typing import Any

from ..appstate import AppState
from ..model import normalize_path
from ..operations import ApiError
from ..pod_operations import PodOperations
from ..pods import instance_status, pod_json, pod_status
from ..views import visible_pods
from .base import MarathonHandler


class PodsBase(MarathonHandler):
    @property
    def pods(self) -> PodOperations:
        return PodOperations(self.service.ops)

    def status_of(self, state: AppState) -> dict[str, Any]:
        core = self.service.core
        app = state.definition
        return pod_status(app, core.app_instances(app.id), bool(core.locks(app.id)),
                          state.since)


class PodsHandler(PodsBase):
    """``GET /v2/pods`` (every pod's spec), ``POST`` (create: 201)."""

    async def get(self) -> None:
        self.write_json([pod_json(s.definition) for s in visible_pods(self.service.core)])

    async def post(self) -> None:
        pod, deployment_id = await self.pods.create(self.body_json())
        self.set_header("Location", f"/v2/pods{pod.id}")
        self.set_header("Marathon-Deployment-Id", deployment_id)
        self.write_json(pod_json(pod), 201)


class PodsStatusHandler(PodsBase):
    """``GET /v2/pods/::status``: the status of every pod."""

    async def get(self) -> None:
        self.write_json([self.status_of(s) for s in visible_pods(self.service.core)])


class PodHandler(PodsBase):
    """``/v2/pods/{id}``: GET, PUT (replace or create), DELETE."""

    async def get(self, pod_id: str) -> None:
        self.write_json(pod_json(self.pods.require(pod_id).definition))

    async def put(self, pod_id: str) -> None:
        body, deployment_id, status = await self.pods.update(pod_id, self.body_json(),
                                                             self.flag("force"))
        self.set_header("Marathon-Deployment-Id", deployment_id)
        self.write_json(body, status)

    async def delete(self, pod_id: str) -> None:
        result = await self.pods.delete(pod_id, self.flag("force"))
        self.set_header("Marathon-Deployment-Id", result["deploymentId"])
        self.write_json(result, 202)


class PodStatusHandler(PodsBase):
    async def get(self, pod_id: str) -> None:
        self.write_json(self.status_of(self.pods.require(pod_id)))


class PodVersionsHandler(PodsBase):
    async def get(self, pod_id: str) -> None:
        self.write_json(sorted(self.pods.require(pod_id).versions, reverse=True))


class PodInstancesHandler(PodsBase):
    """``DELETE /v2/pods/{id}::instances`` (a JSON array of instance ids) and
    ``DELETE /v2/pods/{id}::instances/{instance}``: kill them; the pod replaces them."""

    async def delete(self, pod_id: str, instance_id: str | None = None) -> None:
        if instance_id is None:
            ids = self.body_json()
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ApiError(400, "Invalid JSON", details=[
                    {"path": "/", "errors": ["error.expected.jsarray of instance ids"]}])
        else:
            ids = [instance_id]
        app = self.pods.require(pod_id).definition
        killed = [instance_status(app, i) for i in await self.pods.kill(pod_id, ids)]
        self.write_json(killed if instance_id is None else killed[0])


class PluginsHandler(MarathonHandler):
    """``GET /v2/plugins``: Marathon's plugin list (this Marathon loads none)."""

    async def get(self, rest: str | None = None) -> None:
        if rest:
            raise ApiError(404, f"Plugin '{normalize_path(rest).strip('/')}' not found")
        self.write_json({"plugins": []})
