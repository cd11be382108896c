"""The validated spec as dataclasses: data, sampler and comparison settings, candidate models."""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from softbayes._version import __version__
from softbayes.app.spec.data_files import data_path_inside, read_table
from softbayes.app.spec.errors import LineIndex, SpecError, display_path, key_text
from softbayes.data.datasets import load_dataset
from softbayes.model import Model
from softbayes.terms.families import family_class, family_names

__all__ = [
    "CompareSettings",
    "ComputeSettings",
    "DataSpec",
    "ModelSpec",
    "SamplerSettings",
    "Spec",
    "model_option_names",
]


def model_option_names() -> tuple[str, ...]:
    """Every option some family's model takes (``[models.options]`` keys), registry order,
    and ``calibrate`` (an option of the fit, :meth:`softbayes.Model.fit`)."""
    names: dict[str, None] = {}
    for fam in family_names():
        names.update(dict.fromkeys(family_class(fam).model_options()))
    return (*names, "calibrate")


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
        """Keyword arguments of :meth:`softbayes.Model.fit`."""
        kw = {"draws": self.draws, "tune": self.tune, "chains": self.chains,
              "sampler": self.sampler}
        if self.cores is not None:
            kw["cores"] = self.cores
        if self.target_accept is not None:
            kw["target_accept"] = self.target_accept
        return kw

    def describe(self) -> str:
        """One line for progress messages: chains, draws, tuning, sampler."""
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
    kfold_group: str | None = None

    def compare_kwargs(self) -> dict:
        """Keyword arguments of :func:`softbayes.compare` (``"none"`` -> ``None``)."""
        return {
            "scores": tuple(self.scores),
            "kfold_fallback": None if self.kfold_fallback == "none" else self.kfold_fallback,
            "loo": self.loo,
            "k": self.k,
            "kfold_group": self.kfold_group,
            "n_bins": self.n_bins,
            "method": self.method,
        }


@dataclass(frozen=True)
class ComputeSettings:
    """Where the fits run (``[compute]``): ``workers`` local processes (None: serially).

    A scheduler address is never read from a spec (Dask's protocol unpickles what it
    receives, and a spec is untrusted): it comes from the command line or Python only.
    """

    workers: int | None = None


@dataclass(frozen=True)
class DataSpec:
    """Where the data is and which columns are labels and weights (``[data]``)."""

    labels: tuple[str, ...]
    path: str | None = None
    builtin: str | None = None
    weights: str | None = None
    sep: str = ","
    trials: str | None = None

    def response(self) -> str:
        """The left-hand side of the models' formulas: the label column(s), or
        ``p(labels, trials)`` when ``trials`` names the trials column (the count families
        model the counts, the others see the proportions labels / trials)."""
        names = [c if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", c) else f"`{c}`"
                 for c in (*self.labels, *([self.trials] if self.trials else []))]
        if self.trials:
            return f"p({names[0]}, {names[1]})"
        return names[0] if len(names) == 1 else "c(" + ", ".join(names) + ")"

    @property
    def multiclass(self) -> bool:
        """Several label columns: one probability vector per row."""
        return len(self.labels) > 1

    def describe(self) -> str:
        """``built-in data set 'x'`` or ``file path``."""
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
        """``models[i]``, counting from 1, as error messages name the table."""
        return f"models[{self.index + 1}]"

    @property
    def uses_weights(self) -> bool:
        """Whether the family takes row weights (then ``[data] weights`` applies)."""
        return family_class(self.likelihood).supports_weights

    def fit_kwargs(self) -> dict:
        """Keyword arguments of :meth:`softbayes.Model.fit`: the sampler's and
        ``calibrate`` (``[models.options]``)."""
        kw = self.sampler.fit_kwargs()
        if self.options.get("calibrate") is not None:
            kw["calibrate"] = self.options["calibrate"]
        return kw

    def model_kwargs(self, data_spec: DataSpec) -> dict:
        """Keyword arguments of :class:`softbayes.Model` (besides formula and data)."""
        kw: dict[str, Any] = {"likelihood": self.likelihood, "priors": dict(self.priors)}
        for opt in family_class(self.likelihood).model_options():
            if opt in self.options:
                kw[opt] = self.options[opt]
        if data_spec.weights and self.uses_weights:
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
    """A validated analysis spec; see :mod:`softbayes.app.spec` for the format.

    ``line_index`` locates the spec's keys in ``text`` for error messages.
    """

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
    line_index: LineIndex | None = field(repr=False, default=None)
    compute: ComputeSettings = field(default_factory=ComputeSettings)

    # -- errors -----------------------------------------------------------------------------
    def error(self, message: str, path: tuple) -> SpecError:
        """A :class:`SpecError` naming this spec's file and the line of key ``path``."""
        line = self.line_index.find(path) if self.line_index else None
        return SpecError(message, key=key_text(path), line=line, path=display_path(self.path))

    @property
    def folder(self) -> Path:
        """The folder of the spec file (data paths are relative to it)."""
        return self.path.parent

    # -- data -------------------------------------------------------------------------------
    def data_file(self) -> Path | None:
        """The checked data file (None for a built-in data set)."""
        if self.data.path is None:
            return None
        return data_path_inside(self.folder, self.data.path,
                                lambda msg: self.error(msg, ("data", "path")))

    def load_data(self) -> pd.DataFrame:
        """The data frame (checked: label and weight columns present)."""
        if self.data.builtin is not None:
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
        if self.data.trials is not None and self.data.trials not in cols:
            raise self.error(
                f"trials column {self.data.trials!r} not in the data (columns: {_cols(cols)}).",
                ("data", "trials"),
            )
        return df

    # -- models -----------------------------------------------------------------------------
    def build_models(self, data: pd.DataFrame, only=None) -> dict:
        """``{name: (ModelSpec, softbayes.Model, [warnings])}``; errors name the key."""
        out = {}
        for ms in self.select(only):
            kw = ms.model_kwargs(self.data)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    model = Model(ms.formula, data, untrusted=True, **kw)
                except (ValueError, TypeError, KeyError) as err:
                    raise self.error(f"model {ms.name!r}: {err}",
                                     _blame(ms, str(err))) from None
            msgs = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
            out[ms.name] = (ms, model, msgs)
        return out

    def select(self, only=None) -> list[ModelSpec]:
        """The models named in ``only`` (all of them if it is empty), in spec order."""
        if not only:
            return list(self.models)
        names = [m.name for m in self.models]
        unknown = [n for n in only if n not in names]
        if unknown:
            raise SpecError(
                f"--only {unknown[0]!r}: no such model in the spec; its models are {names}.",
                path=display_path(self.path),
            )
        return [m for m in self.models if m.name in only]

    def cache_key(self, ms: ModelSpec, data_hash: str) -> str:
        """Hash of (model entry, data hash, label/weight columns, seed, softbayes version)."""
        payload = {
            "entry": ms.entry(),
            "data_hash": data_hash,
            "labels": list(self.data.labels),
            "weights": self.data.weights if ms.uses_weights else None,
            "seed": self.seed,
            "version": __version__,
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def _blame(ms: ModelSpec, message: str) -> tuple:
    """The key a model's construction error is most likely about."""
    low = message.lower()
    base = ("models", ms.index)
    if low.startswith("prior") or "priors:" in low:
        for term in ms.priors:
            if repr(term) in message:
                return (*base, "priors", term)
        return (*base, "priors")
    if any(opt in low for opt in model_option_names()):
        return (*base, "options")
    if "weights" in low:
        return ("data", "weights")
    if "trials" in low or "p(k, m)" in low:
        return ("data", "trials")
    if "likelihood" in low and "formula" not in low:
        return (*base, "likelihood")
    return (*base, "formula")


def _cols(cols, k=15):
    return ", ".join(cols[:k]) + (", ..." if len(cols) > k else "")
