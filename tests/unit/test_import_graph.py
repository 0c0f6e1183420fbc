"""No import circle inside sqlxmq_py: every import counts, at module level, inside a function
(a lazy import) or under ``if TYPE_CHECKING:``, since each one ties two modules together."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import sqlxmq_py

PACKAGE = Path(sqlxmq_py.__file__).parent


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package by dotted name, with whether it is a package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["sqlxmq_py", *path.relative_to(PACKAGE).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _imports(name: str, path: Path, is_package: bool, modules: set[str]) -> set[str]:
    """The package's modules that ``name`` imports, wherever the import statement is.

    ``from . import x`` names the submodule ``x`` (not the package); ``from .m import y``
    names ``m``, or ``m.y`` when that is a module. Importing a submodule also runs its
    packages' ``__init__``, which is not counted: a package's ``__init__`` only re-exports.
    """
    here = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            subs = {f"{target}.{a.name}" for a in node.names} & modules
            found |= subs
            if len(subs) < len(node.names) and target in modules:
                found.add(target)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of the package it imports."""
    modules = _modules()
    names = set(modules)
    return {name: _imports(name, *modules[name], names) for name in modules}


def _cycles(graph: dict[str, set[str]]) -> Iterator[tuple[frozenset[str], list[str]]]:
    """Every strongly connected component of more than one module (Tarjan's algorithm), with
    one cycle through it as a path that returns to its start."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    for component in components:
        yield frozenset(component), _path_in(graph, component)


def _path_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A cycle through the component's first module, found breadth first (the shortest)."""
    start = min(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in came_from:
                    came_from[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no cycle in component {sorted(component)}")


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert "sqlxmq_py._insert" in graph["sqlxmq_py.builder"]  # module level
    assert "sqlxmq_py.codec" in graph["sqlxmq_py.builder"]  # under TYPE_CHECKING
    assert "sqlxmq_py.admin" in graph["sqlxmq_py.web.pages"]  # from .. import admin
    assert len(graph) > 50


def test_cycles_are_found_and_named() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert list(_cycles(graph)) == [(frozenset("abc"), ["a", "b", "c", "a"])]


def test_no_import_cycle() -> None:
    cycles = [path for _, path in _cycles(import_graph())]
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
