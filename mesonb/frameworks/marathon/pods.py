"""Marathon pods (``/v2/pods``): containers that run together, as one Mesos task group.

A pod instance is one ``LAUNCH_GROUP``: Mesos's default executor (its resources
Marathon's ``executorResources``, 0.1 cpus, 32 MB, 10 MB disk) with one task per
container (``exec.command.shell`` with the container's ``resources``); the task ids are
``<instance id>.<container name>``. Inside the framework a pod is an app whose
definition carries its spec (:attr:`~.model.AppDefinition.pod`): it scales, deploys,
persists, backs off and is placed like one (its demand is the containers' resources plus
the executor's), and one :class:`~.instances.Instance` stands for each pod instance,
whose state follows its containers' (:func:`aggregate`). The basic spec is supported:
``id``, ``containers`` (``name``, ``resources``, ``exec``, ``environment``, ``labels``),
``scaling`` (fixed), ``environment``, ``labels``, ``executorResources``, ``user``.
"""

from __future__ import annotations

from typing import Any

from .instance_fsm import InstanceState
from .model import AppDefinition, InvalidJSON, InvalidObject, normalize_path, path_problems

EXECUTOR_RESOURCES = {"cpus": 0.1, "mem": 32.0, "disk": 10.0}
CONTAINER_KEYS = ("name", "resources", "exec", "environment", "labels")
POD_KEYS = ("id", "containers", "scaling", "environment", "labels", "executorResources",
            "user", "networks", "version")


def parse_pod(body: Any, pod_id: str | None = None) -> AppDefinition:
    """A pod spec as the app that runs it; :class:`~.model.InvalidJSON` (400) or
    :class:`~.model.InvalidObject` (422) with Marathon's paths when it is not valid."""
    if not isinstance(body, dict):
        raise InvalidJSON([{"path": "/", "errors": ["error.expected.jsobject"]}])
    problems: list[dict[str, Any]] = []

    def bad(path: str, error: str) -> None:
        problems.append({"path": path, "errors": [error]})

    raw_id = pod_id if pod_id is not None else body.get("id")
    if not isinstance(raw_id, str) or not raw_id.strip("/"):
        bad("/id", "error.path.missing")
        raw_id = "/"
    pid = normalize_path(raw_id)
    for problem in path_problems(pid) if pid != "/" else []:
        bad("/id", problem)
    for key in sorted(set(body) - set(POD_KEYS)):
        bad(f"/{key}", "error.path.unknown")
    containers = body.get("containers")
    if not isinstance(containers, list) or not containers:
        bad("/containers", "must hold at least one container")
        containers = []
    names: list[str] = []
    cpus = mem = disk = 0.0
    spec_containers = []
    for i, container in enumerate(containers):
        where = f"/containers({i})"
        if not isinstance(container, dict):
            bad(where, "error.expected.jsobject")
            continue
        for key in sorted(set(container) - set(CONTAINER_KEYS)):
            bad(f"{where}/{key}", "error.path.unknown")
        name = container.get("name")
        if not isinstance(name, str) or path_problems("/" + name) or "/" in name:
            bad(f"{where}/name", "must be a lowercase name (letters, digits, '-')")
        elif name in names:
            bad(f"{where}/name", "container names must be unique")
        else:
            names.append(name)
        resources = container.get("resources")
        if not isinstance(resources, dict):
            bad(f"{where}/resources", "error.path.missing")
            resources = {}
        values = {"cpus": resources.get("cpus", 0), "mem": resources.get("mem", 0),
                  "disk": resources.get("disk", 0)}
        for key, value in values.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                bad(f"{where}/resources/{key}", "got an invalid value, expected 0 or more")
                values[key] = 0
        if values["cpus"] < 0.001:
            bad(f"{where}/resources/cpus", f"got {values['cpus']}, expected 0.001 or more")
        cpus, mem, disk = cpus + values["cpus"], mem + values["mem"], disk + values["disk"]
        shell = ((container.get("exec") or {}).get("command") or {}).get("shell") \
            if isinstance(container.get("exec"), dict) else None
        if not isinstance(shell, str) or not shell:
            bad(f"{where}/exec/command/shell", "a container needs a command to run")
        env = container.get("environment") or {}
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            bad(f"{where}/environment", "must map names to strings")
        spec_containers.append({"name": name, "resources": {**values},
                                "exec": {"command": {"shell": shell}},
                                "environment": env if isinstance(env, dict) else {},
                                "labels": container.get("labels") or {}})
    scaling = body.get("scaling") or {"kind": "fixed", "instances": 1}
    instances = scaling.get("instances", 1) if isinstance(scaling, dict) else None
    if not isinstance(scaling, dict) or scaling.get("kind", "fixed") != "fixed" or \
            not isinstance(instances, int) or isinstance(instances, bool) or instances < 0:
        bad("/scaling", "only {\"kind\": \"fixed\", \"instances\": n >= 0} is supported")
        instances = 0
    executor = {**EXECUTOR_RESOURCES, **(body.get("executorResources") or {})}
    for key in ("environment", "labels"):
        value = body.get(key) or {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            bad(f"/{key}", "must map names to strings")
    if problems:
        raise InvalidObject(problems)
    spec: dict[str, Any] = {"id": pid, "containers": spec_containers,
            "scaling": {"kind": "fixed", "instances": instances},
            "environment": body.get("environment") or {}, "labels": body.get("labels") or {},
            "executorResources": executor, "networks": [{"mode": "host"}]}
    if isinstance(body.get("user"), str):
        spec["user"] = body["user"]
    return AppDefinition(
        id=pid, cmd="", instances=int(instances), cpus=cpus + float(executor["cpus"]),
        mem=mem + float(executor["mem"]), disk=disk + float(executor["disk"]),
        port_definitions=[], labels=dict(spec["labels"]), user=spec.get("user"), pod=spec)


def pod_json(app: AppDefinition) -> dict[str, Any]:
    """The pod's spec as Marathon writes it (with its version)."""
    assert app.pod is not None
    out = {**app.pod, "scaling": {"kind": "fixed", "instances": app.instances}}
    if app.version:
        out["version"] = app.version
    return out


def task_id(instance_id: str, container: str) -> str:
    return f"{instance_id}.{container}"


def container_names(app: AppDefinition) -> list[str]:
    return [c["name"] for c in (app.pod or {}).get("containers", [])]


def split_task_id(value: str) -> tuple[str, str]:
    """``<instance id>.<container>`` -> (instance id, container name)."""
    instance_id, _dot, container = value.rpartition(".")
    return instance_id, container


def launch_group(app: AppDefinition, instance_id: str, agent_id: str, host: str, role: str,
                 environment: dict[str, str]) -> dict[str, Any]:
    """The LAUNCH_GROUP operation of one pod instance (default executor + one task per
    container); ``environment`` is what Marathon gives every task (app id, host...)."""
    assert app.pod is not None

    def scalars(values: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"name": k, "type": "SCALAR", "scalar": {"value": float(v)}, "role": role}
                for k, v in values.items() if v]

    tasks = []
    for container in app.pod["containers"]:
        env = {**environment, **app.pod.get("environment", {}),
               **container.get("environment", {}), "MESOS_TASK_ID":
               task_id(instance_id, container["name"])}
        command: dict[str, Any] = {"shell": True,
                                   "value": container["exec"]["command"]["shell"],
                                   "environment": {"variables": [
                                       {"name": k, "value": v} for k, v in env.items()]}}
        if app.user:
            command["user"] = app.user
        tasks.append({"name": container["name"],
                      "task_id": {"value": task_id(instance_id, container["name"])},
                      "agent_id": {"value": agent_id},
                      "resources": scalars(container["resources"]), "command": command})
    executor = {"executor_id": {"value": f"instance-{instance_id}"}, "type": "DEFAULT",
                "name": f"pod {app.id}", "resources": scalars(app.pod["executorResources"])}
    del host
    return {"type": "LAUNCH_GROUP",
            "launch_group": {"executor": executor, "task_group": {"tasks": tasks}}}


_FAILURES = (InstanceState.FAILED, InstanceState.ERROR, InstanceState.LOST,
             InstanceState.DROPPED, InstanceState.GONE, InstanceState.GONE_BY_OPERATOR,
             InstanceState.UNKNOWN)


def aggregate(containers: dict[str, str], names: list[str]) -> InstanceState | None:
    """A pod instance's state from its containers' (None: nothing to report yet).

    Failed as soon as one container failed; else terminal once every container is
    (killed, else finished); killing while one has ended and the others are taken down;
    running once all run; unreachable or killing if one is; else staging/starting."""
    states = [InstanceState(containers[n]) for n in names if n in containers]
    if not states:
        return None
    failed = [s for s in states if s in _FAILURES]
    if failed:  # the instance failed (the executor takes the other containers down)
        return failed[0]
    if len(states) == len(names) and all(s.terminal for s in states):
        return InstanceState.KILLED if InstanceState.KILLED in states else states[0]
    if any(s.terminal for s in states):  # one ended: the executor takes the others down
        return InstanceState.KILLING
    for state in (InstanceState.UNREACHABLE, InstanceState.KILLING):
        if state in states:
            return state
    if len(states) == len(names) and all(s is InstanceState.RUNNING for s in states):
        return InstanceState.RUNNING
    if any(s is InstanceState.STARTING or s is InstanceState.RUNNING for s in states):
        return InstanceState.STARTING
    return InstanceState.STAGING


def container_update(instances: dict[str, Any], apps: dict[str, Any], value: str,
                     reported: InstanceState) -> tuple[Any, InstanceState | None] | None:
    """An update of a pod's container task: ``(its instance, the instance's new state or
    None when that did not change)``; None when ``value`` is no pod's task."""
    instance_id, container = split_task_id(value)
    inst = instances.get(instance_id)
    state = apps.get(inst.app_id) if inst is not None else None
    if inst is None or state is None or state.definition.pod is None:
        return None
    inst.containers[container] = reported.value
    combined = aggregate(inst.containers, container_names(state.definition))
    return inst, (None if combined is None or combined is inst.state else combined)


_STATUS = {InstanceState.RUNNING: "STABLE", InstanceState.STAGING: "STAGING",
           InstanceState.STARTING: "STAGING", InstanceState.KILLING: "TERMINAL",
           InstanceState.UNREACHABLE: "DEGRADED"}
_CONTAINER_STATUS = {"TASK_STAGING": "PENDING", "TASK_STARTING": "STAGING",
                     "TASK_RUNNING": "RUNNING", "TASK_KILLING": "TERMINAL"}


def instance_status(app: AppDefinition, inst: Any) -> dict[str, Any]:
    """One instance of a pod's ``::status`` (Marathon's PodInstanceStatus)."""
    containers = []
    for name in container_names(app):
        state = inst.containers.get(name, "TASK_STAGING")
        spec = next(c for c in (app.pod or {})["containers"] if c["name"] == name)
        containers.append({"name": name, "status": _CONTAINER_STATUS.get(state, "TERMINAL"),
                           "statusSince": inst.staged_at, "containerId":
                           task_id(inst.id, name), "endpoints": [],
                           "resources": spec["resources"], "lastUpdated": inst.staged_at,
                           "lastChanged": inst.staged_at})
    return {"id": inst.id, "status": _STATUS.get(inst.state, "TERMINAL"),
            "statusSince": inst.started_at or inst.staged_at, "agentHostname": inst.host,
            "agentId": inst.agent_id, "resources": {"cpus": app.cpus, "mem": app.mem,
                                                    "disk": app.disk, "gpus": 0},
            "networks": [], "containers": containers,
            "specReference": f"/v2/pods{app.id}::versions/{inst.version}",
            "lastUpdated": inst.staged_at, "lastChanged": inst.started_at or inst.staged_at}


def pod_status(app: AppDefinition, instances: list[Any], deploying: bool,
               since: str) -> dict[str, Any]:
    """A pod's ``::status``: STABLE when all its instances run, DEPLOYING while a
    deployment holds it, DEGRADED otherwise (TERMINAL when scaled to zero)."""
    running = sum(i.state is InstanceState.RUNNING for i in instances)
    if deploying:
        status = "DEPLOYING"
    elif app.instances == 0 and not instances:
        status = "TERMINAL"
    elif running >= app.instances:
        status = "STABLE"
    else:
        status = "DEGRADED"
    return {"id": app.id, "spec": pod_json(app), "status": status, "statusSince": since,
            "instances": [instance_status(app, i) for i in instances],
            "terminationHistory": [], "lastUpdated": since, "lastChanged": since}
