"""Analysis specs: one TOML file describes one analysis (data, candidate models, sampler).

A spec is *data*: nothing in it is executed as code. Formulas may only call an allow-list of
functions (formulae's transforms such as ``scale``, ``C``, ``poly``, ``bs`` and the NumPy
functions softbayes provides, e.g. ``log``), and data paths must stay inside the spec's folder.

Format (``models/<name>.toml``; every key but ``[data]`` and ``[[models]]`` is optional)::

    title = "STAR98: share of students above the national median"
    description = "Free text shown at the top of the report."
    seed = 20260101                      # random seed of every fit

    [data]
    builtin = "star98"                   # a built-in data set (softbayes datasets), or
    # path = "data/shares.csv"           # a CSV or Parquet file relative to this spec
    labels = "share_above"               # label column; K classes: ["p_a", "p_b", "p_c"]
    # weights = "n_raters"               # row weights, used by the families that take them
    # sep = ";"                          # CSV separator (default ","; also ";", "\t", "|",
                                         # " ", ":" or "\\s+"; never a regular expression)

    [sampler]                            # defaults: 1000 draws, 1000 tune, 4 chains, nutpie
    draws = 500
    tune = 500
    chains = 2
    # sampler = "nutpie"                 # or "pymc", "numpyro", "blackjax"
    # target_accept = 0.9

    [compare]                            # see softbayes.compare
    # scores = ["log", "brier"]
    # kfold_fallback = "all"             # "all", "fit" or "none" when PSIS-LOO is unreliable
    # k = 10
    # n_bins = 10

    [[models]]                           # one table per candidate model
    name = "Continuous Bernoulli"
    likelihood = "continuous_bernoulli"  # weighted_bernoulli, continuous_bernoulli, beta,
                                         # bernoulli, soft_categorical
    formula = "~ scale(LOWINC) + scale(PERASIAN)"   # left-hand side from [data] labels
    # description = "..."
    # [models.priors]                    # overrides, see softbayes.terms.priors
    # "scale(LOWINC)" = { dist = "Normal", mu = 0, sigma = 1 }
    # [models.options]                   # family options
    # squeeze = true                     # beta: Smithson-Verkuilen squeeze of 0/1 labels
    # threshold = 0.5                    # bernoulli: cut of the soft labels
    # phi_formula = "~ scale(LOWINC)"    # beta: formula of log(phi)
    # [models.sampler]                   # per-model overrides of [sampler]

Errors (:class:`SpecError`) name the file, the line and the key, e.g.
``models/star98.toml, line 23, key models[2].likelihood: unknown likelihood 'betta'; ...``.
``models[i]`` counts the ``[[models]]`` tables from 1.

The file name without ``.toml`` is the spec's name and names its report folder
``reports/<name>/``. It must be a plain folder name: not ``.``/``..``, no leading dot, no path
separator, glob character (``* ? [ ]``) or control character, at most 100 characters
(:func:`check_spec_name`); other names are refused with a message, never rewritten.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from softbayes._version import __version__
from softbayes.terms.sandbox import SAFE_NUMPY as _SANDBOX_NUMPY
from softbayes.terms.sandbox import FormulaError, check_formula

__all__ = [
    "CompareSettings",
    "DataSpec",
    "ModelSpec",
    "SamplerSettings",
    "Spec",
    "SpecError",
    "load_spec",
]

FAMILY_NAMES = (
    "weighted_bernoulli",
    "continuous_bernoulli",
    "beta",
    "bernoulli",
    "soft_categorical",
)
SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")
FAMILY_OPTIONS = {"beta": {"squeeze", "phi_formula"}, "bernoulli": {"threshold"}}
WEIGHTED_FAMILIES = ("weighted_bernoulli", "soft_categorical")

# NumPy functions a spec's formula may call as ``np.<name>(...)`` (the sandbox's list).
SAFE_NUMPY = _SANDBOX_NUMPY


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


# --------------------------------------------------------------------------- line index


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_BARE = r"""(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)"""
_KEY = re.compile(rf"^\s*({_BARE}(?:\s*\.\s*{_BARE})*)\s*=")
_INLINE_KEY = re.compile(r"""[{,]\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")


def _split_dotted(text: str) -> list[str]:
    parts = re.findall(r'"[^"]*"|\'[^\']*\'|[^.\s]+', text)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


class _LineIndex:
    """Where each table and key of a TOML text is (best effort; for error messages)."""

    def __init__(self, text: str):
        self.lines: dict[tuple, int] = {}
        counts: dict[tuple, int] = {}
        current: tuple = ()
        in_multiline = None
        for lineno, line in enumerate(text.splitlines(), start=1):
            if in_multiline:
                if in_multiline in line:
                    in_multiline = None
                continue
            m = _HEADER.match(line)
            if m and not _KEY.match(line):
                names = _split_dotted(m.group(2))
                array = m.group(1) == "[["
                path = self._resolve(names, counts, array)
                if array:
                    base = tuple(path)
                    idx = counts.get(base, 0)
                    counts[base] = idx + 1
                    path = (*base, idx)
                current = tuple(path)
                self.lines.setdefault(current, lineno)
                continue
            k = _KEY.match(line)
            if k:
                keypath = (*current, *_split_dotted(k.group(1)))
                self.lines.setdefault(keypath, lineno)
                rest = line[k.end():]
                for inner in _INLINE_KEY.findall(rest):
                    name = inner[1:-1] if inner[:1] in "\"'" else inner
                    self.lines.setdefault((*keypath, name), lineno)
                for quote in ('"""', "'''"):
                    if rest.count(quote) == 1:
                        in_multiline = quote

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
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


def _key_text(path: tuple) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p + 1}]"
        else:
            p = str(p)
            seg = p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else json.dumps(p)
            out += ("." if out else "") + seg
    return out


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class SamplerSettings:
    """How each model is sampled (``[sampler]`` and ``[models.sampler]``)."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    sampler: str | None = None
    target_accept: float | None = None
    cores: int | None = None

    def fit_kwargs(self) -> dict:
        kw = {"draws": self.draws, "tune": self.tune, "chains": self.chains,
              "sampler": self.sampler}
        if self.cores is not None:
            kw["cores"] = self.cores
        if self.target_accept is not None:
            kw["target_accept"] = self.target_accept
        return kw

    def describe(self) -> str:
        s = f"{self.chains} chains x {self.draws} draws ({self.tune} tuning)"
        if self.sampler:
            s += f", {self.sampler}"
        if self.target_accept is not None:
            s += f", target_accept={self.target_accept:g}"
        return s


@dataclass(frozen=True)
class CompareSettings:
    """Options of :func:`softbayes.compare` (``[compare]``)."""

    scores: tuple[str, ...] = ("log", "brier")
    kfold_fallback: str = "all"
    loo: str = "psis"
    k: int = 10
    n_bins: int = 10
    method: str = "stacking"

    def compare_kwargs(self) -> dict:
        return {
            "scores": tuple(self.scores),
            "kfold_fallback": None if self.kfold_fallback == "none" else self.kfold_fallback,
            "loo": self.loo,
            "k": self.k,
            "n_bins": self.n_bins,
            "method": self.method,
        }


@dataclass(frozen=True)
class DataSpec:
    """Where the data is and which columns are labels and weights (``[data]``)."""

    labels: tuple[str, ...]
    path: str | None = None
    builtin: str | None = None
    weights: str | None = None
    sep: str = ","

    @property
    def multiclass(self) -> bool:
        return len(self.labels) > 1

    def describe(self) -> str:
        return f"built-in data set {self.builtin!r}" if self.builtin else f"file {self.path}"


@dataclass(frozen=True)
class ModelSpec:
    """One candidate model (a ``[[models]]`` table)."""

    name: str
    likelihood: str
    formula: str
    index: int
    priors: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    description: str = ""

    @property
    def key(self) -> str:
        return f"models[{self.index + 1}]"

    def model_kwargs(self, data_spec: DataSpec) -> dict:
        """Keyword arguments of :class:`softbayes.Model` (besides formula and data)."""
        kw: dict[str, Any] = {"likelihood": self.likelihood, "priors": dict(self.priors)}
        for opt in ("squeeze", "threshold", "phi_formula"):
            if opt in self.options:
                kw[opt] = self.options[opt]
        if data_spec.weights and self.likelihood in WEIGHTED_FAMILIES:
            kw["weights"] = data_spec.weights
        return kw

    def entry(self) -> dict:
        """What determines the fit (the name does not), for the fit cache key."""
        return {
            "likelihood": self.likelihood,
            "formula": self.formula,
            "priors": self.priors,
            "options": self.options,
            "sampler": asdict(self.sampler),
        }


@dataclass
class Spec:
    """A validated analysis spec; see the module docstring for the format."""

    name: str
    path: Path
    title: str
    description: str
    seed: int
    data: DataSpec
    sampler: SamplerSettings
    compare: CompareSettings
    models: list[ModelSpec]
    text: str = field(repr=False, default="")
    _index: _LineIndex | None = field(repr=False, default=None)

    # -- errors -----------------------------------------------------------------------------
    def error(self, message: str, path: tuple) -> SpecError:
        line = self._index.find(path) if self._index else None
        return SpecError(message, key=_key_text(path), line=line, path=_display(self.path))

    @property
    def folder(self) -> Path:
        return self.path.parent

    # -- data -------------------------------------------------------------------------------
    def data_file(self) -> Path | None:
        if self.data.path is None:
            return None
        return _inside(self.folder, self.data.path, lambda msg: self.error(msg, ("data", "path")))

    def load_data(self) -> pd.DataFrame:
        """The data frame (checked: label and weight columns present)."""
        if self.data.builtin is not None:
            from softbayes.data.datasets import load_dataset

            try:
                df = load_dataset(self.data.builtin)
            except ValueError as err:
                raise self.error(str(err), ("data", "builtin")) from None
        else:
            file = self.data_file()
            df = read_table(file, sep=self.data.sep,
                            on_error=lambda msg: self.error(msg, ("data", "path")))
        cols = [str(c) for c in df.columns]
        missing = [c for c in self.data.labels if c not in cols]
        if missing:
            raise self.error(
                f"label column(s) {missing} not in the data (columns: {_cols(cols)}).",
                ("data", "labels"),
            )
        if self.data.weights is not None and self.data.weights not in cols:
            raise self.error(
                f"weights column {self.data.weights!r} not in the data (columns: {_cols(cols)}).",
                ("data", "weights"),
            )
        return df

    # -- models -----------------------------------------------------------------------------
    def build_models(self, data: pd.DataFrame, only=None) -> dict:
        """``{name: (ModelSpec, softbayes.Model, [warnings])}``; errors name the key."""
        from softbayes.model import Model

        out = {}
        for ms in self.select(only):
            kw = ms.model_kwargs(self.data)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    model = Model(ms.formula, data, _untrusted=True, **kw)
                except (ValueError, TypeError, KeyError) as err:
                    raise self.error(f"model {ms.name!r}: {err}",
                                     _blame(ms, str(err))) from None
            msgs = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
            out[ms.name] = (ms, model, msgs)
        return out

    def select(self, only=None) -> list[ModelSpec]:
        if not only:
            return list(self.models)
        names = [m.name for m in self.models]
        unknown = [n for n in only if n not in names]
        if unknown:
            raise SpecError(
                f"--only {unknown[0]!r}: no such model in the spec; its models are {names}.",
                path=_display(self.path),
            )
        return [m for m in self.models if m.name in only]

    def cache_key(self, ms: ModelSpec, data_hash: str) -> str:
        """Hash of (model entry, data hash, label/weight columns, seed, softbayes version)."""
        payload = {
            "entry": ms.entry(),
            "data_hash": data_hash,
            "labels": list(self.data.labels),
            "weights": self.data.weights if ms.likelihood in WEIGHTED_FAMILIES else None,
            "seed": self.seed,
            "version": __version__,
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def _blame(ms: ModelSpec, message: str) -> tuple:
    low = message.lower()
    base = ("models", ms.index)
    if low.startswith("prior") or "priors:" in low:
        for term in ms.priors:
            if repr(term) in message:
                return (*base, "priors", term)
        return (*base, "priors")
    if "threshold" in low or "squeeze" in low or "phi_formula" in low:
        return (*base, "options")
    if "weights" in low:
        return ("data", "weights")
    if "likelihood" in low and "formula" not in low:
        return (*base, "likelihood")
    return (*base, "formula")


def _cols(cols, k=15):
    return ", ".join(cols[:k]) + (", ..." if len(cols) > k else "")


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


SPEC_NAME_MAX = 100
# Path separators and glob characters; a name holding one could name another folder.
_NAME_FORBIDDEN = re.compile(r"[/\\*?\[\]]")
# Control, format (bidi overrides), line/paragraph separators, surrogates of undecodable bytes.
_NAME_BAD_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")


def check_spec_name(name: str, path) -> str:
    """``name`` if it may name the report folder ``reports/<name>/``, else :class:`SpecError`.

    A spec's name is its file name without ``.toml``. It is refused (never rewritten, so two
    specs never end up sharing one report folder) if it is empty, ``.`` or ``..``, starts with
    a dot (hidden names belong to softbayes: the fit cache, locks, temporary folders), holds a
    path separator, a glob character (``* ? [ ]``), a control or invisible formatting
    character, or is longer than ``SPEC_NAME_MAX`` characters.
    """
    import unicodedata

    why = None
    if name in ("", ".", ".."):
        why = "is empty, '.' or '..'"
    elif name.startswith("."):
        why = "starts with a dot (hidden names are softbayes's own: cache, locks, temporary " \
              "folders)"
    elif len(name) > SPEC_NAME_MAX:
        why = f"is {len(name)} characters long (at most {SPEC_NAME_MAX})"
    elif any(unicodedata.category(ch) in _NAME_BAD_CATEGORIES for ch in name):
        why = "holds a control or invisible formatting character"
    elif m := _NAME_FORBIDDEN.search(name):
        why = f"holds {m.group()!r} (path separators and glob characters are refused)"
    if why is None:
        return name
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_-")[:SPEC_NAME_MAX] or "analysis"
    raise SpecError(f"the spec's name {name!r} (its file name without .toml, which names the "
                    f"report folder reports/<name>/) {why}. Rename the file, e.g. to "
                    f"{slug}.toml.", path=_display(Path(path)))


def path_problem(path) -> str | None:
    """Why the operating system cannot use ``path`` as a file name (None if it can).

    A NUL byte, a name longer than the file system allows (ENAMETOOLONG), a folder on the
    way that is a file (ENOTDIR), a permission or a symlink loop: the reason as a short text,
    so that callers can name the file in their message instead of letting ``os.stat``'s
    OSError or ValueError escape. A path that merely does not exist is no problem here.
    """
    import os

    text = os.fspath(path)
    if "\0" in str(text):
        return "the path holds a NUL byte"
    try:
        os.stat(text)
    except FileNotFoundError:
        return None
    except OSError as err:
        return err.strerror or str(err)
    except ValueError as err:  # other paths the OS layer rejects
        return str(err)
    return None


def _inside(folder: Path, rel: str, err) -> Path:
    """``folder / rel``, refusing absolute paths and paths that leave ``folder``."""
    if "\0" in rel:  # before resolve(), which raises a bare ValueError on it
        raise err(f"data path {rel!r}: the path holds a NUL byte.")
    p = Path(rel)
    if p.is_absolute() or rel.startswith("~"):
        raise err(f"data path {rel!r} must be relative to the spec's folder (absolute paths "
                  "are refused).")
    base = folder.resolve()
    target = (base / p).resolve()
    if not target.is_relative_to(base):
        raise err(f"data path {rel!r} points outside the spec's folder {base}; paths outside "
                  "it are refused (copy or link the data next to the spec).")
    # Only now that the path is known to stay inside the folder: ask the OS about it.
    why = path_problem(target)
    if why:
        raise err(f"data path {rel!r}: {why}.")
    if target.is_dir():
        raise err(f"data path {rel!r} is a folder, not a data file ({target}).")
    if not target.is_file():
        raise err(f"data file {rel!r} not found (looked for {target}).")
    return target


#: The CSV separators a spec (``[data] sep``) or :func:`read_table` accepts. pandas reads any
#: other separator longer than one character as a regular expression with its Python engine,
#: and a pattern such as ``(a+)+b`` backtracks for ever on a long line; these are read by
#: pandas' C engine in linear time (``\s+``: runs of spaces and tabs, handled by the C engine
#: as whitespace-delimited input, not as a regex).
SEPARATORS = (",", ";", "\t", "|", " ", ":", r"\s+")


_SEP_HINT = (f"use one of {', '.join(repr(s) for s in SEPARATORS)} (other separators would be "
             "read as regular expressions, which can hang on hostile input)")


def _sep_problem(sep) -> str | None:
    return None if sep in SEPARATORS else f"separator {sep!r} is not allowed; {_SEP_HINT}."


def _duplicates(names) -> list[str]:
    """Names that occur more than once (blank header cells, which pandas names
    ``Unnamed: i``, are not names and are left out)."""
    seen: dict[str, int] = {}
    for n in names:
        if isinstance(n, str) and n.strip():
            seen[n] = seen.get(n, 0) + 1
    return [n for n, k in seen.items() if k > 1]


def _header_names(file: Path, name: str, sep: str) -> list:
    """The column names as written in the file, before pandas renames duplicates (``x.1``)."""
    if name.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        return list(pq.read_schema(file).names)
    head = pd.read_csv(file, sep=sep, engine="c", header=None, nrows=1, dtype=str,
                       keep_default_na=False)
    return head.iloc[0].tolist() if len(head) else []


def read_table(file: Path, *, sep: str = ",", on_error=None) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.tsv``, ``.txt``, optionally gzipped) or Parquet file.

    Parameters
    ----------
    file : Path
        The file; its extension chooses the format.
    sep : str, default ","
        CSV separator, one of :data:`SEPARATORS` (``.tsv`` files always use a tab).
    on_error : callable, optional
        ``message -> exception`` to raise (default :class:`ValueError`).

    Raises
    ------
    ValueError
        (or what ``on_error`` makes) naming the file: unreadable, unknown format, a separator
        outside :data:`SEPARATORS`, or a column name used twice in the header.
    """
    on_error = on_error or (lambda msg: ValueError(msg))
    name = file.name.lower()
    why = path_problem(file) or _sep_problem(sep)
    if why:
        raise on_error(f"data file {file.name!r}: {why}")
    parquet = name.endswith((".parquet", ".pq"))
    if not parquet and not name.endswith((".tsv", ".tsv.gz", ".csv", ".csv.gz", ".txt")):
        raise on_error(f"data file {file.name!r}: unknown format; use .csv, .tsv or .parquet.")
    if name.endswith((".tsv", ".tsv.gz")):
        sep = "\t"
    try:
        if parquet:
            names = _header_names(file, name, sep)  # before pandas, which fails on duplicates
            df = None if _duplicates(names) else pd.read_parquet(file)
        else:
            # The C engine never treats the separator as a regular expression.
            df = pd.read_csv(file, sep=sep, engine="c")
            names = _header_names(file, name, sep) if df.shape[1] else []
    except ImportError as err:
        raise on_error(f"cannot read {file.name}: {err}") from None
    except Exception as err:
        raise on_error(f"cannot read {file.name}: {type(err).__name__}: {err}") from None
    dup = _duplicates(names) or (_duplicates(map(str, df.columns)) if df is not None else [])
    if dup:
        where = "; ".join(
            f"{d!r} in columns {', '.join(str(i + 1) for i, n in enumerate(names) if n == d)}"
            for d in dup)
        raise on_error(f"data file {file.name!r}: column name(s) {dup} occur more than once in "
                       f"the header ({where}); column names must be unique: rename or drop the "
                       "duplicates.")
    return df


# --------------------------------------------------------------------------- validation


class _Checker:
    def __init__(self, path: Path, text: str):
        self.path = path
        self.index = _LineIndex(text)

    def fail(self, message, key_path):
        raise SpecError(message, key=_key_text(key_path), line=self.index.find(key_path),
                        path=_display(self.path))

    def table(self, raw, key_path, allowed, required=()):
        if not isinstance(raw, dict):
            self.fail(f"expected a table, got {_tname(raw)}.", key_path)
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
        if key not in raw:
            return default
        v = raw[key]
        ok = {
            "str": isinstance(v, str),
            "int": isinstance(v, int) and not isinstance(v, bool),
            "float": isinstance(v, int | float) and not isinstance(v, bool),
            "bool": isinstance(v, bool),
        }[kind]
        if not ok:
            self.fail(f"expected {_KIND_WORDS[kind]}, got {_tname(v)} {v!r}.", (*key_path, key))
        if check is not None and not check(v):
            self.fail(f"invalid value {v!r}{': ' + hint if hint else '.'}", (*key_path, key))
        return float(v) if kind == "float" else v


_KIND_WORDS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}


def _tname(v):
    return {
        str: "a string", int: "an integer", float: "a number", bool: "a boolean",
        list: "an array", dict: "a table",
    }.get(type(v), type(v).__name__)


SAMPLER_KEYS = ("draws", "tune", "chains", "sampler", "target_accept", "cores")


def _sampler(c: _Checker, raw, key_path, base: SamplerSettings) -> SamplerSettings:
    c.table(raw, key_path, SAMPLER_KEYS)
    return SamplerSettings(
        draws=c.typed(raw, "draws", key_path, "int", base.draws, lambda v: v > 0,
                      "must be positive"),
        tune=c.typed(raw, "tune", key_path, "int", base.tune, lambda v: v >= 0,
                     "must be 0 or more"),
        chains=c.typed(raw, "chains", key_path, "int", base.chains, lambda v: v >= 1,
                       "must be at least 1"),
        sampler=c.typed(raw, "sampler", key_path, "str", base.sampler,
                        lambda v: v in SAMPLERS, f"choose one of {list(SAMPLERS)}"),
        target_accept=c.typed(raw, "target_accept", key_path, "float", base.target_accept,
                              lambda v: 0 < v < 1, "must lie strictly between 0 and 1"),
        cores=c.typed(raw, "cores", key_path, "int", base.cores, lambda v: v >= 1,
                      "must be at least 1"),
    )


def _formula_check(formula: str, *, rhs_only: bool = False) -> str | None:
    """Why a spec's formula is refused by the sandbox (None if it may be evaluated)."""
    try:
        check_formula(formula, rhs_only=rhs_only)
    except FormulaError as err:
        return str(err)
    return None


def _quote(col: str) -> str:
    return col if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", col) else f"`{col}`"


def _full_formula(c: _Checker, formula: str, labels: tuple, key_path) -> str:
    from softbayes.terms.design import parse_formula

    if formula.strip().startswith("~"):
        rhs = formula.strip()[1:].strip()
        if not rhs:
            c.fail("the formula has no right-hand side; use '~ 1' for an intercept only.",
                   key_path)
        lhs = _quote(labels[0]) if len(labels) == 1 else (
            "c(" + ", ".join(_quote(x) for x in labels) + ")")
        return f"{lhs} ~ {rhs}"
    try:
        cols, _, _ = parse_formula(formula)
    except ValueError as err:
        c.fail(str(err), key_path)
    if tuple(cols) != tuple(labels):
        c.fail(f"the formula's left-hand side names {cols} but [data] labels is "
               f"{list(labels)}; write the formula as '~ ...' to use the spec's labels.",
               key_path)
    return formula


def _priors(c: _Checker, raw, key_path, model: str = "") -> dict:
    from softbayes.terms.priors import PriorError, validate_prior

    where = f"model {model!r}: " if model else ""
    if not isinstance(raw, dict):
        c.fail(f"expected a table of term = {{ dist = ..., ... }}, got {_tname(raw)}.", key_path)
    out = {}
    for term, spec in raw.items():
        kp = (*key_path, term)
        if not isinstance(spec, dict):
            c.fail(f"prior of {term!r}: expected a table such as {{ dist = \"Normal\", mu = 0, "
                   f"sigma = 1 }}, got {_tname(spec)}.", kp)
        if not isinstance(spec.get("dist"), str):
            c.fail(f"prior of {term!r}: missing 'dist' (a PyMC distribution name such as "
                   "\"Normal\").", kp)
        for k, v in spec.items():
            if k == "dist":
                continue
            vals = v if isinstance(v, list) else [v]
            if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in vals):
                c.fail(f"prior of {term!r}: parameter {k!r} must be a number or an array of "
                       f"numbers, got {v!r}.", (*kp, k))
        # Names, finiteness and signs now, so that `softbayes check` refuses what would
        # otherwise only fail after sampling.
        try:
            validate_prior(spec["dist"], {k: v for k, v in spec.items() if k != "dist"})
        except PriorError as err:
            c.fail(f"{where}prior of {term!r}: {err}", (*kp, err.param or "dist"))
        out[term] = dict(spec)
    return out


def load_spec(path) -> Spec:
    """Read and validate a spec file (structure and types; data checks: :func:`check_spec`).

    Raises
    ------
    SpecError
        With the file, line and key of the problem.
    """
    path = Path(path)
    why = path_problem(path)
    if why:
        raise SpecError(f"file {str(path)!r}: {why}.")
    if not path.is_file():
        raise SpecError(f"spec file not found: {path}")
    check_spec_name(path.stem, path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot read the spec: {err}", path=_display(path)) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        msg = getattr(err, "msg", None) or str(err)
        line = getattr(err, "lineno", None)
        if line is None:
            m = re.search(r"at line (\d+)", str(err))
            line = int(m.group(1)) if m else None
        raise SpecError(f"not valid TOML: {msg}", line=line, path=_display(path)) from None
    c = _Checker(path, text)
    c.table(raw, (), ("title", "description", "seed", "data", "sampler", "compare", "models"),
            required=("data", "models"))
    title = c.typed(raw, "title", (), "str", path.stem)
    description = c.typed(raw, "description", (), "str", "")
    seed = c.typed(raw, "seed", (), "int", 1, lambda v: 0 <= v < 2**32,
                   "must be between 0 and 2**32 - 1")

    # [data]
    d = c.table(raw["data"], ("data",), ("path", "builtin", "labels", "weights", "sep"),
                required=("labels",))
    if ("path" in d) == ("builtin" in d):
        c.fail("give exactly one of 'path' (a CSV/Parquet file next to the spec) and "
               "'builtin' (a built-in data set name).", ("data",))
    labels = d["labels"]
    if isinstance(labels, str):
        labels = (labels,)
    elif isinstance(labels, list) and len(labels) >= 2 and all(isinstance(x, str) for x in labels):
        labels = tuple(labels)
    else:
        c.fail(f"expected a column name or an array of at least 2 column names, got "
               f"{_tname(labels)} {labels!r}.", ("data", "labels"))
    if len(set(labels)) != len(labels):
        c.fail("a label column is named twice.", ("data", "labels"))
    builtin = c.typed(d, "builtin", ("data",), "str")
    if builtin is not None:
        from softbayes.data.datasets import BUILTIN_DATASETS

        if builtin not in BUILTIN_DATASETS:
            c.fail(f"unknown built-in data set {builtin!r}; available: "
                   f"{sorted(BUILTIN_DATASETS)}.", ("data", "builtin"))
    data = DataSpec(
        labels=labels,
        path=c.typed(d, "path", ("data",), "str"),
        builtin=builtin,
        weights=c.typed(d, "weights", ("data",), "str"),
        sep=c.typed(d, "sep", ("data",), "str", ",", lambda v: v in SEPARATORS,
                    _SEP_HINT),
    )

    sampler = _sampler(c, raw.get("sampler", {}), ("sampler",), SamplerSettings())

    cmp_raw = c.table(raw.get("compare", {}), ("compare",),
                      ("scores", "kfold_fallback", "loo", "k", "n_bins", "method"))
    scores = cmp_raw.get("scores", ["log", "brier"])
    if (not isinstance(scores, list) or not scores
            or not all(s in ("log", "brier") for s in scores)):
        c.fail(f"expected a non-empty array of \"log\" and/or \"brier\", got {scores!r}.",
               ("compare", "scores"))
    compare = CompareSettings(
        scores=tuple(scores),
        kfold_fallback=c.typed(cmp_raw, "kfold_fallback", ("compare",), "str", "all",
                               lambda v: v in ("all", "fit", "none"),
                               "choose \"all\", \"fit\" or \"none\""),
        loo=c.typed(cmp_raw, "loo", ("compare",), "str", "psis",
                    lambda v: v in ("psis", "kfold"), "choose \"psis\" or \"kfold\""),
        k=c.typed(cmp_raw, "k", ("compare",), "int", 10, lambda v: v >= 2, "must be >= 2"),
        n_bins=c.typed(cmp_raw, "n_bins", ("compare",), "int", 10, lambda v: v >= 2,
                       "must be >= 2"),
        method=c.typed(cmp_raw, "method", ("compare",), "str", "stacking",
                       lambda v: v in ("stacking", "BB-pseudo-BMA", "pseudo-BMA"),
                       "choose \"stacking\", \"BB-pseudo-BMA\" or \"pseudo-BMA\""),
    )

    # [[models]]
    models_raw = raw["models"]
    if not isinstance(models_raw, list) or not models_raw:
        c.fail("expected one or more [[models]] tables.", ("models",))
    models: list[ModelSpec] = []
    seen: dict[str, int] = {}
    for i, m in enumerate(models_raw):
        kp = ("models", i)
        c.table(m, kp, ("name", "likelihood", "formula", "description", "priors", "options",
                        "sampler"), required=("name", "likelihood", "formula"))
        name = c.typed(m, "name", kp, "str", check=lambda v: v.strip() != "",
                       hint="must not be empty")
        if name in seen:
            c.fail(f"model name {name!r} is used twice (also models[{seen[name] + 1}]).",
                   (*kp, "name"))
        seen[name] = i
        fam = c.typed(m, "likelihood", kp, "str")
        if fam not in FAMILY_NAMES:
            close = difflib.get_close_matches(fam, FAMILY_NAMES, n=1)
            c.fail(f"unknown likelihood {fam!r}; choose one of {', '.join(FAMILY_NAMES)}."
                   + (f" Did you mean {close[0]!r}?" if close else ""), (*kp, "likelihood"))
        if data.multiclass and fam != "soft_categorical":
            c.fail(f"[data] labels names {len(labels)} columns (K classes), which only the "
                   f"soft_categorical likelihood takes, not {fam!r}.", (*kp, "likelihood"))
        if not data.multiclass and fam == "soft_categorical":
            c.fail("soft_categorical needs K >= 2 label columns: set [data] labels = "
                   "[\"p_a\", \"p_b\", ...].", (*kp, "likelihood"))
        formula = c.typed(m, "formula", kp, "str")
        why = _formula_check(formula)
        if why:
            c.fail(why, (*kp, "formula"))
        formula = _full_formula(c, formula, labels, (*kp, "formula"))
        options = c.table(m.get("options", {}), (*kp, "options"),
                          ("squeeze", "threshold", "phi_formula"))
        for opt in options:
            if opt not in FAMILY_OPTIONS.get(fam, set()):
                c.fail(f"option {opt!r} does not apply to likelihood {fam!r} (squeeze and "
                       "phi_formula: beta; threshold: bernoulli).", (*kp, "options", opt))
        c.typed(options, "squeeze", (*kp, "options"), "bool")
        c.typed(options, "threshold", (*kp, "options"), "float", None, lambda v: 0 < v < 1,
                "must lie strictly between 0 and 1")
        phi = c.typed(options, "phi_formula", (*kp, "options"), "str")
        if phi is not None:
            why = _formula_check(phi, rhs_only=True)
            if why:
                c.fail(why, (*kp, "options", "phi_formula"))
        models.append(ModelSpec(
            name=name,
            likelihood=fam,
            formula=formula,
            index=i,
            priors=_priors(c, m.get("priors", {}), (*kp, "priors"), name),
            options=dict(options),
            sampler=_sampler(c, m.get("sampler", {}), (*kp, "sampler"), sampler),
            description=c.typed(m, "description", kp, "str", ""),
        ))

    spec = Spec(
        name=path.stem, path=path, title=title, description=description, seed=seed, data=data,
        sampler=sampler, compare=compare, models=models, text=text,
    )
    spec._index = c.index
    return spec


def check_spec(spec: Spec, only=None):
    """Data-dependent checks: load the data and build every model (nothing is fitted).

    Returns ``(data frame, {name: (ModelSpec, Model, warnings)})``.
    """
    data = spec.load_data()
    return data, spec.build_models(data, only)
