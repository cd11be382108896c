"""The checked tree: parsed files, their imports resolved to package modules, and ``Violation``."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from structure_check.config import PACKAGE, TESTS


@dataclass(frozen=True, order=True)
class Violation:
    """One breach of a rule, at ``path:line`` (``path`` relative to the checked root)."""

    path: str
    line: int
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.detail}"


@dataclass(frozen=True)
class Import:
    """One import statement's target module, as seen from the importing file."""

    target: str
    line: int
    in_function: str | None  # the outermost enclosing function's name, None at module level
    source: str  # the statement, for messages


def is_private(name: str) -> bool:
    """Whether ``name`` is private by convention (one leading underscore, not a dunder)."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


class SourceFile:
    """A parsed Python file of the checked tree with what the rules need to know about it."""

    def __init__(self, root: Path, path: Path):
        self.rel = path.relative_to(root).as_posix()
        self.text = path.read_text(encoding="utf-8")
        self.tree = ast.parse(self.text, filename=self.rel)
        parts = list(Path(self.rel).with_suffix("").parts)
        self.is_package = parts[-1] == "__init__"
        if self.is_package:
            parts = parts[:-1]
        self.module = ".".join(parts)
        self.in_package = parts[0] == PACKAGE
        self.docstrings = list(_docstring_nodes(self.tree))

    @property
    def package(self) -> str:
        """The package relative imports in this file start from."""
        return self.module if self.is_package else self.module.rpartition(".")[0]


def _docstring_nodes(tree: ast.AST) -> Iterator[ast.Constant]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                yield body[0].value


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _outer_function(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> ast.AST | None:
    """The outermost function that encloses ``node`` (None at module or class level)."""
    found = None
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            found = node
    return found


class Project:
    """The files under the checked root: the package and the tests."""

    def __init__(self, root: Path):
        self.root = root
        self.files: list[SourceFile] = []
        self.errors: list[Violation] = []
        for top in (PACKAGE, TESTS):
            for path in sorted((root / top).rglob("*.py")) if (root / top).is_dir() else ():
                if "__pycache__" in path.parts:
                    continue
                try:
                    self.files.append(SourceFile(root, path))
                except SyntaxError as exc:
                    rel = path.relative_to(root).as_posix()
                    self.errors.append(Violation(rel, exc.lineno or 1, "syntax", str(exc.msg)))
        self.modules = {f.module: f for f in self.files if f.in_package}
        # Test modules import each other by their bare names (pytest's rootdir-relative paths).
        self.first_party = {PACKAGE, TESTS} | {
            Path(f.rel).stem for f in self.files if not f.in_package
        }
        self.imports = {f.rel: list(self._imports(f)) for f in self.files}
        self.aliases = {f.rel: self._module_aliases(f) for f in self.files}

    # ------------------------------------------------------------------ import resolution
    def known(self, name: str) -> str | None:
        """The longest prefix of dotted ``name`` that is a package module, or None."""
        while name:
            if name in self.modules:
                return name
            name = name.rpartition(".")[0]
        return None

    def from_base(self, f: SourceFile, node: ast.ImportFrom) -> str:
        """The absolute module a ``from ... import`` statement in ``f`` imports from."""
        if not node.level:
            return node.module or ""
        base = f.package
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        return f"{base}.{node.module}" if node.module else base

    def _imports(self, f: SourceFile) -> Iterator[Import]:
        parents = _parents(f.tree)
        for node in ast.walk(f.tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = self.from_base(f, node)
                subs = [f"{base}.{alias.name}" for alias in node.names]
                # ``from pkg import sub`` runs pkg's ``__init__`` as well: an edge to pkg too
                targets = list(dict.fromkeys([base, *(s for s in subs if s in self.modules)]))
            elif isinstance(node, ast.Call) and _dynamic_import_name(node):
                targets = [_dynamic_import_name(node)]
            else:
                continue
            outer = _outer_function(node, parents)
            where = getattr(outer, "name", "<lambda>") if outer is not None else None
            for target in targets:
                yield Import(target, node.lineno, where, ast.unparse(node))

    def _module_aliases(self, f: SourceFile) -> dict[str, str]:
        """Local names that ``f``'s imports bind to package modules (``refit`` -> module)."""
        aliases = {}
        for node in ast.walk(f.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        aliases[alias.asname] = alias.name
                    else:
                        head = alias.name.partition(".")[0]
                        aliases[head] = head
            elif isinstance(node, ast.ImportFrom):
                base = self.from_base(f, node)
                for alias in node.names:
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
        return {k: v for k, v in aliases.items() if v in self.modules}

    def module_of(self, f: SourceFile, node: ast.AST) -> str | None:
        """The package module that expression ``node`` (``refit``, ``sb.io``) names in ``f``."""
        chain = _dotted(node)
        if not chain or chain[0] not in self.aliases[f.rel]:
            return None
        module = ".".join([self.aliases[f.rel][chain[0]], *chain[1:]])
        return module if module in self.modules else None


def _dynamic_import_name(node: ast.Call) -> str | None:
    """The module named by ``importlib.import_module("x")`` / ``__import__("x")``, if any."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def _dotted(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *parts[::-1]]
    return None
