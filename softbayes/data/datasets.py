"""Built-in data sets: available offline, by name, in specs (``[data] builtin = "star98"``) and
on the command line (``softbayes fit builtin:star98 ...``).

``star98``
    statsmodels' STAR98 education data (303 California counties, 1998). The soft label
    ``share_above = NABOVE / (NABOVE + NBELOW)`` is the share of a county's students above the
    national median in math; ``n_students = NABOVE + NBELOW``. Covariates: ``LOWINC`` (% low
    income), ``PERASIAN``, ``PERBLACK``, ``PERHISP`` (% of students), ``PERMINTE`` (% minority
    teachers), ``AVYRSEXP`` (teachers' mean years of experience), ``AVSALK`` (mean teacher
    salary, $1000s), ``PERSPENK`` (spending per pupil, $1000s), ``PTRATIO`` (pupil/teacher
    ratio), ``PCTAF`` (% taking college-prep courses), ``PCTCHRT`` (% charter schools),
    ``PCTYRRND`` (% year-round schools), and statsmodels' interaction columns. No label is
    exactly 0 or 1. Needs statsmodels (a dependency of softbayes; the data ships with it).

``raters``
    Simulated 3-class soft labels (fixed seed 20260101, so every machine gets the same rows):
    240 items, each judged by ``n_raters`` (3 to 12) annotators; ``p_a``, ``p_b``, ``p_c`` are
    the shares of votes per class (probability vectors, some one-hot when all raters agree).
    Covariates ``x1``, ``x2`` (standard normal) and ``region`` (4 levels). The truth: per item,
    class probabilities ``pi ~ Dirichlet(30 softmax(eta))`` with ``eta_a = 0``,
    ``eta_b = 0.4 + 1.0 x1 - 0.6 x2``, ``eta_c = -0.3 - 0.8 x1 + 0.5 x2 + r(region)``,
    ``r = (0, 0.6, -0.4, 0.2)``; votes ``~ Multinomial(n_raters, pi)``. Weighting the
    soft-label cross-entropy by ``n_raters`` gives the multinomial likelihood of the votes.
    :data:`RATERS_TRUTH` holds the coefficients.

``annotators``
    Simulated binary votes (fixed seed 20261130): 300 items, each labelled by ``n_annotators``
    (3 to 20) annotators from one of 6 annotator pools, ``n_yes`` of whom said "yes";
    ``share_yes = n_yes / n_annotators`` (0 or 1 where they agreed). Covariates ``x1``, ``x2``
    (standard normal) and ``annotator_pool`` (``pool1`` ... ``pool6``). The truth: per item,
    ``p ~ Beta(mu phi, (1 - mu) phi)`` with ``phi = 6`` (annotators disagree beyond coin
    flips) and ``logit mu = -0.4 + 0.9 x1 - 0.5 x2 + u(pool)``, ``u`` fixed offsets of sd
    about 0.5; ``n_yes ~ Binomial(n_annotators, p)``. The beta-binomial with the response
    ``p(n_yes, n_annotators)`` is the true model; :data:`ANNOTATORS_TRUTH` holds its
    parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["ANNOTATORS_TRUTH", "BUILTIN_DATASETS", "RATERS_TRUTH", "dataset_info",
           "load_dataset"]


@dataclass(frozen=True)
class BuiltinDataset:
    """A built-in data set: its loader and what its label columns are."""

    name: str
    description: str
    labels: tuple[str, ...]
    weights: str | None
    loader: Callable[[], pd.DataFrame]
    trials: str | None = None


def _star98() -> pd.DataFrame:
    try:
        from statsmodels.datasets import star98
    except ImportError as err:  # pragma: no cover - statsmodels is a dependency
        raise ValueError(
            "The built-in data set 'star98' needs statsmodels (pip install statsmodels)."
        ) from err
    df = star98.load_pandas().data.copy()
    total = df["NABOVE"] + df["NBELOW"]
    df.insert(0, "share_above", df["NABOVE"] / total)
    df.insert(1, "n_students", total.astype(float))
    return df.reset_index(drop=True)


#: True coefficients of the ``raters`` simulation (class "a" is the reference).
RATERS_TRUTH = {
    "b": {"Intercept": 0.4, "x1": 1.0, "x2": -0.6},
    "c": {"Intercept": -0.3, "x1": -0.8, "x2": 0.5},
    "region_effect_c": {"north": 0.0, "south": 0.6, "east": -0.4, "west": 0.2},
    "dirichlet_concentration": 30.0,
}


def _raters(n: int = 240, seed: int = 20260101) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    regions = np.array(["north", "south", "east", "west"])
    region = regions[rng.integers(0, 4, size=n)]
    r = np.array([RATERS_TRUTH["region_effect_c"][g] for g in region])
    tb, tc = RATERS_TRUTH["b"], RATERS_TRUTH["c"]
    eta = np.column_stack([
        np.zeros(n),
        tb["Intercept"] + tb["x1"] * x1 + tb["x2"] * x2,
        tc["Intercept"] + tc["x1"] * x1 + tc["x2"] * x2 + r,
    ])
    p = np.exp(eta - eta.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    kappa = RATERS_TRUTH["dirichlet_concentration"]
    pi = np.vstack([rng.dirichlet(kappa * row) for row in p])
    n_raters = rng.integers(3, 13, size=n)
    votes = np.vstack([rng.multinomial(k, row) for k, row in zip(n_raters, pi, strict=True)])
    shares = votes / n_raters[:, None]
    return pd.DataFrame({
        "p_a": shares[:, 0],
        "p_b": shares[:, 1],
        "p_c": shares[:, 2],
        "n_raters": n_raters.astype(float),
        "x1": x1,
        "x2": x2,
        "region": pd.Categorical(region, categories=list(regions)),
    })


#: True parameters of the ``annotators`` simulation (the beta-binomial regression).
ANNOTATORS_TRUTH = {
    "Intercept": -0.4, "x1": 0.9, "x2": -0.5, "phi": 6.0,
    "pool_effect": {"pool1": 0.5, "pool2": -0.6, "pool3": 0.1, "pool4": 0.7, "pool5": -0.3,
                    "pool6": -0.4},
}


def _annotators(n: int = 300, seed: int = 20261130) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = ANNOTATORS_TRUTH
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    pools = np.array(list(t["pool_effect"]))
    pool = pools[rng.integers(0, pools.size, size=n)]
    u = np.array([t["pool_effect"][g] for g in pool])
    mu = 1.0 / (1.0 + np.exp(-(t["Intercept"] + t["x1"] * x1 + t["x2"] * x2 + u)))
    p = rng.beta(mu * t["phi"], (1.0 - mu) * t["phi"])
    m = rng.integers(3, 21, size=n)
    k = rng.binomial(m, p)
    return pd.DataFrame({
        "n_yes": k, "n_annotators": m, "share_yes": k / m, "x1": x1, "x2": x2,
        "annotator_pool": pd.Categorical(pool, categories=list(pools)),
    })


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "star98": BuiltinDataset(
        "star98",
        "STAR98 (statsmodels): 303 California counties; share_above = share of students "
        "above the national median in math.",
        ("share_above",),
        "n_students",
        _star98,
    ),
    "raters": BuiltinDataset(
        "raters",
        "Simulated 3-class rater votes (fixed seed): p_a, p_b, p_c = vote shares of "
        "n_raters annotators; covariates x1, x2, region.",
        ("p_a", "p_b", "p_c"),
        "n_raters",
        _raters,
    ),
    "annotators": BuiltinDataset(
        "annotators",
        "Simulated binary votes (fixed seed): n_yes of n_annotators (3-20) said yes; "
        "share_yes = n_yes / n_annotators; covariates x1, x2, annotator_pool.",
        ("n_yes",),
        None,
        _annotators,
        trials="n_annotators",
    ),
}


def dataset_info(name: str) -> BuiltinDataset:
    """The :class:`BuiltinDataset` called ``name`` (ValueError listing the names if unknown)."""
    try:
        return BUILTIN_DATASETS[name]
    except KeyError:
        raise ValueError(
            f"Unknown built-in data set {name!r}; available: {sorted(BUILTIN_DATASETS)}."
        ) from None


def load_dataset(name: str) -> pd.DataFrame:
    """Load a built-in data set by name (a fresh copy; no network access)."""
    return dataset_info(name).loader()
