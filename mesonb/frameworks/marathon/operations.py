"""Changing apps and groups: each change is a new version, persisted, and a deployment.

These are what the REST API (and ``cluster.apps``) call: create, update (PUT/PATCH,
scale, rollback to a version), restart, delete, kill tasks, group changes and cancelling
a deployment. A change to an app that a running deployment holds is refused with
Marathon's 409 unless ``force`` is given, which cancels that deployment.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .appstate import AppState
from .core import MarathonCore
from .deployment_fsm import Deployment
from .deployment_fsm import Event as DEvent
from .instances import Instance
from .model import (
    AppDefinition,
    merge_update,
    normalize_path,
    parent_of,
    parse_app,
    timestamp,
)
from .storage import key_part


class ApiError(Exception):
    """An answer other than success: HTTP status and Marathon's JSON body."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"message": message, **extra}


class Operations:
    """The changes the API can ask for, on one :class:`~.core.MarathonCore`."""

    def __init__(self, core: MarathonCore) -> None:
        self.core = core
        self._last_version = ""

    # -- versions and storage -------------------------------------------------------------
    def new_version(self) -> str:
        version = timestamp()
        while version <= self._last_version:  # unique and increasing, even within 1 ms
            version = _next_ms(self._last_version)
        self._last_version = version
        return version

    async def _save(self, state: AppState) -> None:
        app = state.definition
        part = key_part(app.id)
        if app.version not in state.versions:
            state.versions.append(app.version)
        store = self.core.store
        await store.put(f"apps/{part}", app.to_store())
        await store.put(f"versions/{part}/{app.version}", app.to_store())
        await store.put(f"versionlist/{part}", state.versions)

    async def version_of(self, app_id: str, version: str) -> AppDefinition | None:
        state = self.core.apps.get(app_id)
        if state is None or version not in state.versions:
            return None
        data = await self.core.store.get(f"versions/{key_part(app_id)}/{version}")
        return AppDefinition.from_store(data) if data else None

    # -- locks ----------------------------------------------------------------------------
    async def _check_locks(self, app_ids: list[str], force: bool) -> None:
        held = {d.id: d for app_id in app_ids for d in self.core.locks(app_id)}
        if not held:
            return
        if not force:
            first = next(iter(held))
            raise ApiError(409, "App is locked by one or more deployments. Override with the "
                                "option '?force=true'. View details at "
                                f"'/v2/deployments/{first}'.",
                           deployments=[{"id": d} for d in held])
        for dep in held.values():
            await self.core.cancel(dep, "canceled by a forced change", DEvent.SUPERSEDE)

    def _require(self, app_id: str) -> AppState:
        state = self.core.apps.get(app_id)
        if state is None or state.deleting or state.definition.pod is not None:
            raise ApiError(404, f"App '{app_id}' does not exist")
        return state

    async def _deploy(self, steps: list[list[tuple[str, str]]], version: str,
                      apps: list[AppDefinition]) -> Deployment:
        dep = Deployment(version, [s for s in steps if s])
        timeouts = [a.deploy_timeout for a in apps if a.deploy_timeout is not None]
        await self.core.start_deployment(dep, max(timeouts) if timeouts else None)
        for app in apps:
            await self.core.converge(app.id)
        await self.core.check_deployments()
        return dep

    # -- apps -----------------------------------------------------------------------------
    async def create_app(self, body: Any, force: bool = False) -> tuple[AppDefinition, str]:
        """POST /v2/apps: the app and its deployment id (409 if the id is taken)."""
        app = parse_app(body)
        self._check_new_id(app.id)
        version = self.new_version()
        self._stamp(app, version, config=True)
        state = AppState(app, since=version)
        self.core.apps[app.id] = state
        await self._save(state)
        self.core.bus.publish("api_post_event", clientIp="", uri="/v2/apps",
                              appDefinition=app.to_json())
        steps = [[("StartApplication", app.id)]]
        if app.instances:
            steps.append([("ScaleApplication", app.id)])
        dep = await self._deploy(steps, version, [app])
        return app, dep.id

    def _check_new_id(self, app_id: str) -> None:
        existing = self.core.apps.get(app_id)
        if existing is not None and not existing.deleting:
            raise ApiError(409, f"An app with id [{app_id}] already exists.")
        if any(a.startswith(app_id + "/") for a in self.core.apps) or app_id in self.core.groups:
            raise ApiError(409, f"A group with id [{app_id}] already exists.")
        parent = parent_of(app_id)
        while parent != "/":
            if parent in self.core.apps:
                raise ApiError(409, f"An app with id [{parent}] already exists.")
            parent = parent_of(parent)

    def _stamp(self, app: AppDefinition, version: str, config: bool,
               previous: AppDefinition | None = None) -> None:
        app.version = version
        app.last_scaling_at = version
        if config or previous is None:
            app.last_config_change_at = version
        else:
            app.last_config_change_at = previous.last_config_change_at or previous.version

    async def update_app(self, app_id: str, body: Any, force: bool = False
                         ) -> tuple[dict[str, Any], int]:
        """PUT/PATCH /v2/apps/{id}: ``({"deploymentId", "version"}, status)``; creates
        the app (201) when it does not exist; ``{"version": v}`` rolls back to ``v``."""
        if not isinstance(body, dict):
            parse_app(body)  # raises 400
        state = self.core.apps.get(app_id)
        if state is None or state.deleting:
            app, dep_id = await self.create_app({**body, "id": app_id}, force)
            return {"deploymentId": dep_id, "version": app.version}, 201
        if state.definition.pod is not None:
            raise ApiError(409, f"A pod with id [{app_id}] already exists.")
        await self._check_locks([app_id], force)
        current = state.definition
        if set(body) == {"version"}:
            old = await self.version_of(app_id, str(body["version"]))
            if old is None:
                raise ApiError(404, f"App '{app_id}' does not exist in version "
                                    f"{body['version']}")
            merged = {**old.to_json(), "id": app_id}
        else:
            merged = merge_update(current, {k: v for k, v in body.items() if k != "id"})
            merged["id"] = app_id
        app = parse_app(merged)
        return await self._replace(state, app), 200

    async def _replace(self, state: AppState, app: AppDefinition, kind: str = "Application"
                       ) -> dict[str, Any]:
        current = state.definition
        version = self.new_version()
        scale_only = app.same_config(current)
        self._stamp(app, version, config=not scale_only, previous=current)
        if not scale_only:
            state.backoff.reset()
        state.definition = app
        await self._save(state)
        action = f"Scale{kind}" if scale_only else f"Restart{kind}"
        dep = await self._deploy([[(action, app.id)]], version, [app])
        return {"deploymentId": dep.id, "version": version}

    async def restart_app(self, app_id: str, force: bool = False) -> dict[str, Any]:
        state = self._require(app_id)
        await self._check_locks([app_id], force)
        app = dataclasses.replace(state.definition)
        version = self.new_version()
        self._stamp(app, version, config=True)
        state.definition = app
        state.backoff.reset()
        await self._save(state)
        dep = await self._deploy([[("RestartApplication", app_id)]], version, [app])
        return {"deploymentId": dep.id, "version": version}

    async def delete_app(self, app_id: str, force: bool = False) -> dict[str, Any]:
        self._require(app_id)
        await self._check_locks([app_id], force)
        return await self._delete_apps([app_id])

    async def _delete_apps(self, app_ids: list[str], kind: str = "Application"
                           ) -> dict[str, Any]:
        version = self.new_version()
        apps = []
        for app_id in app_ids:
            state = self.core.apps[app_id]
            state.deleting = True
            apps.append(state.definition)
            await self.core.store.delete(f"apps/{key_part(app_id)}")
        dep = await self._deploy([[(f"Stop{kind}", a) for a in app_ids]], version, apps)
        return {"deploymentId": dep.id, "version": version}

    async def scale_to(self, app_id: str, instances: int, force: bool = True
                       ) -> dict[str, Any]:
        state = self._require(app_id)
        await self._check_locks([app_id], force)
        return await self._replace(state, dataclasses.replace(state.definition,
                                                              instances=instances))

    # -- tasks ----------------------------------------------------------------------------
    async def kill_tasks(self, instances: list[Instance], scale: bool, force: bool = False
                         ) -> dict[str, Any] | None:
        """Kill ``instances``; with ``scale`` their apps shrink by as many (a deployment,
        whose id and version are returned) instead of replacing them."""
        by_app: dict[str, list[Instance]] = {}
        for inst in instances:
            by_app.setdefault(inst.app_id, []).append(inst)
        result = None
        if scale:
            await self._check_locks(list(by_app), force)
        for app_id, killed in by_app.items():
            for inst in killed:
                self.core.kill(inst)
            state = self.core.apps.get(app_id)
            if scale and state is not None:
                target = max(0, state.definition.instances - len(killed))
                result = await self._replace(state, dataclasses.replace(state.definition,
                                                                        instances=target))
            else:
                await self.core.converge(app_id)
        return result

    # -- groups ---------------------------------------------------------------------------
    async def put_group(self, group_id: str, body: dict[str, Any], force: bool,
                        create: bool) -> tuple[dict[str, Any], int]:
        """POST/PUT a group: its apps (and nested groups) become what ``body`` says."""
        if create and (group_id in self.core.groups or any(
                a.startswith(group_id.rstrip("/") + "/") for a in self.core.apps)):
            raise ApiError(409, f"Group {group_id} is already created. Use PUT to change "
                                "this group.")
        if "scaleBy" in body:
            return await self._scale_group(group_id, body["scaleBy"], force), 200
        wanted: dict[str, AppDefinition] = {}
        self._collect(group_id, body, wanted)
        existing = [a for a, s in self.core.apps.items()
                    if _under(a, group_id) and not s.deleting and s.definition.pod is None]
        removed = [a for a in existing if a not in wanted and not create]
        await self._check_locks([*wanted, *removed], force)
        version = self.new_version()
        levels = _levels(wanted, self.core.groups)
        steps: list[list[tuple[str, str]]] = []
        changed: list[AppDefinition] = []
        for level in levels:
            step: list[tuple[str, str]] = []
            for app_id in level:
                app = wanted[app_id]
                state = self.core.apps.get(app_id)
                if state is None or state.deleting:
                    self._stamp(app, version, config=True)
                    state = AppState(app, since=version)
                    self.core.apps[app_id] = state
                    step.append(("ScaleApplication", app_id))
                elif not (app.same_config(state.definition)
                          and app.instances == state.definition.instances):
                    scale_only = app.same_config(state.definition)
                    self._stamp(app, version, config=not scale_only,
                                previous=state.definition)
                    state.definition = app
                    step.append(("ScaleApplication" if scale_only else "RestartApplication",
                                 app_id))
                else:
                    continue
                await self._save(state)
                changed.append(app)
            steps.append(step)
        for app_id in removed:
            self.core.apps[app_id].deleting = True
            await self.core.store.delete(f"apps/{key_part(app_id)}")
        if removed:
            steps.append([("StopApplication", a) for a in removed])
        await self.core.store.put("groups", self.core.groups)
        dep = await self._deploy(steps, version, changed)
        self.core.bus.publish("group_change_success", groupId=group_id, version=version)
        return {"deploymentId": dep.id, "version": version}, 201 if create else 200

    def _collect(self, group_id: str, body: dict[str, Any], out: dict[str, AppDefinition]
                 ) -> None:
        if not isinstance(body, dict):
            raise ApiError(422, "Object is not valid", details=[
                {"path": "/", "errors": ["error.expected.jsobject"]}])
        deps = [d for d in body.get("dependencies") or [] if isinstance(d, str)]
        self.core.groups[group_id] = deps
        for item in body.get("apps") or []:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                item = {**item}
                item.pop("version", None)
            app = parse_app(item, base=group_id)
            if not _under(app.id, group_id):
                raise ApiError(422, "Object is not valid", details=[
                    {"path": "/apps", "errors": [f"{app.id} is not a child of {group_id}"]}])
            out[app.id] = app
        for sub in body.get("groups") or []:
            sub_id = sub.get("id") if isinstance(sub, dict) else None
            if not isinstance(sub_id, str):
                raise ApiError(422, "Object is not valid", details=[
                    {"path": "/groups", "errors": ["error.path.missing"]}])
            self._collect(normalize_path(sub_id, group_id), sub, out)

    async def _scale_group(self, group_id: str, factor: Any, force: bool) -> dict[str, Any]:
        if not isinstance(factor, (int, float)) or factor < 0:
            raise ApiError(422, "Object is not valid", details=[
                {"path": "/scaleBy", "errors": ["must be a non-negative number"]}])
        apps = [a for a, s in self.core.apps.items() if _under(a, group_id) and not s.deleting]
        await self._check_locks(apps, force)
        version = self.new_version()
        changed = []
        for app_id in apps:
            state = self.core.apps[app_id]
            app = dataclasses.replace(state.definition,
                                      instances=round(state.definition.instances * factor))
            self._stamp(app, version, config=False, previous=state.definition)
            state.definition = app
            await self._save(state)
            changed.append(app)
        dep = await self._deploy([[("ScaleApplication", a.id) for a in changed]], version,
                                 changed)
        return {"deploymentId": dep.id, "version": version}

    async def delete_group(self, group_id: str, force: bool) -> dict[str, Any]:
        apps = [a for a, s in self.core.apps.items() if _under(a, group_id) and not s.deleting]
        known = group_id == "/" or group_id in self.core.groups or apps
        if not known:
            raise ApiError(404, f"Group '{group_id}' does not exist")
        await self._check_locks(apps, force)
        for gid in [g for g in self.core.groups if _under(g, group_id) or g == group_id]:
            del self.core.groups[gid]
        await self.core.store.put("groups", self.core.groups)
        if not apps:
            return {"deploymentId": "", "version": self.new_version()}
        return await self._delete_apps(apps)

    # -- deployments ----------------------------------------------------------------------
    async def cancel_deployment(self, dep_id: str, force: bool) -> dict[str, Any] | None:
        """DELETE /v2/deployments/{id}: with ``force`` stop it where it is; otherwise a
        rollback deployment returns its apps to the versions before it."""
        dep = self.core.deployments.get(dep_id)
        if dep is None:
            raise ApiError(404, f"DeploymentPlan {dep_id} does not exist")
        await self.core.cancel(dep, "canceled" if force else "canceled (rolled back)")
        if force:
            return None
        rollback: list[tuple[str, str]] = []
        version = self.new_version()
        apps = []
        for app_id in dep.affected_apps:
            state = self.core.apps.get(app_id)
            if state is None:
                continue
            earlier = [v for v in state.versions if v < dep.version]
            if not earlier:
                state.deleting = True
                await self.core.store.delete(f"apps/{key_part(app_id)}")
                rollback.append(("StopApplication", app_id))
                continue
            old = await self.version_of(app_id, earlier[-1])
            if old is None:
                continue
            state.deleting = False
            previous = state.definition
            self._stamp(old, version, config=not old.same_config(previous), previous=previous)
            state.definition = old
            await self._save(state)
            apps.append(old)
            rollback.append(("RestartApplication", app_id))
        new = await self._deploy([rollback], version, apps)
        return {"deploymentId": new.id, "version": version}


def _under(path: str, group: str) -> bool:
    return group == "/" or path == group or path.startswith(group.rstrip("/") + "/")


def _levels(apps: dict[str, AppDefinition], groups: dict[str, list[str]]) -> list[list[str]]:
    """The apps in dependency order: each level depends only on earlier ones."""
    def deps(app_id: str) -> set[str]:
        out = set(apps[app_id].dependencies)
        for group, group_deps in groups.items():
            if _under(app_id, group) and group != "/":
                out.update(group_deps)
        found: set[str] = set()
        for dep in out:
            found.update(a for a in apps if _under(a, dep) and a != app_id)
        return found

    remaining = {a: deps(a) for a in apps}
    levels: list[list[str]] = []
    done: set[str] = set()
    while remaining:
        ready = sorted(a for a, d in remaining.items() if d <= done)
        if not ready:  # a cycle: start the rest together
            ready = sorted(remaining)
        levels.append(ready)
        done.update(ready)
        for a in ready:
            del remaining[a]
    return levels


def _next_ms(version: str) -> str:
    from datetime import datetime, timedelta

    moment = datetime.strptime(version, "%Y-%m-%dT%H:%M:%S.%fZ") + timedelta(milliseconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
