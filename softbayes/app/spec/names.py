"""Spec names: the file name without ``.toml``, which names the report folder, checked."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from softbayes.app.spec.errors import SpecError, display_path

__all__ = ["SPEC_NAME_MAX", "check_spec_name"]

SPEC_NAME_MAX = 100
# Path separators and glob characters; a name holding one could name another folder.
_NAME_FORBIDDEN = re.compile(r"[/\\*?\[\]]")
# Control, format (bidi overrides), line/paragraph separators, surrogates of undecodable bytes.
_NAME_BAD_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")


def _name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a report folder (None if it can)."""
    if name in ("", ".", ".."):
        return "is empty, '.' or '..'"
    if name.startswith("."):
        return ("starts with a dot (hidden names are softbayes's own: cache, locks, temporary "
                "folders)")
    if len(name) > SPEC_NAME_MAX:
        return f"is {len(name)} characters long (at most {SPEC_NAME_MAX})"
    if any(unicodedata.category(ch) in _NAME_BAD_CATEGORIES for ch in name):
        return "holds a control or invisible formatting character"
    if m := _NAME_FORBIDDEN.search(name):
        return f"holds {m.group()!r} (path separators and glob characters are refused)"
    return None


def check_spec_name(name: str, path) -> str:
    """``name`` if it may name the report folder ``reports/<name>/``, else :class:`SpecError`.

    A spec's name is its file name without ``.toml``. It is refused (never rewritten, so two
    specs never end up sharing one report folder) if it is empty, ``.`` or ``..``, starts with
    a dot (hidden names belong to softbayes: the fit cache, locks, temporary folders), holds a
    path separator, a glob character (``* ? [ ]``), a control or invisible formatting
    character, or is longer than ``SPEC_NAME_MAX`` characters.
    """
    why = _name_problem(name)
    if why is None:
        return name
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_-")[:SPEC_NAME_MAX] or "analysis"
    raise SpecError(f"the spec's name {name!r} (its file name without .toml, which names the "
                    f"report folder reports/<name>/) {why}. Rename the file, e.g. to "
                    f"{slug}.toml.", path=display_path(Path(path)))
