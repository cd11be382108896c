"""Check the package-structure rules that ruff and import-linter cannot, and list every breach.

Run by ``make lint`` (``python tools/check_structure.py``); the settings are in
:mod:`structure_check.config`. Each violation is printed as
``path:line: rule: detail``; the exit status is 1 when there is any, 0 otherwise. The rules:

``import-cycle``
    No import cycle between softbayes modules; imports inside functions count as edges too.
``function-import``
    No import of a softbayes module inside a function, except in the CLI's entry module (which
    defers its imports to keep ``--help`` fast) and in a package's PEP 562 ``__getattr__``.
``private-import``
    No ``from x import _name`` of a first-party module and no ``module._name``, in the package or
    the tests; a package's own modules may use its private submodules.
``private-attribute``
    No ``obj._name`` where ``_name`` is a private attribute that another softbayes module
    defines (``self`` and ``cls`` excepted): what another module needs becomes public.
``module-length`` / ``function-length``
    No module over ``MAX_MODULE_LINES`` physical lines; no function over ``MAX_FUNCTION_LINES``
    lines of code (docstrings, blank lines and comment-only lines not counted).
``docstring``
    Every file of the package opens with a docstring saying what it is for.
``issue-reference``
    No issue or pull-request numbers in the package's docstrings and comments.
``family-name``
    Outside the family registry no code branches on a family name: no registered family name in
    a comparison, a ``match`` case or as a dict key, and no literal list of family names.
    Docstrings and default argument values may name families.
``fit-attr-key``
    ``"softbayes_*"`` fit-attribute keys are written only in the fit-attribute module.
``syntax``
    A file that does not parse (no other rule can check it).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from structure_check.imports import (
    check_function_imports,
    check_import_cycles,
    check_private_attributes,
    check_private_imports,
)
from structure_check.layout import (
    check_docstrings,
    check_function_lengths,
    check_issue_references,
    check_module_lengths,
)
from structure_check.ownership import check_family_names, check_fit_attr_keys, family_names
from structure_check.source import Project, Violation

__all__ = ["CHECKS", "RULES", "Project", "Violation", "check", "family_names", "main"]

RULES = (
    "import-cycle",
    "function-import",
    "private-import",
    "private-attribute",
    "module-length",
    "function-length",
    "docstring",
    "issue-reference",
    "family-name",
    "fit-attr-key",
    "syntax",
)

CHECKS = (
    check_import_cycles,
    check_function_imports,
    check_private_imports,
    check_private_attributes,
    check_module_lengths,
    check_function_lengths,
    check_docstrings,
    check_issue_references,
    check_family_names,
    check_fit_attr_keys,
)


def check(root: Path | str, rules: Iterable[str] | None = None) -> list[Violation]:
    """Every violation under ``root`` (a checkout: ``root/softbayes``, ``root/tests``), sorted."""
    project = Project(Path(root))
    found = set(project.errors)
    for run in CHECKS:
        found.update(run(project))
    wanted = set(rules) if rules else set(RULES)
    return sorted(v for v in found if v.rule in wanted)


def main(argv: list[str] | None = None) -> int:
    """Print each violation as ``path:line: rule: detail`` and a count per rule on stderr."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=Path(__file__).resolve().parents[2], type=Path)
    parser.add_argument("--rule", action="append", choices=RULES, help="check only this rule")
    args = parser.parse_args(argv)
    violations = check(args.root, args.rule)
    for violation in violations:
        print(violation)
    counts = Counter(v.rule for v in violations)
    if violations:
        summary = ", ".join(f"{rule} {counts[rule]}" for rule in RULES if counts[rule])
        print(f"structure: {len(violations)} violations ({summary})", file=sys.stderr)
        return 1
    print("structure: all rules kept", file=sys.stderr)
    return 0
