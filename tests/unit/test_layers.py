"""The layer rules of shared/STYLE.md, read off the source with ast.

Every module under mesonb/ is parsed; every import of mesonb counts, wherever it stands
(module level, inside a function, under ``if TYPE_CHECKING:``). The test fails on

- an import that breaks a layer rule: protocol imports nothing of mesonb; allocator imports
  only protocol; master and agent never import each other, frameworks, client or widgets;
  frameworks never import master or agent; widgets import only client;
- an import cycle between modules (a package's ``__init__`` is a module like any other;
  importing ``a.b.c`` is not counted as importing ``a`` and ``a.b``);
- a module over 600 lines.

Each failure names the file, the line and the rule broken.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "mesonb"
MAX_LINES = 600

# ---------------------------------------------------------------------------------------------
# Known violations: none. A violation that must wait gets an entry here naming the issue that
# owns it; an entry no longer needed makes the test fail too
# (test_the_allow_lists_hold_only_live_violations), so the lists cannot rot.
# ---------------------------------------------------------------------------------------------

# Modules allowed past MAX_LINES for now: module -> owner.
KNOWN_LONG_MODULES: dict[str, str] = {}

# Import edges allowed to close a cycle for now: (importer, imported) -> owner.
KNOWN_CYCLE_EDGES: dict[tuple[str, str], str] = {}

# Imports across layers allowed for now: (importer, imported) -> owner.
KNOWN_LAYER_IMPORTS: dict[tuple[str, str], str] = {}

# Layer rules: layer -> (allowed layers or None, forbidden layers, the rule in words).
# A module's layer is its first name under mesonb (mesonb.master.http.state -> "master",
# mesonb.discovery -> "discovery", mesonb itself -> "mesonb").
RULES: dict[str, tuple[frozenset[str] | None, frozenset[str], str]] = {
    "protocol": (frozenset({"protocol"}), frozenset(), "protocol imports nothing of mesonb"),
    "allocator": (
        frozenset({"allocator", "protocol"}),
        frozenset(),
        "allocator imports only protocol",
    ),
    "master": (
        None,
        frozenset({"agent", "frameworks", "client", "widgets"}),
        "master never imports agent, frameworks, client or widgets",
    ),
    "agent": (
        None,
        frozenset({"master", "frameworks", "client", "widgets"}),
        "agent never imports master, frameworks, client or widgets",
    ),
    "frameworks": (None, frozenset({"master", "agent"}), "frameworks never import master or agent"),
    "widgets": (frozenset({"widgets", "client"}), frozenset(), "widgets import only client"),
}


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool

    @property
    def rel(self) -> str:
        try:
            return str(self.path.relative_to(ROOT))
        except ValueError:  # a made-up tree in the checker's own tests
            return str(self.path)


@dataclass(frozen=True)
class Import:
    importer: Module
    target: str  # a module of mesonb
    line: int


def find_modules() -> dict[str, Module]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        name = ".".join(parts)
        modules[name] = Module(name, path, is_package)
    return modules


def _absolute(module: Module, name: str | None, level: int) -> str:
    if not level:
        return name or ""
    base = module.name.split(".")
    if not module.is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _nearest_module(name: str, modules: dict[str, Module]) -> str:
    """`mesonb.a.b.Thing` -> the longest prefix that is a module."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts)


def imports_of(module: Module, modules: dict[str, Module]) -> Iterator[Import]:
    """Every import of mesonb in `module`, wherever it stands in the file."""
    tree = ast.parse(module.path.read_text(), filename=str(module.path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "mesonb" or alias.name.startswith("mesonb."):
                    yield Import(module, _nearest_module(alias.name, modules), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node.module, node.level)
            if base != "mesonb" and not base.startswith("mesonb."):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                target = sub if sub in modules else _nearest_module(base, modules)
                yield Import(module, target, node.lineno)


def layer_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def all_imports() -> list[Import]:
    modules = find_modules()
    return [imp for module in modules.values() for imp in imports_of(module, modules)]


def layer_violations(
    imports: list[Import], excused: set[tuple[str, str]] | None = None
) -> list[str]:
    found: dict[str, None] = {}  # ordered, one line per import statement and target
    for imp in imports:
        if excused and (imp.importer.name, imp.target) in excused:
            continue
        layer, target_layer = layer_of(imp.importer.name), layer_of(imp.target)
        if layer not in RULES:
            continue
        allowed, forbidden, rule = RULES[layer]
        broken = target_layer in forbidden or (
            allowed is not None and target_layer not in allowed
        )
        if broken:
            found[f"{imp.importer.rel}:{imp.line}: imports {imp.target}: rule: {rule}"] = None
    return list(found)


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def cycles(imports: list[Import], allowed: set[tuple[str, str]]) -> list[str]:
    modules = find_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for imp in imports:
        edge = (imp.importer.name, imp.target)
        if imp.target != imp.importer.name and edge not in allowed:
            graph[imp.importer.name].add(imp.target)
    found = []
    for component in _strongly_connected(graph):
        members = set(component)
        edges = sorted(
            {
                f"  {imp.importer.rel}:{imp.line}: imports {imp.target}"
                for imp in imports
                if imp.importer.name in members
                and imp.target in members
                and imp.target != imp.importer.name
                and (imp.importer.name, imp.target) not in allowed
            }
        )
        found.append(
            "rule: no import cycles; these modules import each other round in a cycle: "
            + ", ".join(component)
            + "\n"
            + "\n".join(edges)
        )
    return found


def long_modules(allowed: set[str]) -> list[str]:
    found = []
    for module in find_modules().values():
        lines = len(module.path.read_text().splitlines())
        if lines > MAX_LINES and module.name not in allowed:
            found.append(
                f"{module.rel}:{MAX_LINES + 1}: has {lines} lines: "
                f"rule: a module holds at most {MAX_LINES} lines"
            )
    return found


def test_every_import_keeps_to_the_layer_rules() -> None:
    found = layer_violations(all_imports(), set(KNOWN_LAYER_IMPORTS))
    assert not found, "imports across layers that STYLE.md forbids:\n" + "\n".join(found)


def test_no_import_cycles_between_modules() -> None:
    found = cycles(all_imports(), set(KNOWN_CYCLE_EDGES))
    assert not found, "\n".join(found)


def test_no_module_is_over_the_line_limit() -> None:
    found = long_modules(set(KNOWN_LONG_MODULES))
    assert not found, "\n".join(found)


def test_the_allow_lists_hold_only_live_violations() -> None:
    """An entry that no longer excuses anything must go, so that the lists only shrink."""
    imports = all_imports()
    modules = find_modules()
    stale = [
        f"KNOWN_LONG_MODULES[{name!r}] ({owner}): no longer over {MAX_LINES} lines"
        for name, owner in KNOWN_LONG_MODULES.items()
        if name not in modules or len(modules[name].path.read_text().splitlines()) <= MAX_LINES
    ]
    live_layer_imports = {(imp.importer.name, imp.target) for imp in imports}
    stale += [
        f"KNOWN_LAYER_IMPORTS[{edge!r}] ({owner}): no such import any more"
        for edge, owner in KNOWN_LAYER_IMPORTS.items()
        if edge not in live_layer_imports
    ]
    for edge, owner in KNOWN_CYCLE_EDGES.items():
        rest = set(KNOWN_CYCLE_EDGES) - {edge}
        if not any(edge[0] in text and edge[1] in text for text in cycles(imports, rest)):
            stale.append(f"KNOWN_CYCLE_EDGES[{edge!r}] ({owner}): closes no cycle any more")
    assert not stale, "\n".join(stale)


# --- the checker itself, on small made-up trees ------------------------------------------------


def _module(tmp: Path, name: str, source: str) -> Module:
    path = tmp / (name.replace(".", "/") + ".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return Module(name, path, False)


def test_the_checker_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from mesonb.agent.agent import Agent\n"
        "def f():\n"
        "    from ..client import cluster\n"
        "    import mesonb.widgets.progress\n"
    )
    module = _module(tmp_path, "mesonb.master.thing", source)
    modules = {
        name: Module(name, tmp_path / "x.py", False)
        for name in ("mesonb.agent.agent", "mesonb.client.cluster", "mesonb.widgets.progress")
    }
    modules[module.name] = module
    found = sorted((imp.target, imp.line) for imp in imports_of(module, modules))
    assert found == [
        ("mesonb.agent.agent", 3),
        ("mesonb.client.cluster", 5),
        ("mesonb.widgets.progress", 6),
    ]
    message = "\n".join(layer_violations([Import(module, t, line) for t, line in found]))
    assert "mesonb/master/thing.py:3: imports mesonb.agent.agent" in message.replace("\\", "/")
    assert "master never imports agent" in message


def test_the_cycle_finder_names_every_edge_of_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _strongly_connected(graph) == [["a", "b", "c"]]
    assert _strongly_connected({"a": {"b"}, "b": set()}) == []
