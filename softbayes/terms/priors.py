r"""Prior specifications for :class:`softbayes.Model`: the default rule and user overrides.

Default rule (weakly informative, scaled to the predictors, as rstanarm's ``autoscale`` and
Bambi do)
------------------------------------------------------------------------------------------
Every family's mean enters through a logit (binary families) or softmax with a reference
class (``soft_categorical``), so one unit on the linear predictor is one unit of log-odds.

* **Intercept**: ``Normal(0, 2.5)`` on the intercept *after centring the predictors*, i.e.
  on the log-odds at the training means of the columns (the sampled variable is
  ``Intercept_centered``; ``Intercept`` in the posterior is the usual, uncentred
  intercept, a deterministic of it).
* **Slopes**: ``Normal(0, 2.5 / sd(x_j))`` for design column ``j`` (``sd`` over the training
  rows, ``ddof=1``; a dummy column of a categorical predictor, an interaction or a
  transformation such as ``log(x)`` or ``scale(x)`` is a column like any other; a constant
  column gets ``2.5``). A one-sd change of a predictor then has a prior sd of 2.5 log-odds.
* **Group-level terms** ``(expr | g)``: non-centred, ``b = sigma * offset`` with
  ``offset ~ Normal(0, 1)`` and ``sigma ~ HalfNormal(2.5 / sd(expr_j))`` for each column of
  ``expr`` (``2.5`` for ``1|g``).
* **Beta precision** ``phi`` (constant): ``LogNormal(mu=3, sigma=1.5)``: median 20, 95 %
  between about 1 and 380, so neither the U-shaped ``phi < 1`` nor near-degenerate
  ``phi > 1000`` is excluded, and the pull on a well-identified ``phi`` is a small fraction
  of its posterior sd (a Gamma(2, 0.1), say, would shift a ``phi`` near 200 by more than a
  posterior sd at n = 500). With ``phi_formula`` the same prior on the log scale,
  ``phi_Intercept_centered ~ Normal(3, 1.5)``, and ``Normal(0, 1.5 / sd(z_j))`` for the
  slopes of ``log phi``.

Overrides
---------
``priors={key: spec}`` where ``key`` names a term as it appears in ``model.priors`` (the
formulae term name: ``"Intercept"``, ``"x"``, ``"log(x)"``, ``"scale(z)"``, ``"g"`` for all
dummy columns of a categorical ``g``, ``"x:z"``, ``"1|g"`` / ``"x|g"`` for the *sd* of a
group-level term, ``"phi"``, and ``"phi_<term>"`` for the terms of ``phi_formula``) and
``spec`` is a dict ``{"dist": "<PyMC distribution name>", **parameters}``, e.g.
``{"x": {"dist": "Normal", "mu": 0, "sigma": 1}}``, ``{"1|g": {"dist": "HalfStudentT",
"nu": 3, "sigma": 1}}``, ``{"phi": {"dist": "Gamma", "alpha": 2, "beta": 0.1}}``. A
parameter may be a list with one value per column of the term (or per class for
``soft_categorical``). A :class:`Prior` is accepted as well.

The distribution must be one of :data:`PRIOR_DISTRIBUTIONS` and the keywords its parameters,
with finite values, positive for scales, rates, shapes and degrees of freedom
(:func:`validate_prior`): a bad prior is refused when the model is built, not after sampling.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd
import pymc as pm

__all__ = ["DEFAULT_SCALE", "PRIOR_DISTRIBUTIONS", "Prior", "PriorError", "broadcast_param",
           "parse_prior", "validate_prior"]

#: Prior scale of one unit of a standardized predictor on the logit scale.
DEFAULT_SCALE = 2.5
#: Location and scale of the default prior on log(phi) (Beta family).
PHI_LOG_MU = 3.0
PHI_LOG_SCALE = 1.5

_REAL, _POSITIVE = "real", "positive"

#: The PyMC distributions a prior may use, with the constraint of each parameter ("real":
#: any finite number, "positive": a finite number > 0). Only these names are looked up on
#: the pymc module: a name read from a spec or a fit file is never resolved otherwise. They
#: are the location-scale families of the real line (coefficients) and the families of
#: positive numbers (group-level sds, the Beta precision). Distributions without a usable
#: forward sampler (Flat, HalfFlat), discrete ones and ones whose support suits no parameter
#: of these models (Beta, Dirichlet, ...) are left out. Keyword names other than these
#: parameters (``observed``, ``shape``, ``dims``, ``initval``, ``transform``, ...) are refused:
#: softbayes sets shape and dims itself.
PRIOR_DISTRIBUTIONS: dict[str, dict[str, str]] = {
    "Normal": {"mu": _REAL, "sigma": _POSITIVE, "tau": _POSITIVE},
    "StudentT": {"nu": _POSITIVE, "mu": _REAL, "sigma": _POSITIVE, "lam": _POSITIVE},
    "Cauchy": {"alpha": _REAL, "beta": _POSITIVE},
    "Laplace": {"mu": _REAL, "b": _POSITIVE},
    "Logistic": {"mu": _REAL, "s": _POSITIVE},
    "Gumbel": {"mu": _REAL, "beta": _POSITIVE},
    "SkewNormal": {"alpha": _REAL, "mu": _REAL, "sigma": _POSITIVE, "tau": _POSITIVE},
    "TruncatedNormal": {"mu": _REAL, "sigma": _POSITIVE, "tau": _POSITIVE, "lower": _REAL,
                        "upper": _REAL},
    "Uniform": {"lower": _REAL, "upper": _REAL},
    "HalfNormal": {"sigma": _POSITIVE, "tau": _POSITIVE},
    "HalfStudentT": {"nu": _POSITIVE, "sigma": _POSITIVE, "lam": _POSITIVE},
    "HalfCauchy": {"beta": _POSITIVE},
    "Exponential": {"lam": _POSITIVE, "scale": _POSITIVE},
    "Gamma": {"alpha": _POSITIVE, "beta": _POSITIVE, "mu": _POSITIVE, "sigma": _POSITIVE},
    "InverseGamma": {"alpha": _POSITIVE, "beta": _POSITIVE, "mu": _POSITIVE,
                     "sigma": _POSITIVE},
    "LogNormal": {"mu": _REAL, "sigma": _POSITIVE, "tau": _POSITIVE},
    "Weibull": {"alpha": _POSITIVE, "beta": _POSITIVE},
}


class PriorError(ValueError):
    """A prior that cannot be used; ``param`` names the parameter at fault (None: the
    distribution itself)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


@cache
def _required_params(dist: str) -> tuple[str, ...]:
    """Parameters that PyMC's ``<dist>.dist`` takes without a default (e.g. StudentT's nu)."""
    sig = inspect.signature(getattr(pm, dist).dist)
    return tuple(
        name for name, p in sig.parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )


def _numbers(value) -> np.ndarray | None:
    """``value`` as a float array if it is a number or a (nested) list of numbers, else None."""
    try:
        arr = np.asarray(value)
    except Exception:  # ragged lists and the like
        return None
    if arr.size == 0 or arr.dtype.kind not in "iuf":  # bools and text are not parameters
        return None
    return arr.astype(float)


def validate_prior(dist, kwargs) -> None:
    """Refuse a prior that PyMC would accept now but that cannot work at fit time.

    Checks that ``dist`` is in :data:`PRIOR_DISTRIBUTIONS`, that every keyword is one of its
    parameters and every parameter without a default is given, that values are finite numbers
    (or arrays of them), positive where the parameter is a scale, rate, shape or degrees of
    freedom, and ``lower < upper`` for bounded distributions.

    Raises
    ------
    PriorError
        Naming the distribution, the parameter and the value.
    """
    if not isinstance(dist, str) or dist not in PRIOR_DISTRIBUTIONS:
        close = difflib.get_close_matches(str(dist), PRIOR_DISTRIBUTIONS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise PriorError(
            f"Unknown prior distribution {dist!r}; use one of {', '.join(PRIOR_DISTRIBUTIONS)}."
            + hint
        )
    params = PRIOR_DISTRIBUTIONS[dist]
    for key, value in kwargs.items():
        if key not in params:
            raise PriorError(
                f"{dist} has no parameter {key!r}; its parameters are {', '.join(params)} "
                "(shape, dims, observed and other keywords are set by softbayes, not by a "
                "prior).", key)
        arr = _numbers(value)
        if arr is None:
            raise PriorError(
                f"{dist} parameter {key!r} must be a number or a list of numbers, got "
                f"{value!r}.", key)
        if not np.isfinite(arr).all():
            raise PriorError(f"{dist} parameter {key!r} must be finite, got {value!r}.", key)
        if params[key] == _POSITIVE and not (arr > 0).all():
            raise PriorError(f"{dist} parameter {key!r} must be > 0, got {value!r}.", key)
    missing = [p for p in _required_params(dist) if p not in kwargs]
    if missing:
        raise PriorError(f"{dist} needs parameter(s) {', '.join(map(repr, missing))}.",
                         missing[0])
    if "lower" in kwargs and "upper" in kwargs:
        lower = np.asarray(kwargs["lower"], dtype=float)
        upper = np.asarray(kwargs["upper"], dtype=float)
        try:
            ordered = bool((lower < upper).all())
        except ValueError:  # shapes that do not broadcast: reported when the prior is built
            ordered = True
        if not ordered:
            raise PriorError(f"{dist}: 'lower' must be below 'upper', got lower="
                             f"{kwargs['lower']!r}, upper={kwargs['upper']!r}.", "lower")


def _plain(value):
    """JSON-friendly version of a prior parameter (numbers or lists of numbers)."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        v = arr.item()
        return float(v) if isinstance(v, float | np.floating | int | np.integer) else v
    return [_plain(v) for v in arr]


@dataclass(frozen=True)
class Prior:
    """One prior: a PyMC distribution name and its parameters.

    Parameters
    ----------
    dist : str
        Name of a PyMC distribution in :data:`PRIOR_DISTRIBUTIONS` (``"Normal"``,
        ``"StudentT"``, ``"HalfNormal"``, ``"Gamma"``, ``"LogNormal"``, ...).
    kwargs : dict
        Its parameters; scalars, or lists with one value per column of the term. Checked
        by :func:`validate_prior` (known names, finite values, positive scales).
    source : str
        Where it comes from (``"user"`` or the default rule that produced it).
    """

    dist: str
    kwargs: dict = field(default_factory=dict)
    source: str = "user"

    def __post_init__(self):
        validate_prior(self.dist, self.kwargs)

    def to_dict(self) -> dict:
        """``{"dist": ..., **kwargs}``: the form accepted by ``priors=``."""
        return {"dist": self.dist, **{k: _plain(v) for k, v in self.kwargs.items()}}

    def describe(self) -> str:
        """Short text such as ``Normal(mu=0, sigma=2.5)``."""

        def fmt(v):
            v = _plain(v)
            if isinstance(v, list):
                return "[" + ", ".join(fmt(x) for x in v) + "]"
            return f"{v:.4g}" if isinstance(v, float) else str(v)

        args = ", ".join(f"{k}={fmt(v)}" for k, v in self.kwargs.items())
        return f"{self.dist}({args})"

    def build(self, name, *, shape, dims=None):
        """Create the PyMC variable (inside a model context) with parameters broadcast."""
        kwargs = {k: broadcast_param(v, shape, name, k) for k, v in self.kwargs.items()}
        cls = getattr(pm, self.dist)
        if dims:
            return cls(name, **kwargs, dims=dims)
        return cls(name, **kwargs, shape=shape)

    def check(self, name, shape):
        """Raise a ValueError now (not at fit time) if the parameters do not fit."""
        kwargs = {k: broadcast_param(v, shape, name, k) for k, v in self.kwargs.items()}
        try:
            getattr(pm, self.dist).dist(**kwargs, shape=shape)
        except Exception as err:
            raise ValueError(
                f"Prior for {name!r}: {self.describe()} is not a valid "
                f"{self.dist} ({err})."
            ) from err


def broadcast_param(value, shape, name, key):
    """A prior's parameter ``key`` for a parameter ``name`` of ``shape``: a float for a
    scalar, else an array whose per-column values (first axis) broadcast over the trailing
    (class) axis; a ValueError if it does not fit."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0 or not shape:
        if arr.ndim > 0 and arr.size != 1:
            raise ValueError(
                f"Prior for {name!r}: parameter {key!r} has {arr.size} values but the "
                "parameter is a scalar."
            )
        return float(arr.reshape(-1)[0]) if arr.ndim else float(arr)
    shape = tuple(shape)
    if arr.shape == shape[: arr.ndim]:
        return arr.reshape(arr.shape + (1,) * (len(shape) - arr.ndim))
    try:
        np.broadcast_to(arr, shape)
    except ValueError as err:
        raise ValueError(
            f"Prior for {name!r}: parameter {key!r} has shape {arr.shape}, which does not "
            f"fit the parameter's shape {shape} (give a scalar or one value per column)."
        ) from err
    return arr


def parse_prior(key, spec) -> Prior:
    """A :class:`Prior` from a user spec (dict with ``"dist"`` or a Prior)."""
    if isinstance(spec, Prior):
        return spec
    if isinstance(spec, dict):
        spec = dict(spec)
        dist = spec.pop("dist", None)
        if not isinstance(dist, str):
            raise ValueError(
                f"Prior for {key!r}: give a dict with a 'dist' entry, e.g. "
                "{'dist': 'Normal', 'mu': 0, 'sigma': 1}."
            )
        try:
            return Prior(dist, spec, "user")
        except PriorError as err:
            raise PriorError(f"Prior for {key!r}: {err}", err.param) from None
    raise ValueError(
        f"Prior for {key!r}: expected a dict such as {{'dist': 'Normal', 'mu': 0, "
        f"'sigma': 1}} or a softbayes.terms.priors.Prior, got {type(spec).__name__}."
    )


def column_sd(x) -> np.ndarray:
    """Sample sd of each column (1 where a column is constant)."""
    x = np.asarray(x, dtype=float)
    if x.shape[0] < 2:
        return np.ones(x.shape[1])
    sd = x.std(axis=0, ddof=1)
    return np.where(sd > 0, sd, 1.0)


def slope_prior(x, scale=DEFAULT_SCALE) -> Prior:
    """``Normal(0, scale / sd(x_j))`` for the columns ``x`` of one term."""
    sd = column_sd(x)
    sigma = scale / sd
    return Prior(
        "Normal",
        {"mu": 0.0, "sigma": float(sigma[0]) if sigma.size == 1 else sigma.tolist()},
        f"default: Normal(0, {scale:g}/sd(x))",
    )


def intercept_prior(mu=0.0, scale=DEFAULT_SCALE) -> Prior:
    return Prior(
        "Normal", {"mu": float(mu), "sigma": float(scale)},
        f"default: Normal({mu:g}, {scale:g}) after centring",
    )


def group_sd_prior(x_expr, scale=DEFAULT_SCALE) -> Prior:
    sd = column_sd(x_expr)
    sigma = scale / sd
    return Prior(
        "HalfNormal",
        {"sigma": float(sigma[0]) if sigma.size == 1 else sigma.tolist()},
        f"default: HalfNormal({scale:g}/sd(expr))",
    )


def phi_prior() -> Prior:
    return Prior(
        "LogNormal", {"mu": PHI_LOG_MU, "sigma": PHI_LOG_SCALE},
        f"default: LogNormal({PHI_LOG_MU:g}, {PHI_LOG_SCALE:g})",
    )


def priors_table(entries) -> pd.DataFrame:
    """Readable table: one row per term (``entries`` = [(key, param, Prior, role)])."""
    rows = [
        {
            "term": key,
            "parameter": param,
            "role": role,
            "prior": prior.describe(),
            "source": prior.source,
        }
        for key, param, prior, role in entries
    ]
    return pd.DataFrame(rows, columns=["term", "parameter", "role", "prior", "source"]).set_index(
        "term"
    )
