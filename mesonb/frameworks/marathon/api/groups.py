"""``/v2/groups``: the group tree (nested groups, dependencies), created, changed, scaled
(``scaleBy``), rolled back to a version, deleted."""

from __future__ import annotations

import time

from ..model import normalize_path, path_problems
from ..operations import ApiError
from ..views import group_json, parse_embeds
from .base import MarathonHandler


class GroupsHandler(MarathonHandler):
    """``/v2/groups`` and ``/v2/groups/{id}``."""

    async def get(self, group_id: str = "/") -> None:
        started = time.perf_counter()
        path = normalize_path(group_id or "/")
        embeds = parse_embeds([e.replace("group.apps.", "app.") for e in
                               self.get_query_arguments("embed")])
        group = group_json(self.service.core, path, embeds)
        if group is None:
            raise ApiError(404, f"Group '{path}' does not exist")
        self.write_json(group)
        self.service.groups_latency.append(time.perf_counter() - started)
        del self.service.groups_latency[:-1000]

    async def post(self, group_id: str = "/") -> None:
        body = self.body_json()
        if not isinstance(body, dict):
            raise ApiError(422, "Object is not valid", details=[
                {"path": "/", "errors": ["error.expected.jsobject"]}])
        path = normalize_path(body.get("id") or group_id or "/", normalize_path(group_id or "/"))
        self._check_id(path)
        result, status = await self.service.ops.put_group(path, body, self.flag("force"),
                                                          create=True)
        self.write_json(result, status)

    async def put(self, group_id: str = "/") -> None:
        body = self.body_json()
        if not isinstance(body, dict):
            raise ApiError(422, "Object is not valid", details=[
                {"path": "/", "errors": ["error.expected.jsobject"]}])
        path = normalize_path(group_id or "/")
        if set(body) == {"version"}:
            raise ApiError(422, "Object is not valid", details=[
                {"path": "/version", "errors": ["use PUT /v2/groups/{id}/versions/{version}"]}])
        result, _ = await self.service.ops.put_group(path, body, self.flag("force"),
                                                     create=False)
        self.write_json(result)

    async def patch(self, group_id: str = "/") -> None:
        await self.put(group_id)

    async def delete(self, group_id: str = "/") -> None:
        result = await self.service.ops.delete_group(normalize_path(group_id or "/"),
                                                     self.flag("force"))
        self.write_json(result)

    def _check_id(self, path: str) -> None:
        if path != "/" and path_problems(path):
            raise ApiError(422, "Object is not valid", details=[
                {"path": "/id", "errors": path_problems(path)}])


class GroupVersionHandler(MarathonHandler):
    """``PUT /v2/groups/{id}/versions/{version}``: the group's apps as they were then."""

    async def put(self, group_id: str, version: str) -> None:
        ops = self.service.ops
        core = self.service.core
        path = normalize_path(group_id)
        apps = []
        for app_id, state in list(core.apps.items()):
            if not app_id.startswith(path.rstrip("/") + "/") or state.deleting \
                    or state.definition.pod is not None:
                continue
            earlier = [v for v in state.versions if v <= version]
            if earlier:
                old = await ops.version_of(app_id, earlier[-1])
                if old is not None:
                    body = old.to_json()
                    body.pop("version", None)
                    body.pop("versionInfo", None)
                    apps.append(body)
        if not apps:
            raise ApiError(404, f"Group '{path}' does not exist in version {version}")
        result, _ = await ops.put_group(path, {"id": path, "apps": apps,
                                               "dependencies": core.groups.get(path, [])},
                                        self.flag("force"), create=False)
        self.write_json(result)

    async def get(self, group_id: str, version: str) -> None:
        group = group_json(self.service.core, normalize_path(group_id))
        if group is None:
            raise ApiError(404, f"Group '{group_id}' does not exist")
        self.write_json(group)


class GroupVersionsHandler(MarathonHandler):
    async def get(self, group_id: str) -> None:
        group = group_json(self.service.core, normalize_path(group_id))
        if group is None:
            raise ApiError(404, f"Group '{group_id}' does not exist")
        versions = sorted({v for s in self.service.core.apps.values()
                           if s.definition.id.startswith(group["id"].rstrip("/") + "/")
                           for v in s.versions}, reverse=True)
        self.write_json(versions)
