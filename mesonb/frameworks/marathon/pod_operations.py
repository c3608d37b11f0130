"""What ``/v2/pods`` can change: create, replace (or scale), delete a pod, kill its
instances. A pod is kept as an app whose definition carries its spec (see :mod:`.pods`),
so its versions, locks and deployments are the apps' (with Marathon's pod actions:
StartPod, ScalePod, RestartPod, StopPod)."""

from __future__ import annotations

from typing import Any

from .appstate import AppState
from .instances import Instance
from .model import AppDefinition, normalize_path
from .operations import ApiError, Operations
from .pods import parse_pod, pod_json


class PodOperations:
    """The pod changes, on the same core (and locks, versions) as ``ops``."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops
        self.core = ops.core

    def require(self, pod_id: str) -> AppState:
        """The pod (404 Marathon's way when there is none)."""
        path = normalize_path(pod_id)
        state = self.core.apps.get(path)
        if state is None or state.deleting or state.definition.pod is None:
            raise ApiError(404, f"Pod '{path}' does not exist")
        return state

    async def create(self, body: Any) -> tuple[AppDefinition, str]:
        """POST /v2/pods: the pod and its deployment id (409 if the id is taken)."""
        pod = parse_pod(body)
        self.ops._check_new_id(pod.id)
        version = self.ops.new_version()
        self.ops._stamp(pod, version, config=True)
        state = AppState(pod, since=version)
        self.core.apps[pod.id] = state
        await self.ops._save(state)
        self.core.bus.publish("pod_created_event", clientIp="", uri=f"/v2/pods{pod.id}")
        steps = [[("StartPod", pod.id)]]
        if pod.instances:
            steps.append([("ScalePod", pod.id)])
        dep = await self.ops._deploy(steps, version, [pod])
        return pod, dep.id

    async def update(self, pod_id: str, body: Any, force: bool
                     ) -> tuple[dict[str, Any], str, int]:
        """PUT /v2/pods/{id}: ``(pod JSON, deployment id, status)``; creates (201)."""
        path = normalize_path(pod_id)
        state = self.core.apps.get(path)
        if state is None or state.deleting:
            pod, dep_id = await self.create({**body, "id": path} if isinstance(body, dict)
                                            else body)
            return pod_json(pod), dep_id, 201
        if state.definition.pod is None:
            raise ApiError(409, f"An app with id [{path}] already exists.")
        pod = parse_pod(body, path)
        await self.ops._check_locks([path], force)
        result = await self.ops._replace(state, pod, kind="Pod")
        self.core.bus.publish("pod_updated_event", clientIp="", uri=f"/v2/pods{path}")
        return pod_json(state.definition), result["deploymentId"], 200

    async def delete(self, pod_id: str, force: bool) -> dict[str, Any]:
        """DELETE /v2/pods/{id}: its instances are killed (a StopPod deployment)."""
        state = self.require(pod_id)
        path = state.definition.id
        await self.ops._check_locks([path], force)
        result = await self.ops._delete_apps([path], kind="Pod")
        self.core.bus.publish("pod_deleted_event", clientIp="", uri=f"/v2/pods{path}")
        return result

    async def kill(self, pod_id: str, instance_ids: list[str]) -> list[Instance]:
        """DELETE /v2/pods/{id}::instances[/{instance}]: kill those instances (the pod
        keeps its scale: they are replaced); the instances killed."""
        state = self.require(pod_id)
        mine = {i.id: i for i in self.core.app_instances(state.definition.id)}
        unknown = [i for i in instance_ids if i not in mine]
        if unknown:
            raise ApiError(404, f"Pod instance '{unknown[0]}' does not exist")
        killed = [mine[i] for i in instance_ids]
        for inst in killed:
            self.core.kill(inst)
        await self.core.converge(state.definition.id)
        return killed
