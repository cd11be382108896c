"""Formulas to design matrices (through formulae), with the state to rebuild them.

A formula is ``"<response> ~ <terms>"``. The response names the label column(s):

* one column for the binary families: ``"share ~ x + log(z)"``;
* ``c(col_1, ..., col_K)`` for ``soft_categorical``: ``"c(p_a, p_b, p_c) ~ x"`` (Bambi's
  multivariate-response syntax). The first column is the reference class.
* ``p(k, m)``: ``k`` successes of ``m`` trials (Bambi's binomial response;
  :mod:`softbayes.terms.response`), ``m`` a column or a positive whole number.

Column names that are not Python identifiers go in backticks: ``"`p yes` ~ `age (y)`"``.
The right-hand side is evaluated by formulae (Bambi's formula engine): numeric and
categorical predictors (strings, booleans, pandas categoricals, ``C(x)``), interactions
(``x:z``, ``x*z``), transformations (``log(x)``, ``np.log(x)``, ``scale(x)``,
``center(x)``, ``I(x**2)``, ``poly(x, 2)``, splines ...) and group-level terms ``(1|g)``,
``(x|g)``. Functions available besides formulae's own: the NumPy functions
``log, log1p, log2, log10, exp, expm1, sqrt, abs, square``, ``logit`` and ``expit``, and
``np.<f>`` for the NumPy functions of :data:`softbayes.terms.sandbox.SAFE_NUMPY` (``np`` is a frozen
set of those functions, not the numpy module); more through ``extra_namespace`` (in Python).
Every formula passes :func:`softbayes.terms.sandbox.check_formula` before it is evaluated.

Stateful transforms (``scale``, ``center``, ...) and categorical levels are fixed by the
training data: :class:`LinearDesign` keeps formulae's evaluated terms, and new data is
evaluated with them, so a design rebuilt from the same training data is the same design.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from types import MappingProxyType

import formulae
import numpy as np
import pandas as pd
from formulae.categorical import CategoricalBox
from formulae.environment import Environment
from formulae.model_description import model_description
from formulae.terms.terms import Intercept

from softbayes.terms.formulae_compat import group_index
from softbayes.terms.response import Response
from softbayes.terms.sandbox import check_formula, safe_namespace

__all__ = [
    "DEFAULT_NAMESPACE",
    "MAX_DESIGN_CELLS",
    "LinearDesign",
    "check_columns",
    "check_design_size",
    "check_predictor_types",
    "parse_formula",
    "parse_response",
    "rhs_variables",
]

# The functions every formula sees (read-only): the flat NumPy / SciPy functions and "np",
# a frozen object with only the allowed NumPy functions -- never the numpy module, whose
# attributes reach os (see softbayes.terms.sandbox).
DEFAULT_NAMESPACE = MappingProxyType(safe_namespace())

_NAME = r"(?:`[^`]+`|[A-Za-z_][A-Za-z0-9_.]*)"


def _unquote(name):
    name = name.strip()
    return name[1:-1] if name.startswith("`") and name.endswith("`") else name


def parse_response(formula) -> tuple[Response, str]:
    """Split ``"lhs ~ rhs"`` into ``(Response, rhs)`` (see :mod:`softbayes.terms.response`)."""
    if not isinstance(formula, str) or formula.count("~") != 1:
        raise ValueError(
            f"formula must be a string 'labels ~ predictors' with one '~', got {formula!r}. "
            "For K classes name the label columns as 'c(p_a, p_b, p_c) ~ x'."
        )
    lhs, rhs = (s.strip() for s in formula.split("~"))
    if not rhs:
        raise ValueError(f"formula {formula!r} has no right-hand side; use '~ 1' for none.")
    m = re.fullmatch(rf"c\(\s*({_NAME}(?:\s*,\s*{_NAME})*)\s*\)", lhs)
    if m:
        cols = [_unquote(c) for c in re.findall(_NAME, m.group(1))]
        if len(set(cols)) != len(cols):
            raise ValueError(f"formula {formula!r}: a label column is named twice.")
        return Response(tuple(cols), multiclass=True), rhs
    m = re.fullmatch(rf"p\(\s*({_NAME})\s*,\s*({_NAME}|[0-9]+)\s*\)", lhs)
    if m:
        k, trials = _unquote(m.group(1)), m.group(2)
        trials = int(trials) if trials.isdigit() else _unquote(trials)
        if trials == k or trials == 0:
            raise ValueError(f"formula {formula!r}: p(k, m) needs a counts column k and a "
                             "different trials column m (or a positive whole number).")
        return Response((k,), trials=trials), rhs
    if re.fullmatch(_NAME, lhs):
        return Response((_unquote(lhs),)), rhs
    raise ValueError(
        f"formula {formula!r}: the left-hand side must name the label column ('share ~ x'), "
        "the K probability columns ('c(p_a, p_b, p_c) ~ x') or counts of trials "
        "('p(k, m) ~ x'); transformations of the labels are not supported, transform the "
        "column first."
    )


def parse_formula(formula):
    """Split ``"lhs ~ rhs"`` into ``(label columns, rhs, multiclass_syntax)`` (for
    ``p(k, m)`` the label columns are ``[k]``; :func:`parse_response` gives the trials)."""
    response, rhs = parse_response(formula)
    return list(response.columns), rhs, response.multiclass


def strip_tilde(rhs):
    rhs = rhs.strip()
    return rhs[1:].strip() if rhs.startswith("~") else rhs


def rhs_variables(rhs) -> set[str]:
    """Names of the data columns a right-hand side uses."""
    try:
        names = set(model_description(strip_tilde(rhs)).var_names)
    except Exception as err:  # formulae's parse errors
        raise ValueError(f"Cannot parse formula {rhs!r}: {err}") from err
    return {n for n in names if n}  # formulae lists literals (the 2 of x**2) as ''"


@dataclass
class CommonTerm:
    """A population-level term: its name, design columns and columns' labels, the data
    columns it is categorical in, and all the names it reads (``var_names``)."""

    name: str
    labels: list
    columns: slice
    categorical_vars: set
    var_names: set = field(default_factory=set)


@dataclass
class GroupTerm:
    """A group-level term ``expr|factor`` and its formulae object."""

    name: str
    expr_labels: list
    groups: list
    term: object


#: Most cells a model's designs may have, estimated before formulae builds them: rows x
#: population-level columns, plus rows x groups for each group-level term (formulae builds
#: a dense indicator of the grouping factor before its sparse group design). 5e7 float64
#: cells are 400 MB, and formulae's peak while building them is about twice that. What
#: exceeds it in practice is a categorical predictor with thousands of levels, such as an
#: identifier in ``C(id)`` (an n x n design); such a factor belongs in a group-level term
#: ``(1|id)`` or out of the model. A data set that is this large on purpose can raise it from
#: Python: ``softbayes.terms.design.MAX_DESIGN_CELLS = ...``.
MAX_DESIGN_CELLS = 50_000_000


def _width(component, categoric=False) -> tuple[int, bool]:
    """Design columns of one evaluated formulae component (levels if categorical), and
    whether it is categorical."""
    x = getattr(component, "_intermediate_data", None)
    if categoric or getattr(component, "kind", None) == "categoric":
        if isinstance(x, CategoricalBox):
            if x.levels is not None:
                return max(len(x.levels), 1), True
            x = x.data
        s = x if isinstance(x, pd.Series) else pd.Series(np.asarray(x).ravel())
        if isinstance(s.dtype, pd.CategoricalDtype):
            return max(len(s.cat.categories), 1), True
        return max(int(s.nunique()), 1), True
    shape = np.shape(x)
    return (int(shape[1]) if len(shape) == 2 else 1), False


def _term_width(term, data, env, categoric=False) -> tuple[int, list]:
    """Columns of a formulae term (the product over its components, an upper bound for
    categorical ones) and ``[(component, levels)]`` of its categorical components."""
    if isinstance(term, Intercept):
        return 1, []
    term.set_type(data, env)  # evaluates each component as one column; builds no matrix
    width, cats = 1, []
    for comp in term.components:
        w, is_cat = _width(comp, categoric)
        width *= w
        if is_cat:
            cats.append((str(getattr(comp, "name", comp)), w))
    return width, cats


def check_design_size(rhs, data, env) -> None:
    """Refuse a formula whose design would exceed :data:`MAX_DESIGN_CELLS`, before building it.

    The estimate evaluates each term's components as formulae would (one column each: the
    levels of a categorical, the width of ``poly``/``bs``), never the design itself, so a
    refusal costs a few vectors of the data's length.

    Raises
    ------
    ValueError
        Naming the largest terms, their number of levels and the estimated size.
    """
    n = len(data)
    parts = []  # (cells, what, [(component, levels)], columns)
    try:
        # Warnings of the evaluation (log of a negative value, ...) come again, once, when
        # formulae builds the design.
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            desc = model_description(strip_tilde(rhs))
            for term in desc.common_terms:
                width, cats = _term_width(term, data, env)
                name = "Intercept" if isinstance(term, Intercept) else str(term.name)
                parts.append((n * width, f"term {name!r}", cats, width))
            for term in desc.group_terms:
                levels, _ = _term_width(term.factor, data, env, categoric=True)
                parts.append((n * levels, f"group-level term {str(term.name)!r}",
                              [(str(term.factor.name), levels)], levels))
    except Exception:  # formulae reports the problem itself when it builds the design
        return
    limit = MAX_DESIGN_CELLS
    cells = sum(p[0] for p in parts)
    if cells <= limit:
        return
    ranked = sorted(parts, key=lambda p: -p[0])
    worst = [p for p in ranked if p[3] > 1][:3] or ranked[:1]
    shown = "; ".join(
        f"{what}: about {width:,} column(s)"
        + (" from " + ", ".join(f"{c!r} with {k:,} levels" for c, k in cats) if cats else "")
        for _, what, cats, width in worst)
    if worst[0][1].startswith("group-level"):
        advice = ("A group-level term needs a rows x groups indicator while it is built: use "
                  "a coarser grouping or fewer rows")
    else:
        advice = ("A categorical predictor with that many levels is usually an identifier: "
                  "drop it, or model it as a group-level term such as '(1|id)'")
    raise ValueError(
        f"Formula {rhs!r}: its design would have about {cells:,} cells ({n:,} rows; about "
        f"{cells * 8 / 1e6:,.0f} MB as float64), more than softbayes.terms.design.MAX_DESIGN_CELLS "
        f"= {limit:,}. Largest: {shown}. {advice}; raise MAX_DESIGN_CELLS only if the data "
        "is that large on purpose."
    )


class LinearDesign:
    """One linear predictor: a right-hand side evaluated on the training data.

    Parameters
    ----------
    rhs : str
        The right-hand side (``"x + (1|g)"``; a leading ``~`` is allowed).
    data : pandas.DataFrame
        Training data (already checked: no missing values in the used columns).
    namespace : dict
        Functions available to the formula.

    Attributes
    ----------
    X : ndarray (n, p)
        Population-level design matrix (with the intercept column, uncentred).
    intercept : bool
        Whether column 0 is the intercept.
    means : ndarray (p,)
        Training means of the columns (0 for the intercept) used to centre them.
    common_terms, group_terms : list
    """

    def __init__(self, rhs, data, namespace):
        self.rhs = strip_tilde(rhs)
        # Whoever builds a design, the formula passes the sandbox first. Entries the caller
        # added to the namespace (and their attributes) are the caller's own Python code;
        # callers with formulas from files check them more strictly before (Model).
        own = {k for k, v in namespace.items() if DEFAULT_NAMESPACE.get(k) is not v}
        check_formula(self.rhs, columns=[str(c) for c in data.columns], extra_names=own,
                      attribute_roots=own, rhs_only=True)
        env = Environment([dict(namespace)])
        check_design_size(self.rhs, data, env)
        try:
            with np.errstate(all="ignore"):  # non-finite columns are reported below
                self._dm = formulae.design_matrices(self.rhs, data, na_action="error", env=env)
        except Exception as err:
            raise ValueError(
                f"Cannot evaluate formula {self.rhs!r} on the data: {type(err).__name__}: "
                f"{err}. Functions available: formulae's (C, scale, center, I, poly, ...) and "
                f"{sorted(namespace)}; pass others with extra_namespace=."
            ) from err
        n = len(data)
        self.n = n
        self.common_terms: list[CommonTerm] = []
        self.levels: dict = {}  # categorical variable -> formulae's levels (reference first)
        self.intercept = False
        common = self._dm.common
        if common is not None:
            self.X = np.asarray(common.design_matrix, dtype=float).reshape(n, -1)
            for name, term in common.terms.items():
                sl = common.slices[name]
                if name == "Intercept":
                    self.intercept = True
                    if sl.start != 0:  # pragma: no cover - formulae puts it first
                        raise ValueError("The intercept must be the first column.")
                    continue
                if sl.stop == sl.start:
                    raise ValueError(
                        f"Term {name!r} of {self.rhs!r} has no design column: a categorical "
                        "predictor needs at least 2 levels, and this one has a single level "
                        "in the data. Drop it from the formula."
                    )
                cat = set()
                for comp in getattr(term, "components", []):
                    if getattr(comp, "kind", None) == "categoric":
                        cat |= set(getattr(comp, "var_names", set()))
                        if getattr(comp, "levels", None) is not None and hasattr(comp, "name"):
                            self.levels.setdefault(comp.name, list(comp.levels))
                self.common_terms.append(
                    CommonTerm(name, list(term.labels), sl, cat, set(term.var_names)))
        else:
            self.X = np.zeros((n, 0))
        self.means = self.X.mean(axis=0) if n else np.zeros(self.X.shape[1])
        if self.intercept:
            self.means[0] = 0.0
        self.group_terms: list[GroupTerm] = []
        if self._dm.group is not None:
            for name, term in self._dm.group.terms.items():
                expr_labels = ["1"] if isinstance(term.expr, Intercept) else list(term.expr.labels)
                self.group_terms.append(GroupTerm(name, expr_labels, list(term.groups), term))
        self._check_finite(self.X, self.common_labels, data.index)
        self.group_parts_train = self.group_parts(data)

    @property
    def common_labels(self) -> list:
        labels = ["Intercept"] if self.intercept else []
        for t in self.common_terms:
            labels += t.labels
        return labels

    @staticmethod
    def _check_finite(x, labels, index):
        bad = ~np.isfinite(x)
        if bad.any():
            cols = [labels[j] for j in np.flatnonzero(bad.any(axis=0))]
            rows = np.asarray(index)[np.flatnonzero(bad.any(axis=1))]
            shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if rows.size > 5 else "")
            raise ValueError(
                f"Design column(s) {cols} are NaN or infinite in {rows.size} rows (index "
                f"{shown}), e.g. log of a value <= 0. Transform or filter those rows first."
            )

    # -- new data ---------------------------------------------------------------------------
    def common_matrix(self, data) -> np.ndarray:
        """Population-level design for ``data`` (training transforms and levels)."""
        n = len(data)
        if self._dm.common is None:
            return np.zeros((n, 0))
        try:
            with np.errstate(all="ignore"):
                x = self._dm.common.evaluate_new_data(data).design_matrix
        except Exception as err:
            raise ValueError(
                f"Cannot evaluate {self.rhs!r} on the new data: {type(err).__name__}: {err}. "
                "New data need every predictor column, and categorical predictors only "
                "levels seen in training."
            ) from err
        x = np.asarray(x, dtype=float).reshape(n, -1)
        self._check_finite(x, self.common_labels, data.index)
        return x

    def group_parts(self, data):
        """For each group-level term: ``(expr matrix (n, q), group index (n,), new levels)``.

        Group indices of unseen levels are ``>= len(term.groups)`` (one per new level).
        """
        parts = []
        n = len(data)
        for g in self.group_terms:
            term = g.term
            if isinstance(term.expr, Intercept):
                xe = np.ones((n, 1))
            else:
                xe = np.asarray(term.expr.eval_new_data(data), dtype=float).reshape(n, -1)
            idx, new = group_index(term, data)
            if (idx < 0).any():
                rows = np.asarray(data.index)[idx < 0][:5]
                raise ValueError(
                    f"Group-level term {g.name!r}: missing group values in rows {list(rows)}."
                )
            parts.append((xe, np.asarray(idx), list(new)))
        return parts


def check_predictor_types(data, columns, rhs=""):
    """Raise before any design matrix is built if a predictor column cannot be one.

    Complex numbers, dates, numbers stored with dtype object and columns mixing numbers with
    text get a ValueError naming the column and the conversion; so does a text column used
    in a population-level term with more distinct values than half the rows (as a
    categorical predictor it would need that many dummy columns: an n x n matrix for an
    identifier column of a large data set). Grouping factors (``(1|g)``) are not checked.
    """
    n = len(data)
    groups = set()
    for factor in re.findall(r"\|\s*([^()|]+?)\s*\)", rhs or ""):
        groups |= {_unquote(f) for f in re.split(r"[:/]", factor)}
    for c in columns:
        if c in groups:
            continue
        col = data[c]
        if isinstance(col, pd.DataFrame):  # duplicated name: reported by check_columns
            continue
        kind = col.dtype.kind
        if kind == "c":
            raise ValueError(
                f"Predictor column {c!r} holds complex numbers (dtype {col.dtype}); "
                "predictors must be real: use its real part or modulus explicitly."
            )
        if kind in "mM":
            raise ValueError(
                f"Predictor column {c!r} holds dates or durations (dtype {col.dtype}); convert "
                f"it to a number first, e.g. (data[{c!r}] - data[{c!r}].min()).dt.days."
            )
        if kind not in "OSU" and not isinstance(col.dtype, pd.StringDtype):
            continue
        inferred = pd.api.types.infer_dtype(col, skipna=True)
        if inferred in ("floating", "integer", "mixed-integer-float", "decimal"):
            raise ValueError(
                f"Predictor column {c!r} holds numbers with dtype {col.dtype}; convert it "
                f"first: data[{c!r}] = pd.to_numeric(data[{c!r}])."
            )
        if inferred in ("mixed", "mixed-integer"):
            raise ValueError(
                f"Predictor column {c!r} (dtype {col.dtype}) mixes numbers and text; make it "
                f"all numbers (pd.to_numeric) or all text (data[{c!r}].astype(str))."
            )
        levels = col.nunique()
        if n >= 4 and levels > n / 2:
            sample = col.dropna().drop_duplicates().head(1000)
            numeric = bool(len(sample)) and pd.to_numeric(sample, errors="coerce").notna().all()
            hint = (
                f"It holds numbers stored as text: convert it first, data[{c!r}] = "
                f"pd.to_numeric(data[{c!r}])."
                if numeric
                else "If it is an identifier, drop it from the formula."
            )
            raise ValueError(
                f"Predictor column {c!r} is text (dtype {col.dtype}) with {levels} distinct "
                f"values in {n} rows: as a categorical predictor it would need {levels - 1} "
                f"dummy columns. {hint}"
            )


def check_columns(data, columns, *, what="formula"):
    """Raise if a column is absent (with the available ones) or has missing values."""
    dup = sorted({str(c) for c in columns if (data.columns == c).sum() > 1})
    if dup:
        raise ValueError(
            f"The data has several columns named {dup}; column names must be unique "
            "(rename or drop the duplicates, e.g. data.loc[:, ~data.columns.duplicated()])."
        )
    missing = [c for c in columns if c not in data.columns]
    if missing:
        avail = ", ".join(map(str, list(data.columns)[:20]))
        more = ", ..." if data.shape[1] > 20 else ""
        raise ValueError(
            f"The {what} uses column(s) {missing} that are not in the data (columns: "
            f"{avail}{more}). Fix the spelling or add the column(s)."
        )
    problems = []
    for c in columns:
        na = pd.isna(data[c]).to_numpy()
        if na.ndim > 1:
            na = na.any(axis=1)
        if na.any():
            rows = np.asarray(data.index)[na]
            shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if rows.size > 5 else "")
            problems.append(f"{c!r}: {rows.size} rows (index {shown})")
    if problems:
        raise ValueError(
            "Missing values in column(s) the model uses: " + "; ".join(problems) + ". "
            "softbayes does not drop rows silently: drop them (data.dropna(subset=[...])) "
            "or impute them before fitting."
        )
