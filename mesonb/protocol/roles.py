"""Mesos's role names: the one place that says which role names are valid.

Mesos's ``roles::validate`` (src/common/roles.cpp): ``*`` (the default role) or a
path of ``/``-separated components, none of them empty, ``.``, ``..`` or ``*``, none
starting with ``-``, and none holding whitespace, a slash, DEL or other unprintable
characters. Both the scheduler API (SUBSCRIBE, UPDATE_FRAMEWORK) and the operator API
(UPDATE_WEIGHTS) check roles with it.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import BadRequest

DEFAULT_ROLE = "*"
_BAD_CHARS = frozenset("\b\t\n\v\f\r \x7f/")


def validate_role(role: str) -> str | None:
    """The problem with ``role`` as Mesos words it, or None when the role is valid.

    >>> validate_role("eng/analytics") is None
    True
    >>> validate_role("a//b")
    "Role 'a//b' cannot start or end with a slash or contain '//'"
    """
    if role == DEFAULT_ROLE:
        return None
    if not role:
        return "Role names cannot be the empty string"
    if role.startswith("/") or role.endswith("/") or "//" in role:
        return f"Role '{role}' cannot start or end with a slash or contain '//'"
    for part in role.split("/"):
        if part in (".", "..", "*"):
            return f"Role '{role}' cannot include '{part}' as a component"
        if part.startswith("-"):
            return f"Role component '{part}' is invalid because it starts with a dash"
        if any(c in _BAD_CHARS or not c.isprintable() for c in part):
            return f"Role component '{part}' is invalid because it contains backspace or whitespace"
    return None


def check_roles(roles: Iterable[str]) -> None:
    """Raise :class:`BadRequest` (400) naming the first invalid role and why."""
    for role in roles:
        problem = validate_role(role)
        if problem is not None:
            raise BadRequest(f"Invalid role '{role}': {problem}")
