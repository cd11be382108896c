"""Checks of a parsed TOML table: allowed keys, required keys, value types and ranges."""

from __future__ import annotations

import difflib
from pathlib import Path

from softbayes.app.spec.errors import LineIndex, SpecError, display_path, key_text

__all__ = ["Checker", "type_name"]

_KIND_WORDS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}


def type_name(v) -> str:
    """The TOML word for the type of ``v`` (``a string``, ``a table``, ...)."""
    return {
        str: "a string", int: "an integer", float: "a number", bool: "a boolean",
        list: "an array", dict: "a table",
    }.get(type(v), type(v).__name__)


def _is_kind(v, kind: str) -> bool:
    return {
        "str": isinstance(v, str),
        "int": isinstance(v, int) and not isinstance(v, bool),
        "float": isinstance(v, int | float) and not isinstance(v, bool),
        "bool": isinstance(v, bool),
    }[kind]


class Checker:
    """Validates the tables of one spec file; every failure is a :class:`SpecError` naming
    the file, the line (from :class:`LineIndex`) and the key."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.index = LineIndex(text)

    def fail(self, message, key_path):
        """Raise a :class:`SpecError` about the key at ``key_path``."""
        raise SpecError(message, key=key_text(key_path), line=self.index.find(key_path),
                        path=display_path(self.path))

    def table(self, raw, key_path, allowed, required=()):
        """``raw`` if it is a table with only ``allowed`` keys and all ``required`` ones."""
        if not isinstance(raw, dict):
            self.fail(f"expected a table, got {type_name(raw)}.", key_path)
        for k in raw:
            if k not in allowed:
                close = difflib.get_close_matches(k, allowed, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                self.fail(f"unknown key {k!r}; allowed keys: {', '.join(allowed)}.{hint}",
                          (*key_path, k))
        for k in required:
            if k not in raw:
                self.fail(f"missing required key {k!r}.", key_path)
        return raw

    def typed(self, raw, key, key_path, kind, default=None, check=None, hint=""):
        """``raw[key]`` checked to be of ``kind`` (``str``, ``int``, ``float``, ``bool``) and
        to pass ``check`` (``hint`` says why not); ``default`` if the key is absent."""
        if key not in raw:
            return default
        v = raw[key]
        if not _is_kind(v, kind):
            self.fail(f"expected {_KIND_WORDS[kind]}, got {type_name(v)} {v!r}.",
                      (*key_path, key))
        if check is not None and not check(v):
            self.fail(f"invalid value {v!r}{': ' + hint if hint else '.'}", (*key_path, key))
        return float(v) if kind == "float" else v
