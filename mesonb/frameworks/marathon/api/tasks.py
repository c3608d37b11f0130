"""Tasks: ``/v2/tasks``, ``/v2/tasks/delete``, ``/v2/apps/{id}/tasks[/{task}]``."""

from __future__ import annotations

from typing import Any

from ..model import normalize_path
from ..operations import ApiError
from .base import MarathonHandler

STATUS_FILTER = {"running": ("TASK_RUNNING",),
                 "staging": ("TASK_STAGING", "TASK_STARTING"),
                 "unreachable": ("TASK_UNREACHABLE",),
                 "killing": ("TASK_KILLING",)}


class TasksHandler(MarathonHandler):
    """``GET /v2/tasks`` (``status`` / ``status[]`` filters)."""

    async def get(self) -> None:
        wanted: set[str] = set()
        for name in (*self.get_query_arguments("status"),
                     *self.get_query_arguments("status[]")):
            wanted.update(STATUS_FILTER.get(name.lower(), ()))
        apps = self.service.core.apps
        tasks = [i.to_json() for i in self.service.core.instances.values()
                 if (not wanted or i.state.value in wanted) and i.app_id in apps
                 and apps[i.app_id].definition.pod is None]  # pods' instances: /v2/pods
        if "text/plain" in (self.request.headers.get("Accept") or "") and \
                "json" not in (self.request.headers.get("Accept") or ""):
            lines = [f"{t['appId']}\t{t['host']}\t{t['ports']}" for t in tasks]
            self.set_header("Content-Type", "text/plain")
            self.finish("\n".join(lines) + "\n")
            return
        self.write_json({"tasks": tasks})


class TasksDeleteHandler(MarathonHandler):
    """``POST /v2/tasks/delete?scale=&wipe=&force=`` with ``{"ids": [...]}``."""

    async def post(self) -> None:
        body = self.body_json()
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ApiError(422, "Object is not valid", details=[
                {"path": "/ids", "errors": ["error.expected.jsarray"]}])
        core = self.service.core
        found = [core.instances[i] for i in ids if i in core.instances]
        result = await self.service.ops.kill_tasks(found, self.flag("scale"), self.flag("force"))
        self.write_json(result if result is not None else
                        {"tasks": [i.to_json() for i in found]})


class AppTasksHandler(MarathonHandler):
    """``/v2/apps/{id}/tasks``: GET, DELETE (``host``, ``scale``, ``wipe``)."""

    def _instances(self, app_id: str) -> list[Any]:
        path = normalize_path(app_id)
        state = self.service.core.apps.get(path)
        if state is None or state.deleting or state.definition.pod is not None:
            raise ApiError(404, f"App '{path}' does not exist")
        return self.service.core.app_instances(path)

    async def get(self, app_id: str) -> None:
        self.write_json({"tasks": [i.to_json() for i in self._instances(app_id)]})

    async def delete(self, app_id: str) -> None:
        instances = [i for i in self._instances(app_id) if i.active]
        host = self.get_query_argument("host", None)
        if host:
            instances = [i for i in instances if i.host == host]
        result = await self.service.ops.kill_tasks(instances, self.flag("scale"),
                                                   self.flag("force"))
        self.write_json(result if result is not None else
                        {"tasks": [i.to_json() for i in instances]})


class AppTaskHandler(MarathonHandler):
    """``DELETE /v2/apps/{id}/tasks/{task}`` (``scale``, ``wipe``)."""

    async def delete(self, app_id: str, task_id: str) -> None:
        path = normalize_path(app_id)
        inst = self.service.core.instances.get(task_id)
        if inst is None or inst.app_id != path:
            raise ApiError(404, f"Task '{task_id}' does not exist")
        result = await self.service.ops.kill_tasks([inst], self.flag("scale"),
                                                   self.flag("force"))
        self.write_json(result if result is not None else {"task": inst.to_json()})
