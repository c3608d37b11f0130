"""``/v2/apps``: list, create, update, delete, restart, an app's tasks and versions."""

from __future__ import annotations

from typing import Any

from ..model import normalize_path, parse_app
from ..operations import ApiError
from ..views import app_json, parse_embeds, visible_apps
from .base import MarathonHandler


class AppsHandler(MarathonHandler):
    """``GET /v2/apps`` (``cmd``, ``id``, ``label``, ``embed``), ``POST``, bulk ``PUT``."""

    async def get(self) -> None:
        core = self.service.core
        embeds = parse_embeds(self.get_query_arguments("embed"))
        cmd = self.get_query_argument("cmd", None)
        ident = self.get_query_argument("id", None)
        label = self.get_query_argument("label", None)
        locks = core.lock_map()
        apps = []
        for state in visible_apps(core):
            app = state.definition
            if cmd and cmd not in (app.cmd or ""):
                continue
            if ident and ident.lower() not in app.id.lower():
                continue
            if label and not _label_matches(app.labels, label):
                continue
            apps.append(app_json(core, state, embeds, locks))
        self.write_json({"apps": apps})

    async def post(self) -> None:
        body = self.body_json()
        app, deployment_id = await self.service.ops.create_app(body, self.flag("force"))
        state = self.service.core.apps[app.id]
        out = app_json(self.service.core, state, set())
        self.set_header("Location", f"/v2/apps{app.id}")
        self.set_header("Marathon-Deployment-Id", deployment_id)
        self.write_json(out, 201)

    async def put(self) -> None:
        await self._bulk()

    async def patch(self) -> None:
        await self._bulk()

    async def _bulk(self) -> None:
        body = self.body_json()
        if not isinstance(body, list):
            raise ApiError(400, "Invalid JSON", details=[
                {"path": "/", "errors": ["error.expected.jsarray"]}])
        force = self.flag("force")
        result: dict[str, Any] = {}
        for item in body:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                parse_app(item)  # 400/422 with the details
                continue
            app_id = normalize_path(item["id"])
            result, _status = await self.service.ops.update_app(app_id, item, force)
        self.write_json(result)


def _label_matches(labels: dict[str, str], selector: str) -> bool:
    for term in selector.split(","):
        term = term.strip()
        if "==" in term:
            key, value = (s.strip() for s in term.split("==", 1))
            if labels.get(key) != value:
                return False
        elif "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif term and term not in labels:
            return False
    return True


class AppHandler(MarathonHandler):
    """``/v2/apps/{id}``: GET, PUT (create or update), PATCH, DELETE."""

    def _state(self, app_id: str) -> Any:
        state = self.service.core.apps.get(normalize_path(app_id))
        if state is None or state.deleting or state.definition.pod is not None:
            raise ApiError(404, f"App '{normalize_path(app_id)}' does not exist")
        return state

    async def get(self, app_id: str) -> None:
        path = normalize_path(app_id)
        core = self.service.core
        state = core.apps.get(path)
        embeds = parse_embeds(self.get_query_arguments("embed"))
        if state is None or state.deleting or state.definition.pod is not None:
            # Marathon answers /v2/apps/{group}/ with the apps under that group
            under = [s for s in visible_apps(core) if s.definition.id.startswith(path + "/")]
            if under and app_id.endswith("/"):
                self.write_json({"apps": [app_json(core, s, embeds) for s in under]})
                return
            raise ApiError(404, f"App '{path}' does not exist")
        self.write_json({"app": app_json(core, state, embeds)})

    async def put(self, app_id: str) -> None:
        body = self.body_json()
        result, status = await self.service.ops.update_app(normalize_path(app_id), body,
                                                           self.flag("force"))
        self.set_header("Marathon-Deployment-Id", result["deploymentId"])
        self.write_json(result, status)

    async def patch(self, app_id: str) -> None:
        self._state(app_id)
        await self.put(app_id)

    async def delete(self, app_id: str) -> None:
        result = await self.service.ops.delete_app(normalize_path(app_id), self.flag("force"))
        self.set_header("Marathon-Deployment-Id", result["deploymentId"])
        self.write_json(result)


class RestartHandler(MarathonHandler):
    async def post(self, app_id: str) -> None:
        result = await self.service.ops.restart_app(normalize_path(app_id), self.flag("force"))
        self.set_header("Marathon-Deployment-Id", result["deploymentId"])
        self.write_json(result)


class VersionsHandler(MarathonHandler):
    async def get(self, app_id: str) -> None:
        state = self.service.core.apps.get(normalize_path(app_id))
        if state is None or state.deleting or state.definition.pod is not None:
            raise ApiError(404, f"App '{normalize_path(app_id)}' does not exist")
        self.write_json({"versions": sorted(state.versions, reverse=True)})


class VersionHandler(MarathonHandler):
    async def get(self, app_id: str, version: str) -> None:
        app = await self.service.ops.version_of(normalize_path(app_id), version)
        if app is None:
            raise ApiError(404, f"App '{normalize_path(app_id)}' does not exist in version "
                                f"{version}")
        self.write_json(app.to_json())
