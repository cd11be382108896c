"""Spec errors that name the file, the line and the key, and the TOML line index behind them."""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["LineIndex", "SpecError", "display_path", "key_text"]


class SpecError(ValueError):
    """A spec that cannot be used: the message names the file, the line and the key."""

    def __init__(self, message: str, *, key: str | None = None, line: int | None = None,
                 path: str | Path | None = None):
        self.key = key
        self.line = line
        self.path = None if path is None else str(path)
        self.reason = message
        where = []
        if self.path:
            where.append(self.path)
        if line:
            where.append(f"line {line}")
        if key:
            where.append(f"key {key}")
        super().__init__((", ".join(where) + ": " if where else "") + message)


def display_path(path: Path) -> str:
    """``path`` relative to the current folder when it lies inside it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def key_text(path: tuple) -> str:
    """A key path as the spec's author writes it: ``("models", 1, "priors")`` ->
    ``models[2].priors`` (array tables count from 1; odd names are quoted)."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p + 1}]"
        else:
            p = str(p)
            seg = p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else json.dumps(p)
            out += ("." if out else "") + seg
    return out


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_BARE = r"""(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)"""
_KEY = re.compile(rf"^\s*({_BARE}(?:\s*\.\s*{_BARE})*)\s*=")
_INLINE_KEY = re.compile(r"""[{,]\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")


def _split_dotted(text: str) -> list[str]:
    parts = re.findall(r'"[^"]*"|\'[^\']*\'|[^.\s]+', text)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


class LineIndex:
    """Where each table and key of a TOML text is (best effort; for error messages).

    ``lines`` maps a key path (``("models", 0, "priors", "x")``) to its 1-based line;
    :meth:`find` answers for a path or its nearest enclosing table.
    """

    def __init__(self, text: str):
        self.lines: dict[tuple, int] = {}
        self._counts: dict[tuple, int] = {}
        current: tuple = ()
        in_multiline = None
        for lineno, line in enumerate(text.splitlines(), start=1):
            if in_multiline:
                if in_multiline in line:
                    in_multiline = None
                continue
            m = _HEADER.match(line)
            if m and not _KEY.match(line):
                current = self._table(m, lineno)
                continue
            k = _KEY.match(line)
            if k:
                in_multiline = self._key(current, k, line, lineno)

    def _table(self, m: re.Match, lineno: int) -> tuple:
        """Record a ``[table]`` or ``[[array]]`` header; its path becomes the current one."""
        names = _split_dotted(m.group(2))
        array = m.group(1) == "[["
        path = self._resolve(names, self._counts, array)
        if array:
            base = tuple(path)
            idx = self._counts.get(base, 0)
            self._counts[base] = idx + 1
            path = (*base, idx)
        current = tuple(path)
        self.lines.setdefault(current, lineno)
        return current

    def _key(self, current: tuple, k: re.Match, line: str, lineno: int) -> str | None:
        """Record a ``key = ...`` line (and inline-table keys); the quote of an open
        multi-line string, if the value starts one."""
        keypath = (*current, *_split_dotted(k.group(1)))
        self.lines.setdefault(keypath, lineno)
        rest = line[k.end():]
        for inner in _INLINE_KEY.findall(rest):
            name = inner[1:-1] if inner[:1] in "\"'" else inner
            self.lines.setdefault((*keypath, name), lineno)
        opened = None
        for quote in ('"""', "'''"):
            if rest.count(quote) == 1:
                opened = quote
        return opened

    @staticmethod
    def _resolve(names, counts, array=False):
        """``[models.priors]`` inside the last ``[[models]]`` -> ("models", i, "priors")."""
        path: list = []
        for j, name in enumerate(names):
            path.append(name)
            if array and j == len(names) - 1:
                break
            n = counts.get(tuple(path))
            if n:
                path.append(n - 1)
        return path

    def find(self, path: tuple) -> int | None:
        """The line of ``path``, else of its nearest enclosing table (None if unknown)."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None
