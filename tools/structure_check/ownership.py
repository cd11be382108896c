"""Rules on who owns a fact: family names live in the family registry, fit-attribute keys in
the fit-attribute module."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from structure_check.config import (
    FAMILY_NAME_EXEMPT,
    FAMILY_REGISTRY,
    FIT_ATTR_PREFIX,
    FIT_ATTRS_MODULE,
    NOT_FIT_ATTRIBUTES,
)
from structure_check.source import Project, SourceFile, Violation


def in_family_registry(f: SourceFile) -> bool:
    """Whether ``f`` is a module of the family registry package."""
    return f.rel.startswith(f"{FAMILY_REGISTRY}/")


def family_names(project: Project) -> tuple[str, ...]:
    """The registered family names: the ``name = "..."`` of the family classes in every module
    of the registry package, in the order of its files (read without importing it)."""
    names = []
    for registry in (f for f in project.files if in_family_registry(f)):
        for cls in ast.walk(registry.tree):
            if not isinstance(cls, ast.ClassDef):
                continue
            names.extend(_class_name_attributes(cls))
    return tuple(names)


def _class_name_attributes(cls: ast.ClassDef) -> Iterator[str]:
    """The non-empty string values assigned to ``name`` in the body of ``cls``."""
    for stmt in cls.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
        value = getattr(stmt, "value", None)
        if (
            any(isinstance(t, ast.Name) and t.id == "name" for t in targets)
            and isinstance(value, ast.Constant)
            and isinstance(value.value, str)
            and value.value
        ):
            yield value.value


def check_family_names(project: Project) -> Iterator[Violation]:
    """Branches on, dict keys of and literal lists of family names outside the registry."""
    names = set(family_names(project))
    if not names:
        detail = 'no family names found (class attributes `name = "..."`)'
        yield Violation(f"{FAMILY_REGISTRY}/__init__.py", 1, "family-name", detail)
        return
    for f in project.files:
        if not f.in_package or in_family_registry(f) or f.rel in FAMILY_NAME_EXEMPT:
            continue
        exempt = _default_value_nodes(f.tree)
        flagged: set[int] = set()
        for node in ast.walk(f.tree):
            if id(node) in exempt:
                continue
            for hit, context in _family_uses(node, names):
                if id(hit) not in flagged:
                    flagged.add(id(hit))
                    detail = f"{context} on family name {hit.value!r}"
                    yield Violation(f.rel, hit.lineno, "family-name", detail)
            if isinstance(node, ast.Tuple | ast.List | ast.Set):
                hits = [e for e in node.elts if _is_name_in(e, names) and id(e) not in flagged]
                if len({e.value for e in hits}) >= 2:
                    flagged.update(id(e) for e in hits)
                    listed = ", ".join(repr(e.value) for e in hits)
                    detail = f"literal list of family names ({listed})"
                    yield Violation(f.rel, node.lineno, "family-name", detail)


def _is_name_in(node: ast.AST, names: set[str]) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names


def _family_uses(node: ast.AST, names: set[str]) -> Iterator[tuple[ast.Constant, str]]:
    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            for side in (operands[i], operands[i + 1]):
                if _is_name_in(side, names):
                    yield side, "comparison"
                elif isinstance(op, ast.In | ast.NotIn) and isinstance(
                    side, ast.Tuple | ast.List | ast.Set
                ):
                    for elt in side.elts:
                        if _is_name_in(elt, names):
                            yield elt, "membership test"
    elif isinstance(node, ast.Dict):
        # Keyed by family names: two or more of them ("beta" alone is also a parameter name).
        keys = [key for key in node.keys if key is not None and _is_name_in(key, names)]
        if len({key.value for key in keys}) >= 2:
            yield from ((key, "dict keyed") for key in keys)
    elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict":
        keys = [kw for kw in node.keywords if kw.arg in names]
        if len(keys) >= 2:
            yield from ((ast.Constant(kw.arg, lineno=kw.lineno), "dict keyed") for kw in keys)
    elif isinstance(node, ast.MatchValue) and _is_name_in(node.value, names):
        yield node.value, "match case"


def _default_value_nodes(tree: ast.AST) -> set[int]:
    """ids of every node inside a default argument value (those may name a family)."""
    exempt = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arguments):
            for default in [*node.defaults, *node.kw_defaults]:
                if default is not None:
                    exempt.update(id(n) for n in ast.walk(default))
    return exempt


def check_fit_attr_keys(project: Project) -> Iterator[Violation]:
    """``"softbayes_*"`` string literals (plain or f-string) outside the fit-attribute module."""
    for f in project.files:
        if not f.in_package or f.rel == FIT_ATTRS_MODULE:
            continue
        skip = {id(node) for node in f.docstrings}
        for node in ast.walk(f.tree):
            if isinstance(node, ast.JoinedStr):
                skip.update(id(part) for part in node.values)
                first = node.values[0] if node.values else None
                if isinstance(first, ast.Constant) and str(first.value).startswith(FIT_ATTR_PREFIX):
                    detail = f"f-string {ast.unparse(node)}"
                    yield Violation(f.rel, node.lineno, "fit-attr-key", detail)
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.startswith(FIT_ATTR_PREFIX)
                and node.value not in NOT_FIT_ATTRIBUTES
                and id(node) not in skip
            ):
                yield Violation(f.rel, node.lineno, "fit-attr-key", f"literal {node.value!r}")
