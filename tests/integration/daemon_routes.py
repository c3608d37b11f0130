"""Routes of the daemons, from their own routers, and one sample path for each."""

from __future__ import annotations

import re
import re._parser as sre_parse  # type: ignore[import-not-found]
from typing import Any


def sample_path(pattern: str) -> str:
    """One path the route's regex matches (optional parts left out, the first branch of
    an alternation, one character of a class, a repeat its minimum number of times)."""
    def walk(items: Any) -> str:
        out = []
        for op, arg in items:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(arg))
            elif name == "SUBPATTERN":
                out.append(walk(arg[-1]))
            elif name == "BRANCH":
                out.append(walk(arg[1][0]))
            elif name in ("MAX_REPEAT", "MIN_REPEAT"):
                low, _, body = arg
                if low == 0:
                    continue  # an optional part: leave it out
                out.append(walk(body) * low)
            elif name == "IN":
                out.append(_one_of(arg))
            elif name == "NOT_LITERAL":
                out.append("x" if chr(arg) != "x" else "y")
            elif name in ("AT", "ASSERT_NOT", "ASSERT"):
                continue
            elif name == "ANY":
                out.append("x")
            else:
                raise AssertionError(f"cannot sample {name} in {pattern}")
        return "".join(out)
    path = walk(sre_parse.parse(pattern))
    assert re.fullmatch(pattern.rstrip("$"), path), (pattern, path)
    return path


def _one_of(items: Any) -> str:
    negate = any(str(op) == "NEGATE" for op, _ in items)
    if negate:
        return "x"
    op, arg = items[0]
    if str(op) == "LITERAL":
        return chr(arg)
    if str(op) == "RANGE":
        return chr(arg[0])
    return "x"


def routes(cluster: Any) -> list[tuple[str, str, bool, type]]:
    """(daemon, sample path, public, handler) for every route of the master and the agents
    of a running local cluster, read from their own routers."""
    local = cluster.local
    apps = [("master", local.master.app)] + [("agent", agent.app) for agent in local.agents]
    out = []
    for daemon, app in apps:
        for rule in app.wildcard_router.rules:
            out.append((daemon, sample_path(rule.matcher.regex.pattern),
                        bool(getattr(rule.target, "public", False)), rule.target))
    return out
