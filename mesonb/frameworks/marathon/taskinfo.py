"""The Mesos ``TaskInfo`` of an app instance: command, resources, ports, env, checks.

Marathon sets the environment itself (``PORT0``…, ``PORTS``, ``PORT``, ``PORT_<NAME>``,
``HOST``, ``MARATHON_APP_ID``, ``MESOS_TASK_ID``...), so tasks see their ports whatever
the agent does. Health checks of protocol ``MESOS_HTTP``, ``MESOS_HTTPS``, ``MESOS_TCP``
and ``COMMAND`` go to the agent as the task's Mesos ``HealthCheck`` (Mesos takes one);
``HTTP``, ``HTTPS`` and ``TCP`` checks run in the framework (:mod:`.health`).
"""

from __future__ import annotations

import re
from typing import Any

from .model import HEALTH_DEFAULTS, AppDefinition

MESOS_CHECKS = ("MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP", "COMMAND")


def environment(app: AppDefinition, task_id: str, host: str, ports: list[int]
                ) -> dict[str, str]:
    """The variables Marathon gives a task (its own first, the app's ``env`` on top)."""
    env: dict[str, str] = {
        "MARATHON_APP_ID": app.id,
        "MARATHON_APP_VERSION": app.version,
        "MARATHON_APP_RESOURCE_CPUS": f"{app.cpus:g}",
        "MARATHON_APP_RESOURCE_MEM": f"{app.mem:g}",
        "MARATHON_APP_RESOURCE_DISK": f"{app.disk:g}",
        "MARATHON_APP_RESOURCE_GPUS": str(app.gpus),
        "MARATHON_APP_LABELS": " ".join(k for k in app.labels if _ENV_NAME.fullmatch(k)),
        "MESOS_TASK_ID": task_id,
        "HOST": host,
    }
    for key, value in app.labels.items():
        if _ENV_NAME.fullmatch(key):
            env[f"MARATHON_APP_LABEL_{key.upper()}"] = value
    if ports:
        env["PORTS"] = ",".join(str(p) for p in ports)
        env["PORT"] = str(ports[0])
    for i, port in enumerate(ports):
        env[f"PORT{i}"] = str(port)
        definition = app.ports[i] if i < len(app.ports) else {}
        if definition.get("name"):
            env[f"PORT_{_env_name(definition['name'])}"] = str(port)
        if definition.get("port"):
            env[f"PORT_{definition['port']}"] = str(port)
    for key, value in app.env.items():
        if isinstance(value, str):
            env[key] = value
    return env


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name).upper()


def _scalar(name: str, value: float, role: str) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}, "role": role}


def mesos_health_check(app: AppDefinition, ports: list[int]) -> dict[str, Any] | None:
    """The first ``MESOS_*``/``COMMAND`` check as a Mesos ``HealthCheck`` (or None)."""
    for check in app.health_checks:
        check = {**HEALTH_DEFAULTS, **check}
        protocol = check.get("protocol", "HTTP")
        if protocol not in MESOS_CHECKS:
            continue
        out: dict[str, Any] = {
            "delay_seconds": float(check["delaySeconds"]),
            "interval_seconds": float(check["intervalSeconds"]),
            "timeout_seconds": float(check["timeoutSeconds"]),
            "consecutive_failures": int(check["maxConsecutiveFailures"]),
            "grace_period_seconds": float(check["gracePeriodSeconds"]),
        }
        port = check.get("port") or (ports[check.get("portIndex") or 0] if ports else 0)
        if protocol == "COMMAND":
            out["type"] = "COMMAND"
            out["command"] = {"shell": True, "value": check["command"]["value"]}
        elif protocol == "MESOS_TCP":
            out["type"] = "TCP"
            out["tcp"] = {"port": port}
        else:
            out["type"] = "HTTP"
            out["http"] = {"port": port, "path": check.get("path") or "/",
                           "scheme": "https" if protocol == "MESOS_HTTPS" else "http"}
        return out
    return None


def task_info(app: AppDefinition, task_id: str, agent_id: str, host: str,
              ports: list[int], role: str) -> dict[str, Any]:
    """The TaskInfo that launches one instance of ``app`` on an offer's agent."""
    command: dict[str, Any] = {}
    if app.args is not None:
        command.update(shell=False, value=app.args[0] if app.args else "",
                       arguments=list(app.args))
    else:
        command.update(shell=True, value=app.cmd or "")
    env = environment(app, task_id, host, ports)
    command["environment"] = {"variables": [{"name": k, "value": v} for k, v in env.items()]}
    uris = [{"value": u, "extract": True} for u in app.uris]
    for item in app.fetch:
        uri: dict[str, Any] = {"value": item["uri"],
                               "executable": bool(item.get("executable", False)),
                               "extract": bool(item.get("extract", True)),
                               "cache": bool(item.get("cache", False))}
        if item.get("destPath"):
            uri["output_file"] = item["destPath"]
        uris.append(uri)
    if uris:
        command["uris"] = uris
    if app.user:
        command["user"] = app.user
    resources = [_scalar("cpus", app.cpus, role), _scalar("mem", app.mem, role)]
    if app.disk:
        resources.append(_scalar("disk", app.disk, role))
    if app.gpus:
        resources.append(_scalar("gpus", float(app.gpus), role))
    if ports:
        resources.append({"name": "ports", "type": "RANGES", "role": role,
                          "ranges": {"range": [{"begin": p, "end": p} for p in ports]}})
    info: dict[str, Any] = {
        "name": app.id.rsplit("/", 1)[-1],
        "task_id": {"value": task_id},
        "agent_id": {"value": agent_id},
        "resources": resources,
        "command": command,
    }
    if app.labels:
        info["labels"] = {"labels": [{"key": k, "value": v} for k, v in app.labels.items()]}
    if app.task_kill_grace_period_seconds is not None:
        info["kill_policy"] = {"grace_period": {
            "nanoseconds": int(app.task_kill_grace_period_seconds * 1e9)}}
    check = mesos_health_check(app, ports)
    if check is not None:
        info["health_check"] = check
    if ports:
        info["discovery"] = {"visibility": "FRAMEWORK", "name": info["name"], "ports": {
            "ports": [{"number": p, "protocol": (app.ports[i].get("protocol") or "tcp")
                       if i < len(app.ports) else "tcp"} for i, p in enumerate(ports)]}}
    return info


def shared_executor_groups(tasks: list[dict[str, Any]], executor_id: str,
                           resources: dict[str, float], role: str) -> list[dict[str, Any]]:
    """``tasks`` as one-task groups in one default executor (``--shared-executor``)."""
    executor = {"executor_id": {"value": executor_id}, "type": "DEFAULT",
                "name": "marathon shared executor",
                "resources": [_scalar(k, v, role) for k, v in resources.items()]}
    return [{"type": "LAUNCH_GROUP", "launch_group": {
        "executor": executor, "task_group": {"tasks": [task]}}} for task in tasks]
