"""Reading a spec file: :func:`load_spec` (structure and types) and :func:`check_spec` (data
and models)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from softbayes.app.files import path_problem
from softbayes.app.spec.checker import Checker
from softbayes.app.spec.errors import SpecError, display_path
from softbayes.app.spec.names import check_spec_name
from softbayes.app.spec.schema import SamplerSettings, Spec
from softbayes.app.spec.sections import (
    TOP_LEVEL_KEYS,
    read_compare,
    read_compute,
    read_data,
    read_models,
    read_sampler,
)

__all__ = ["check_spec", "load_spec"]


def _read_text(path: Path) -> str:
    """The spec file's text; a :class:`SpecError` for a path the OS refuses or cannot read."""
    why = path_problem(path)
    if why:
        raise SpecError(f"file {str(path)!r}: {why}.")
    if not path.is_file():
        raise SpecError(f"spec file not found: {path}")
    check_spec_name(path.stem, path)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot read the spec: {err}", path=display_path(path)) from None


def _parse_toml(text: str, path: Path) -> dict:
    """The TOML document; a :class:`SpecError` with the line of a syntax error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        msg = getattr(err, "msg", None) or str(err)
        line = getattr(err, "lineno", None)
        if line is None:
            m = re.search(r"at line (\d+)", str(err))
            line = int(m.group(1)) if m else None
        raise SpecError(f"not valid TOML: {msg}", line=line, path=display_path(path)) from None


def load_spec(path) -> Spec:
    """Read and validate a spec file (structure and types; data checks: :func:`check_spec`).

    Raises
    ------
    SpecError
        With the file, line and key of the problem.
    """
    path = Path(path)
    text = _read_text(path)
    raw = _parse_toml(text, path)
    c = Checker(path, text)
    c.table(raw, (), TOP_LEVEL_KEYS, required=("data", "models"))
    title = c.typed(raw, "title", (), "str", path.stem)
    description = c.typed(raw, "description", (), "str", "")
    seed = c.typed(raw, "seed", (), "int", 1, lambda v: 0 <= v < 2**32,
                   "must be between 0 and 2**32 - 1")
    data = read_data(c, raw["data"])
    sampler = read_sampler(c, raw.get("sampler", {}), ("sampler",), SamplerSettings())
    compare = read_compare(c, raw.get("compare", {}))
    compute = read_compute(c, raw.get("compute", {}))
    models = read_models(c, raw["models"], data, sampler)
    return Spec(
        name=path.stem, path=path, title=title, description=description, seed=seed, data=data,
        sampler=sampler, compare=compare, models=models, text=text, line_index=c.index,
        compute=compute,
    )


def check_spec(spec: Spec, only=None):
    """Data-dependent checks: load the data and build every model (nothing is fitted).

    Returns ``(data frame, {name: (ModelSpec, Model, warnings)})``.
    """
    data = spec.load_data()
    return data, spec.build_models(data, only)
