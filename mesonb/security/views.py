"""What a caller may see: the ``view_*`` ACLs applied to state answers, as Mesos does.

Mesos filters what a principal may not view out of its answers instead of refusing them
(src/master/http.cpp, ``ObjectApprovers``): ``/master/state``, ``/master/frameworks``,
``/master/tasks``, ``/master/roles``, the operator's GET_STATE, GET_TASKS,
GET_FRAMEWORKS, GET_EXECUTORS, GET_ROLES and its event stream, and the agent's
``/state``. A framework is shown when ``view_frameworks`` allows its user; a task when
its framework is shown and ``view_tasks`` allows the task's user (its command's, else its
framework's); an executor when its framework is shown and ``view_executors`` allows its
user; a role when ``view_roles`` allows it.

:class:`Viewer` works on the answers' JSON, after they are built, so the shapes are
untouched for whoever may see everything; with no ``view_*`` rule and ``permissive``
ACLs it is inactive and costs nothing. The cluster's operator (the shared ``--secret``)
sees everything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .acls import Acls, Action

VIEW_ACTIONS = (Action.VIEW_FRAMEWORK, Action.VIEW_TASK, Action.VIEW_EXECUTOR,
                Action.VIEW_ROLE)
TASK_LISTS = ("tasks", "completed_tasks", "unreachable_tasks", "queued_tasks",
              "launched_tasks", "orphan_tasks")
Json = dict[str, Any]


def restricts_views(acls: Acls) -> bool:
    """Whether any ``view_*`` rule (or ``permissive: false``) can hide something."""
    return not acls.permissive or any(acls.rules.get(a) for a in VIEW_ACTIONS)


class Viewer:
    """The view ACLs for one caller. ``user_of(framework_id)`` gives a framework's user
    for answers that name only its id (tasks, executors, events)."""

    def __init__(self, acls: Acls, principal: str | None, *, everything: bool = False,
                 user_of: Callable[[str], str | None] = lambda _id: None) -> None:
        self.acls = acls
        self.principal = principal
        self.active = not everything and restricts_views(acls)
        self.user_of = user_of
        self._memo: dict[tuple[Action, str], bool] = {}

    def allows(self, action: Action, obj: str) -> bool:
        if not self.active:
            return True
        key = (action, obj)
        allowed = self._memo.get(key)
        if allowed is None:
            allowed = self._memo[key] = self.acls.allowed(action, self.principal, obj)
        return allowed

    def sees_everything(self) -> bool:
        """Whether every framework, task, executor and role is shown (the ANY objects)."""
        if not self.active:
            return True
        return all(self.acls.allowed(a, self.principal, None) for a in VIEW_ACTIONS)

    # -- one object -------------------------------------------------------------------
    def framework(self, user: str | None) -> bool:
        return self.allows(Action.VIEW_FRAMEWORK, user or "")

    def task(self, task: Json, framework_user: str | None) -> bool:
        user = task.get("user") or framework_user or ""
        return self.allows(Action.VIEW_TASK, str(user))

    def executor(self, executor: Json, framework_user: str | None) -> bool:
        command = executor.get("command")
        user = (command.get("user") if isinstance(command, dict) else None) or \
            executor.get("user") or framework_user or ""
        return self.allows(Action.VIEW_EXECUTOR, str(user))

    def role(self, name: str) -> bool:
        return self.allows(Action.VIEW_ROLE, name)

    def framework_id_visible(self, framework_id: str) -> str | None:
        """The user of a framework the caller may see, else None (``""`` for no user)."""
        user = self.user_of(framework_id) or ""
        return user if self.framework(user) else None

    # -- the v0 (legacy) answers ------------------------------------------------------
    def _v0_framework(self, framework: Json) -> Json | None:
        user = framework.get("user")
        if not self.framework(user):
            return None
        out = dict(framework)
        for key in TASK_LISTS:
            if isinstance(out.get(key), list):
                out[key] = [t for t in out[key] if self.task(t, user)]
        for key in ("executors", "completed_executors"):
            if isinstance(out.get(key), list):
                out[key] = [self._v0_executor(e, user) for e in out[key]
                            if self.executor(e, user)]
        return out

    def _v0_executor(self, executor: Json, user: str | None) -> Json:
        out = dict(executor)
        for key in TASK_LISTS:
            if isinstance(out.get(key), list):
                out[key] = [t for t in out[key] if self.task(t, user)]
        return out

    def v0_frameworks(self, answer: Json) -> Json:
        """``/master/frameworks``, the agent's ``/state`` and ``/master/state``: each
        framework list filtered, and the tasks and executors in each."""
        if not self.active:
            return answer
        out = dict(answer)
        for key in ("frameworks", "completed_frameworks", "unregistered_frameworks"):
            if isinstance(out.get(key), list):
                kept = (self._v0_framework(f) if isinstance(f, dict) else None
                        for f in out[key])
                out[key] = [f for f in kept if f is not None]
        if isinstance(out.get("orphan_tasks"), list):
            out["orphan_tasks"] = self.v0_tasks({"tasks": out["orphan_tasks"]})["tasks"]
        return out

    def v0_tasks(self, answer: Json) -> Json:
        """``/master/tasks``: tasks of frameworks the caller may see, that it may see."""
        if not self.active:
            return answer
        kept = []
        for task in answer.get("tasks", []):
            user = self.framework_id_visible(str(task.get("framework_id", "")))
            if user is not None and self.task(task, user):
                kept.append(task)
        return {**answer, "tasks": kept}

    def roles(self, answer: Json) -> Json:
        """``/master/roles`` and GET_ROLES: roles the caller may see."""
        if not self.active or not isinstance(answer.get("roles"), list):
            return answer
        return {**answer, "roles": [r for r in answer["roles"]
                                    if self.role(str(r.get("name", "")))]}

    # -- the v1 (operator) answers ----------------------------------------------------
    def get_tasks(self, answer: Json) -> Json:
        if not self.active:
            return answer
        out = dict(answer)
        for key in TASK_LISTS:
            if isinstance(out.get(key), list):
                out[key] = [t for t in out[key] if self._v1_task(t)]
        return out

    def _v1_task(self, task: Json) -> bool:
        user = self.framework_id_visible(_value(task.get("framework_id")))
        return user is not None and self.task(task, user)

    def get_frameworks(self, answer: Json) -> Json:
        if not self.active:
            return answer
        out = dict(answer)
        for key in ("frameworks", "completed_frameworks"):
            if isinstance(out.get(key), list):
                out[key] = [f for f in out[key]
                            if self.framework((f.get("framework_info") or {}).get("user"))]
        return out

    def get_executors(self, answer: Json) -> Json:
        if not self.active:
            return answer
        kept = []
        for item in answer.get("executors", []):
            info = item.get("executor_info") or {}
            user = self.framework_id_visible(_value(info.get("framework_id")))
            if user is not None and self.executor(info, user):
                kept.append(item)
        return {**answer, "executors": kept}

    def get_state(self, answer: Json) -> Json:
        if not self.active:
            return answer
        out = dict(answer)
        for key, fn in (("get_tasks", self.get_tasks), ("get_frameworks", self.get_frameworks),
                        ("get_executors", self.get_executors)):
            if isinstance(out.get(key), dict):
                out[key] = fn(out[key])
        return out

    def operator_answer(self, call: str, body: Json) -> Json:
        """A synchronous operator call's answer body, filtered."""
        fn = {"GET_STATE": self.get_state, "GET_TASKS": self.get_tasks,
              "GET_FRAMEWORKS": self.get_frameworks, "GET_EXECUTORS": self.get_executors,
              "GET_ROLES": self.roles}.get(call)
        return fn(body) if fn is not None and self.active else body

    def event(self, event: Json) -> bool:
        """Whether an operator event (master.proto ``Event``) may be sent to the caller."""
        if not self.active:
            return True
        kind = str(event.get("type", ""))
        body = event.get(kind.lower())
        if not isinstance(body, dict):
            return True
        if kind == "TASK_ADDED":
            return self._v1_task(body.get("task") or {})
        if kind == "TASK_UPDATED":
            user = self.framework_id_visible(_value(body.get("framework_id")))
            status = body.get("status") or {}
            task = {"user": status.get("user")} if isinstance(status, dict) else {}
            return user is not None and self.task(task, user)
        if kind in ("FRAMEWORK_ADDED", "FRAMEWORK_UPDATED"):
            info = (body.get("framework") or {}).get("framework_info") or {}
            return self.framework(info.get("user"))
        if kind == "FRAMEWORK_REMOVED":
            return self.framework((body.get("framework_info") or {}).get("user"))
        return True


def _value(field: Any) -> str:
    """``{"value": "x"}`` (or a bare string) -> ``"x"``."""
    if isinstance(field, dict):
        return str(field.get("value", ""))
    return str(field or "")
