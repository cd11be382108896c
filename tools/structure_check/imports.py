"""Rules on imports: cycles, function-level imports, private names and private attributes."""

from __future__ import annotations

import ast
import itertools
import re
from collections import defaultdict, deque
from collections.abc import Iterator

from structure_check.config import DEFERRED_IMPORT_FILES, PACKAGE
from structure_check.source import Project, SourceFile, Violation, is_private

_DOTTED_PATH = re.compile(r"^softbayes(\.[A-Za-z_]\w*)+$")


def check_import_cycles(project: Project) -> Iterator[Violation]:
    """One violation per strongly connected set of modules, showing a shortest cycle in it."""
    edges: dict[str, dict[str, int]] = defaultdict(dict)
    for f in project.files:
        if not f.in_package:
            continue
        for imp in project.imports[f.rel]:
            target = project.known(imp.target)
            if target and target != f.module:
                edges[f.module][target] = min(imp.line, edges[f.module].get(target, imp.line))
    for component in _strongly_connected(sorted(project.modules), edges):
        if len(component) < 2:
            continue
        start = min(component)
        cycle = _shortest_cycle(start, edges, component)
        hops = [f"{a} (l.{edges[a][b]})" for a, b in itertools.pairwise([*cycle, start])]
        detail = " -> ".join([*hops, start])
        if len(component) > len(cycle):
            detail += f"; {len(component)} modules in the cycle: {', '.join(sorted(component))}"
        yield Violation(project.modules[start].rel, edges[start][cycle[1]], "import-cycle", detail)


def _strongly_connected(nodes: list[str], edges: dict[str, dict[str, int]]) -> list[set[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges.get(node, {})):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in nodes:
        if node not in index:
            visit(node)
    return components


def _shortest_cycle(start: str, edges: dict[str, dict[str, int]], within: set[str]) -> list[str]:
    """``[start, ..., last]`` where ``last`` imports ``start``: breadth first inside ``within``."""
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in sorted(edges.get(node, {})):
            if succ == start:
                path = [node]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return path[::-1]
            if succ in within and succ not in previous:
                previous[succ] = node
                queue.append(succ)
    raise AssertionError(f"{start} is not on a cycle")


def check_function_imports(project: Project) -> Iterator[Violation]:
    """Imports of softbayes modules inside functions (the CLI and ``__getattr__`` excepted)."""
    for f in project.files:
        if not f.in_package or f.rel in DEFERRED_IMPORT_FILES:
            continue
        seen = set()
        for imp in project.imports[f.rel]:
            if imp.in_function is None or not _is_package_module(imp.target):
                continue
            if f.is_package and imp.in_function == "__getattr__":
                continue
            if (imp.line, imp.source) not in seen:
                seen.add((imp.line, imp.source))
                detail = f"`{imp.source}` inside {imp.in_function}()"
                yield Violation(f.rel, imp.line, "function-import", detail)


def _is_package_module(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def check_private_imports(project: Project) -> Iterator[Violation]:
    """``from x import _name`` / ``import x._mod`` / ``x._name`` on first-party modules."""
    for f in project.files:
        for node in ast.walk(f.tree):
            if isinstance(node, ast.ImportFrom):
                yield from _private_from_import(project, f, node)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    bad = _first_party(project, alias.name) and _private_module_part(f, alias.name)
                    if bad:
                        detail = f"`{ast.unparse(node)}` imports private module {bad}"
                        yield Violation(f.rel, node.lineno, "private-import", detail)
            elif isinstance(node, ast.Attribute) and is_private(node.attr):
                module = project.module_of(f, node.value)
                sub = f"{module}.{node.attr}"
                if module and not (sub in project.modules and not _private_module_part(f, sub)):
                    detail = f"`{ast.unparse(node)}` uses private name {node.attr} of {module}"
                    yield Violation(f.rel, node.lineno, "private-import", detail)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                # Dotted strings such as mock.patch("softbayes.x._name") name a private object.
                if _DOTTED_PATH.match(node.value) and _private_module_part(f, node.value):
                    detail = f"{node.value!r} names a private object"
                    yield Violation(f.rel, node.lineno, "private-import", detail)


def _first_party(project: Project, module: str) -> bool:
    return module.partition(".")[0] in project.first_party


def _private_module_part(f: SourceFile, module: str) -> str | None:
    """The first private component of dotted ``module`` whose package ``f`` is not inside."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if is_private(part):
            owner = ".".join(parts[:i])
            if f.module == owner or f.module.startswith(owner + "."):
                return None
            return ".".join(parts[: i + 1])
    return None


def _private_from_import(
    project: Project, f: SourceFile, node: ast.ImportFrom
) -> Iterator[Violation]:
    base = project.from_base(f, node)
    if not (node.level or _first_party(project, base)):
        return
    bad_module = _private_module_part(f, base)
    if bad_module:
        detail = f"`{ast.unparse(node)}` imports from private module {bad_module}"
        yield Violation(f.rel, node.lineno, "private-import", detail)
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if not is_private(alias.name):
            continue
        if sub in project.modules and _private_module_part(f, sub) is None:
            continue  # a package's own private submodule
        detail = f"`{ast.unparse(node)}` imports private name {alias.name} from {base}"
        yield Violation(f.rel, node.lineno, "private-import", detail)


def _defined_private_names(tree: ast.AST) -> set[str]:
    """Private names a file defines: functions, classes, variables and attributes it assigns."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {name for name in names if is_private(name)}


def check_private_attributes(project: Project) -> Iterator[Violation]:
    """``obj._name`` where another softbayes module defines ``_name`` and this file does not."""
    defined = {f.rel: _defined_private_names(f.tree) for f in project.files}
    package_defined = set().union(*(defined[f.rel] for f in project.files if f.in_package))
    for f in project.files:
        for node in ast.walk(f.tree):
            if not (isinstance(node, ast.Attribute) and is_private(node.attr)):
                continue
            if node.attr not in package_defined or node.attr in defined[f.rel]:
                continue
            base = node.value
            if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                continue
            if isinstance(base, ast.Call) and getattr(base.func, "id", None) == "super":
                continue
            if project.module_of(f, base):
                continue  # a module's private name: reported by private-import
            owners = sorted(
                g.module for g in project.files if g.in_package and node.attr in defined[g.rel]
            )
            detail = f"`{ast.unparse(node)}` reaches into {node.attr} of {', '.join(owners)}"
            yield Violation(f.rel, node.lineno, "private-attribute", detail)
