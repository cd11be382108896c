"""Rules on the shape of files: module and function sizes, docstrings, issue numbers."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator

from structure_check.config import MAX_FUNCTION_LINES, MAX_MODULE_LINES, MODULE_LENGTH_EXEMPT
from structure_check.source import Project, SourceFile, Violation

_ISSUE_PATTERNS = (
    re.compile(r"\bissues?[\s#-]*\d+", re.IGNORECASE),
    re.compile(r"\b(?:PR|GH|pull request)[\s#-]*\d+"),
    re.compile(r"(?<![\w&#/])#\d+\b"),
)
_NON_CODE_TOKENS = frozenset(
    {
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENDMARKER,
        tokenize.ENCODING,
    }
)


def check_module_lengths(project: Project) -> Iterator[Violation]:
    """Modules of the package over ``MAX_MODULE_LINES`` physical lines."""
    for f in project.files:
        n = len(f.text.splitlines())
        if f.in_package and n > MAX_MODULE_LINES and f.rel not in MODULE_LENGTH_EXEMPT:
            detail = f"{n} lines (limit {MAX_MODULE_LINES})"
            yield Violation(f.rel, 1, "module-length", detail)


def code_lines(f: SourceFile) -> set[int]:
    """Line numbers that hold code: not blank, not only a comment, not part of a docstring."""
    docstrings = {(node.lineno, node.col_offset) for node in f.docstrings}
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(f.text).readline):
        if tok.type in _NON_CODE_TOKENS:
            continue
        if tok.type == tokenize.STRING and tok.start in docstrings:
            continue
        lines.update(range(tok.start[0], tok.end[0] + 1))
    return lines


def check_function_lengths(project: Project) -> Iterator[Violation]:
    """Functions of the package over ``MAX_FUNCTION_LINES`` lines of code."""
    for f in project.files:
        if not f.in_package:
            continue
        code = code_lines(f)
        for node, qualname in _functions(f.tree):
            n = sum(1 for line in range(node.lineno, node.end_lineno + 1) if line in code)
            if n > MAX_FUNCTION_LINES:
                detail = f"{qualname}() has {n} lines of code (limit {MAX_FUNCTION_LINES})"
                yield Violation(f.rel, node.lineno, "function-length", detail)


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[ast.AST, str]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node, prefix + node.name
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def check_docstrings(project: Project) -> Iterator[Violation]:
    """Files of the package that do not open with a (non-empty) docstring."""
    for f in project.files:
        if f.in_package and not (ast.get_docstring(f.tree) or "").strip():
            yield Violation(f.rel, 1, "docstring", "the file does not open with a docstring")


def check_issue_references(project: Project) -> Iterator[Violation]:
    """Issue / pull-request numbers in the package's comments and docstrings."""
    for f in project.files:
        if not f.in_package:
            continue
        texts: list[tuple[int, str]] = [(node.lineno, node.value) for node in f.docstrings]
        for tok in tokenize.generate_tokens(io.StringIO(f.text).readline):
            if tok.type == tokenize.COMMENT:
                texts.append((tok.start[0], tok.string.lstrip("#")))
        for line, text in texts:
            for pattern in _ISSUE_PATTERNS:
                for match in pattern.finditer(text):
                    at = line + text.count("\n", 0, match.start())
                    detail = f"cites {match.group(0).strip()!r}"
                    yield Violation(f.rel, at, "issue-reference", detail)
