"""Long-running apps from Python: ``cluster.apps`` runs the Marathon framework in the
client's loop and drives it directly (its REST API is served too, at ``apps.url``).

::

    apps = cluster.apps
    d = apps.deploy({"id": "/web", "cmd": "python3 -m http.server $PORT0",
                     "instances": 2, "cpus": 0.1, "mem": 64})
    d.wait()                        # or d.progress() for a live widget in Jupyter
    apps.scale("/web", 5).wait()
    apps.restart("/web").wait()
    apps.list()                     # a pandas DataFrame, one row per app
    apps.destroy("/web").wait()

Apps are specified as Marathon's JSON: a dict, a JSON string, or the path of a JSON
file. Bad specs raise :class:`AppError` with Marathon's message and details.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from .events import Subscription
from .model import InvalidJSON, InvalidObject, normalize_path
from .operations import ApiError
from .service import Marathon

Runner = Callable[[Coroutine[Any, Any, Any], float], Any]
APP_COLUMNS = ["id", "instances", "running", "staged", "healthy", "unhealthy", "cpus", "mem",
               "cmd", "version", "deployments"]
TASK_COLUMNS = ["id", "app", "state", "host", "ports", "staged_at", "started_at", "version"]


class AppError(Exception):
    """A change the framework refused; ``status`` and ``details`` are Marathon's."""

    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(f"{message}: {details}" if details else message)
        self.status = status
        self.details = details


class Deployment:
    """One deployment of :class:`Apps`: ``wait()``, ``status``, ``progress()``."""

    def __init__(self, apps: Apps, deployment_id: str, app_ids: list[str], version: str) -> None:
        self.apps = apps
        self.id = deployment_id
        self.app_ids = app_ids
        self.version = version

    @property
    def status(self) -> str:
        """``running``, ``succeeded`` or ``failed`` (with :attr:`reason`)."""
        outcome = self.apps._outcomes.get(self.id)
        if outcome is not None:
            return outcome[0]
        return "running" if self.id in self.apps.service.core.deployments else "succeeded"

    @property
    def reason(self) -> str:
        return (self.apps._outcomes.get(self.id) or ("", ""))[1]

    def counts(self) -> tuple[int, int]:
        """``(instances running and healthy with the new config, instances wanted)``."""
        return self.apps._run(self.apps._counts(self.app_ids), 10)

    def wait(self, timeout: float = 120.0) -> Deployment:
        """Block until the deployment ends; raise AppError if it failed, TimeoutError."""
        deadline = time.monotonic() + timeout
        while self.status == "running":
            if time.monotonic() > deadline:
                raise TimeoutError(f"deployment {self.id} still running after {timeout:g}s")
            time.sleep(0.05)
        if self.status == "failed":
            raise AppError(409, f"deployment {self.id} failed", self.reason)
        return self

    def progress(self) -> Any:
        """A live progress bar (ipywidgets in Jupyter, text elsewhere)."""
        from .progress import DeploymentProgress

        return DeploymentProgress(self).show()

    def __repr__(self) -> str:
        done, wanted = self.counts()
        return f"<Deployment {self.id} {self.status} {done}/{wanted} {', '.join(self.app_ids)}>"


class Apps:
    """The Marathon framework of a cluster (see the module docstring)."""

    def __init__(self, master: str, run: Runner, *, secret: str | None = None,
                 port: int = 0) -> None:
        self._run = run
        self.service = Marathon(master, port=port, master_secret=secret, in_memory=True,
                                name="mesonb-apps")
        self._outcomes: dict[str, tuple[str, str]] = {}
        self._sub: Subscription | None = None
        self._run(self._start(), 60)

    async def _start(self) -> None:
        await self.service.start()
        self._sub = self.service.core.bus.subscribe(["deployment_success",
                                                     "deployment_failed"])
        self.service.core.on_change = self._collect

    def _collect(self) -> None:
        sub = self._sub
        while sub is not None and not sub.queue.empty():
            event = sub.queue.get_nowait()
            outcome = "succeeded" if event["eventType"] == "deployment_success" else "failed"
            self._outcomes[event["id"]] = (outcome, event.get("reason", ""))

    async def close(self) -> None:
        """Stop the framework; its tasks are killed (the framework is torn down)."""
        await self.service.stop(teardown=True)

    @property
    def url(self) -> str:
        """The Marathon REST API of this framework (marathon-python works against it)."""
        return self.service.url

    # -- changes --------------------------------------------------------------------------
    def deploy(self, spec: dict[str, Any] | str | Path, *, force: bool = False) -> Deployment:
        """Create the app (or update it when it exists) from Marathon's JSON."""
        body = _load(spec)
        if not isinstance(body, dict):
            raise AppError(400, "an app spec is a JSON object")
        app_id = normalize_path(str(body.get("id", "")))
        result = self._call(self.service.ops.update_app(app_id, body, force))[0]
        return Deployment(self, result["deploymentId"], [app_id], result["version"])

    def scale(self, app_id: str, instances: int, *, force: bool = True) -> Deployment:
        app_id = normalize_path(app_id)
        result = self._call(self.service.ops.scale_to(app_id, instances, force))
        return Deployment(self, result["deploymentId"], [app_id], result["version"])

    def restart(self, app_id: str, *, force: bool = False) -> Deployment:
        app_id = normalize_path(app_id)
        result = self._call(self.service.ops.restart_app(app_id, force))
        return Deployment(self, result["deploymentId"], [app_id], result["version"])

    def destroy(self, app_id: str, *, force: bool = True) -> Deployment:
        app_id = normalize_path(app_id)
        result = self._call(self.service.ops.delete_app(app_id, force))
        return Deployment(self, result["deploymentId"], [app_id], result["version"])

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            return self._run(self._settle_after(coro), 30)
        except (InvalidJSON, InvalidObject) as exc:
            raise AppError(400 if isinstance(exc, InvalidJSON) else 422,
                           str(exc), exc.details) from None
        except ApiError as exc:
            raise AppError(exc.status, exc.body["message"],
                           exc.body.get("details") or exc.body.get("deployments")) from None

    async def _settle_after(self, coro: Coroutine[Any, Any, Any]) -> Any:
        result = await coro
        self._collect()
        return result

    # -- what runs ------------------------------------------------------------------------
    def get(self, app_id: str) -> dict[str, Any]:
        """Marathon's JSON of the app, with its tasks."""
        from .views import app_json

        async def read() -> dict[str, Any]:
            state = self.service.core.apps.get(normalize_path(app_id))
            if state is None or state.deleting:
                raise AppError(404, f"App '{normalize_path(app_id)}' does not exist")
            return app_json(self.service.core, state, {"tasks", "lastTaskFailure"})

        return self._run(read(), 10)

    def list(self) -> Any:
        """A DataFrame of the apps: instances wanted, running, staged, healthy..."""
        import pandas as pd

        from .views import app_json, visible_apps

        async def rows() -> list[dict[str, Any]]:
            core = self.service.core
            out = []
            for state in visible_apps(core):
                app = app_json(core, state, set())
                out.append({"id": app["id"], "instances": app["instances"],
                            "running": app["tasksRunning"], "staged": app["tasksStaged"],
                            "healthy": app["tasksHealthy"], "unhealthy": app["tasksUnhealthy"],
                            "cpus": app["cpus"], "mem": app["mem"], "cmd": app.get("cmd"),
                            "version": pd.Timestamp(app["version"]),
                            "deployments": len(app["deployments"])})
            return out

        return pd.DataFrame(self._run(rows(), 10), columns=APP_COLUMNS)

    def tasks(self, app_id: str | None = None) -> Any:
        """A DataFrame of the apps' tasks (one app's with ``app_id``)."""
        import pandas as pd

        async def rows() -> builtins.list[dict[str, Any]]:
            wanted = normalize_path(app_id) if app_id else None
            return [{"id": i.id, "app": i.app_id, "state": i.state.value, "host": i.host,
                     "ports": list(i.ports), "staged_at": i.staged_at,
                     "started_at": i.started_at, "version": i.version}
                    for i in self.service.core.instances.values()
                    if wanted is None or i.app_id == wanted]

        return pd.DataFrame(self._run(rows(), 10), columns=TASK_COLUMNS)

    async def _counts(self, app_ids: builtins.list[str]) -> tuple[int, int]:
        from . import controller

        core = self.service.core
        done = wanted = 0
        for app_id in app_ids:
            state = core.apps.get(app_id)
            if state is None:
                continue
            app = state.definition
            config = app.last_config_change_at or app.version
            wanted += 0 if state.deleting else app.instances
            done += sum(1 for i in core.app_instances(app_id)
                        if i.config_version == config and controller.counts_healthy(app, i))
        return done, wanted

    def __repr__(self) -> str:
        return f"<mesonb apps at {self.url}>"


def _load(spec: dict[str, Any] | str | Path) -> Any:
    if isinstance(spec, dict):
        return spec
    text = str(spec)
    if isinstance(spec, Path) or not text.lstrip().startswith(("{", "[")):
        text = Path(text).read_text()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise AppError(400, f"Invalid JSON: {exc}") from None
