"""Readers of a spec's sections (``[data]``, ``[sampler]``, ``[compare]``, ``[[models]]``),
each checking its keys and building its dataclass."""

from __future__ import annotations

import difflib

from softbayes.app.spec.checker import Checker, type_name
from softbayes.app.spec.data_files import SEPARATOR_HINT, SEPARATORS
from softbayes.app.spec.schema import (
    CompareSettings,
    ComputeSettings,
    DataSpec,
    ModelSpec,
    SamplerSettings,
    model_option_names,
)
from softbayes.backend import SAMPLERS
from softbayes.backend.calibration_math import CALIBRATIONS, calibratable_families
from softbayes.backend.executor import MAX_WORKERS
from softbayes.data.datasets import BUILTIN_DATASETS
from softbayes.terms.design import parse_response
from softbayes.terms.families import family_class, family_names
from softbayes.terms.priors import PriorError, validate_prior
from softbayes.terms.sandbox import FormulaError, check_formula

__all__ = [
    "SAMPLER_KEYS",
    "TOP_LEVEL_KEYS",
    "read_compare",
    "read_compute",
    "read_data",
    "read_models",
    "read_priors",
    "read_sampler",
]

SAMPLER_KEYS = ("draws", "tune", "chains", "sampler", "target_accept", "cores")
TOP_LEVEL_KEYS = ("title", "description", "seed", "data", "sampler", "compare", "compute",
                  "models")
# keys that would name a Dask scheduler: refused with the reason, not as unknown keys
_SCHEDULER_KEYS = ("scheduler", "address", "scheduler_address", "client")
_MODEL_KEYS = ("name", "likelihood", "formula", "description", "priors", "options", "sampler")

# How a family option's value is checked here, with the key's line in the message: option ->
# (kind, check, hint). Options whose name ends in "_formula" are right-hand-side formulas,
# checked by the sandbox as well; options not listed are checked by their family.
_OPTION_TYPES = {
    "squeeze": ("bool", None, ""),
    "threshold": ("float", lambda v: 0 < v < 1, "must lie strictly between 0 and 1"),
    "phi_formula": ("str", None, ""),
}


def read_sampler(c: Checker, raw, key_path, base: SamplerSettings) -> SamplerSettings:
    """``[sampler]`` (or ``[models.sampler]``): keys missing from ``raw`` come from ``base``."""
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


def _labels(c: Checker, labels) -> tuple[str, ...]:
    if isinstance(labels, str):
        labels = (labels,)
    elif isinstance(labels, list) and len(labels) >= 2 and all(isinstance(x, str) for x in labels):
        labels = tuple(labels)
    else:
        c.fail(f"expected a column name or an array of at least 2 column names, got "
               f"{type_name(labels)} {labels!r}.", ("data", "labels"))
    if len(set(labels)) != len(labels):
        c.fail("a label column is named twice.", ("data", "labels"))
    return labels


def read_data(c: Checker, raw) -> DataSpec:
    """``[data]``: exactly one of ``path`` and ``builtin``, the label and weight columns."""
    d = c.table(raw, ("data",), ("path", "builtin", "labels", "weights", "sep", "trials"),
                required=("labels",))
    if ("path" in d) == ("builtin" in d):
        c.fail("give exactly one of 'path' (a CSV/Parquet file next to the spec) and "
               "'builtin' (a built-in data set name).", ("data",))
    labels = _labels(c, d["labels"])
    trials = c.typed(d, "trials", ("data",), "str", None,
                     lambda v: v.strip() != "" and v not in labels,
                     "must name the column of trials m, not a label column")
    if trials is not None and len(labels) > 1:
        c.fail("trials (counts k of m trials) takes one label column of counts k, not "
               f"{len(labels)}.", ("data", "trials"))
    builtin = c.typed(d, "builtin", ("data",), "str")
    if builtin is not None and builtin not in BUILTIN_DATASETS:
        c.fail(f"unknown built-in data set {builtin!r}; available: "
               f"{sorted(BUILTIN_DATASETS)}.", ("data", "builtin"))
    return DataSpec(
        labels=labels,
        path=c.typed(d, "path", ("data",), "str"),
        builtin=builtin,
        weights=c.typed(d, "weights", ("data",), "str"),
        sep=c.typed(d, "sep", ("data",), "str", ",", lambda v: v in SEPARATORS, SEPARATOR_HINT),
        trials=trials,
    )


def read_compare(c: Checker, raw) -> CompareSettings:
    """``[compare]``: the options of :func:`softbayes.compare`."""
    kp = ("compare",)
    cmp_raw = c.table(raw, kp, ("scores", "kfold_fallback", "loo", "k", "n_bins", "method",
                                "kfold_group"))
    scores = cmp_raw.get("scores", ["log", "brier"])
    if (not isinstance(scores, list) or not scores
            or not all(s in ("log", "brier") for s in scores)):
        c.fail(f"expected a non-empty array of \"log\" and/or \"brier\", got {scores!r}.",
               ("compare", "scores"))
    return CompareSettings(
        scores=tuple(scores),
        kfold_fallback=c.typed(cmp_raw, "kfold_fallback", kp, "str", "all",
                               lambda v: v in ("all", "fit", "none"),
                               "choose \"all\", \"fit\" or \"none\""),
        loo=c.typed(cmp_raw, "loo", kp, "str", "psis",
                    lambda v: v in ("psis", "kfold"), "choose \"psis\" or \"kfold\""),
        k=c.typed(cmp_raw, "k", kp, "int", 10, lambda v: v >= 2, "must be >= 2"),
        kfold_group=c.typed(cmp_raw, "kfold_group", kp, "str", None,
                            lambda v: 0 < len(v) <= 200 and v.isprintable(),
                            "a column name of the data (held out one group at a time)"),
        n_bins=c.typed(cmp_raw, "n_bins", kp, "int", 10, lambda v: v >= 2, "must be >= 2"),
        method=c.typed(cmp_raw, "method", kp, "str", "stacking",
                       lambda v: v in ("stacking", "BB-pseudo-BMA", "pseudo-BMA"),
                       "choose \"stacking\", \"BB-pseudo-BMA\" or \"pseudo-BMA\""),
    )


def read_compute(c: Checker, raw) -> ComputeSettings:
    """``[compute]``: how many local worker processes fit the models (only that)."""
    kp = ("compute",)
    if isinstance(raw, dict):
        for key in _SCHEDULER_KEYS:
            if key in raw:
                c.fail("a Dask scheduler address is not read from a spec: Dask's protocol "
                       "unpickles what it receives, and a spec is untrusted input. Give it "
                       "on the command line (softbayes run SPEC --scheduler ADDRESS) or in "
                       "Python (client=); a spec may set only [compute] workers.",
                       (*kp, key))
    c.table(raw, kp, ("workers",))
    return ComputeSettings(
        workers=c.typed(raw, "workers", kp, "int", None, lambda v: 1 <= v <= MAX_WORKERS,
                        f"must be from 1 to {MAX_WORKERS} (local worker processes)"),
    )


def _formula_check(formula: str, *, rhs_only: bool = False) -> str | None:
    """Why a spec's formula is refused by the sandbox (None if it may be evaluated)."""
    try:
        check_formula(formula, rhs_only=rhs_only)
    except FormulaError as err:
        return str(err)
    return None


def _full_formula(c: Checker, formula: str, data: DataSpec, key_path) -> str:
    """The formula with its left-hand side: ``~ x`` gets the spec's labels (``p(k, m)``
    with ``[data] trials``); a written one must name exactly them."""
    if formula.strip().startswith("~"):
        rhs = formula.strip()[1:].strip()
        if not rhs:
            c.fail("the formula has no right-hand side; use '~ 1' for an intercept only.",
                   key_path)
        return f"{data.response()} ~ {rhs}"
    try:
        response, _ = parse_response(formula)
    except ValueError as err:
        c.fail(str(err), key_path)
    if tuple(response.columns) != tuple(data.labels) or response.trials != data.trials:
        c.fail(f"the formula's left-hand side is {response.text()} but [data] gives "
               f"{data.response()}; write the formula as '~ ...' to use the spec's labels.",
               key_path)
    return formula


def _prior_entry(c: Checker, term, spec, kp, where: str) -> dict:
    """One ``term = { dist = ..., ... }`` entry, checked (names, numbers, signs)."""
    if not isinstance(spec, dict):
        c.fail(f"prior of {term!r}: expected a table such as {{ dist = \"Normal\", mu = 0, "
               f"sigma = 1 }}, got {type_name(spec)}.", kp)
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
    return dict(spec)


def read_priors(c: Checker, raw, key_path, model: str = "") -> dict:
    """``[models.priors]``: ``{term: {"dist": ..., parameter: number(s)}}``."""
    where = f"model {model!r}: " if model else ""
    if not isinstance(raw, dict):
        c.fail(f"expected a table of term = {{ dist = ..., ... }}, got {type_name(raw)}.",
               key_path)
    return {term: _prior_entry(c, term, spec, (*key_path, term), where)
            for term, spec in raw.items()}


def _and(words) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _read_likelihood(c: Checker, m, kp, data: DataSpec) -> str:
    """The family name, known to the registry and matching the number of label columns."""
    names = family_names()
    fam = c.typed(m, "likelihood", kp, "str")
    if fam not in names:
        close = difflib.get_close_matches(fam, names, n=1)
        c.fail(f"unknown likelihood {fam!r}; choose one of {', '.join(names)}."
               + (f" Did you mean {close[0]!r}?" if close else ""), (*kp, "likelihood"))
    multiclass = [n for n in names if family_class(n).multiclass]
    if data.multiclass and not family_class(fam).multiclass:
        c.fail(f"[data] labels names {len(data.labels)} columns (K classes), which only the "
               f"{' or '.join(multiclass)} likelihood takes, not {fam!r}.", (*kp, "likelihood"))
    if not data.multiclass and family_class(fam).multiclass:
        c.fail(f"{fam} needs K >= 2 label columns: set [data] labels = "
               "[\"p_a\", \"p_b\", ...].", (*kp, "likelihood"))
    if family_class(fam).takes_trials and data.trials is None:
        c.fail(f"{fam} models counts k of m trials: set [data] labels to the column of "
               "counts k and [data] trials = \"m\" to the column of trials.",
               (*kp, "likelihood"))
    return fam


def _read_options(c: Checker, m, kp, fam: str) -> dict:
    """``[models.options]``: only options of this family, each of the right type."""
    okp = (*kp, "options")
    options = c.table(m.get("options", {}), okp, model_option_names())
    takes = family_class(fam).model_options()
    calibrate = c.typed(options, "calibrate", okp, "str", None,
                        lambda v: v in CALIBRATIONS[1:],
                        f"choose one of {', '.join(map(repr, CALIBRATIONS[1:]))}")
    if calibrate is not None and not family_class(fam).calibratable:
        c.fail(f"calibrate applies to the {', '.join(calibratable_families())} families, "
               f"not {fam!r}.", (*okp, "calibrate"))
    for opt in options:
        if opt not in (*takes, "calibrate"):
            which = "; ".join(f"{_and(family_class(n).model_options())}: {n}"
                              for n in family_names() if family_class(n).model_options())
            c.fail(f"option {opt!r} does not apply to likelihood {fam!r} ({which}).",
                   (*okp, opt))
    for opt in takes:
        if opt not in _OPTION_TYPES:  # the family checks it when the model is built
            continue
        kind, check, hint = _OPTION_TYPES[opt]
        value = c.typed(options, opt, okp, kind, None, check, hint)
        if value is not None and opt.endswith("_formula"):
            why = _formula_check(value, rhs_only=True)
            if why:
                c.fail(why, (*okp, opt))
    return dict(options)


def _read_model(c: Checker, m, i: int, data: DataSpec, sampler: SamplerSettings,
                seen: dict) -> ModelSpec:
    """One ``[[models]]`` table (``seen``: names of the models before it -> index)."""
    kp = ("models", i)
    c.table(m, kp, _MODEL_KEYS, required=("name", "likelihood", "formula"))
    name = c.typed(m, "name", kp, "str", check=lambda v: v.strip() != "",
                   hint="must not be empty")
    if name in seen:
        c.fail(f"model name {name!r} is used twice (also models[{seen[name] + 1}]).",
               (*kp, "name"))
    seen[name] = i
    fam = _read_likelihood(c, m, kp, data)
    formula = c.typed(m, "formula", kp, "str")
    why = _formula_check(formula)
    if why:
        c.fail(why, (*kp, "formula"))
    formula = _full_formula(c, formula, data, (*kp, "formula"))
    options = _read_options(c, m, kp, fam)
    return ModelSpec(
        name=name,
        likelihood=fam,
        formula=formula,
        index=i,
        priors=read_priors(c, m.get("priors", {}), (*kp, "priors"), name),
        options=options,
        sampler=read_sampler(c, m.get("sampler", {}), (*kp, "sampler"), sampler),
        description=c.typed(m, "description", kp, "str", ""),
    )


def read_models(c: Checker, raw, data: DataSpec, sampler: SamplerSettings) -> list[ModelSpec]:
    """``[[models]]``: one or more candidate models with distinct names."""
    if not isinstance(raw, list) or not raw:
        c.fail("expected one or more [[models]] tables.", ("models",))
    seen: dict[str, int] = {}
    return [_read_model(c, m, i, data, sampler, seen) for i, m in enumerate(raw)]
