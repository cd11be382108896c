"""Simulation-based calibration (Talts et al. 2018) of softbayes.Model fits, on the executor.

For each replicate: the parameters drawn from the model's prior, labels simulated in NumPy
from those parameters, the *same compiled model* refitted with only the labels swapped
(:func:`softbayes.backend.executor.refit_labels_task`: one compiled model per process,
nutpie's ``with_data``), and the rank of the true value among thinned posterior draws
recorded. Calibrated inference gives uniform ranks (chi-square test over 10 bins). The
default priors of the intercept and slope are checked against the documented rule first
(an independent anchor: the prior the ranks are taken against is the one documented).

Adding a family is one entry of ``CASES``: ``(likelihood, simulate)``, where
``simulate(family, rng, eta, truth)`` returns labels given the linear predictor ``eta`` and
the true values of the other parameters (``truth``: name -> value, e.g. ``phi``);
:func:`family_draws` (the family's own ``draws`` method) is right whenever that method draws
the labels the likelihood models (and never a label the likelihood refuses: ``beta`` draws
labels of exactly 1 in floating point under its wide default priors, so it would need its
own ``simulate``). Replications run serially; ``SOFTBAYES_SBC_WORKERS=N``
runs them on a local Dask cluster of N processes (the same numbers: seeds per replication).
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
from sbc_helpers import check_sbc, prior_truths
from scipy.special import expit

import softbayes as sb

N_REPS = 200
N_OBS = 60
DRAWS = 500
CHAINS = 2
THIN = 10  # 2 chains x 500 draws -> 100 draws, ranks 0..100
RATERS = 4
SEED = 4242


def family_draws(family, rng, eta, truth):
    """Labels from the family's own ``draws`` (its other parameters from ``truth``)."""
    wanted = [p for p in inspect.signature(family.draws).parameters if p not in ("rng", "eta")]
    return family.draws(rng, eta=eta, **{p: truth[p] for p in wanted})


def raters_share(family, rng, eta, truth):
    """The share of ``RATERS`` raters voting 1, fitted with weights ``RATERS``: then the
    weighted-Bernoulli cross-entropy is exactly the binomial likelihood."""
    return rng.binomial(RATERS, expit(eta)) / RATERS


# likelihood -> how its labels are simulated; one entry per family under calibration
CASES = [
    pytest.param("weighted_bernoulli", raters_share, id="weighted_bernoulli"),
    pytest.param("continuous_bernoulli", family_draws, id="continuous_bernoulli"),
    pytest.param("ordered_beta", family_draws, id="ordered_beta"),
]


def _model(likelihood, simulate, x):
    df = pd.DataFrame({"y": 0.5, "x": x, "raters": float(RATERS)})
    weights = "raters" if simulate is raters_share else None
    return sb.Model("y ~ x", df, likelihood=likelihood, weights=weights)


@pytest.mark.slow
@pytest.mark.parametrize(("likelihood", "simulate"), CASES)
def test_simulation_based_calibration(likelihood, simulate):
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=N_OBS)
    xc = x - x.mean()
    model = _model(likelihood, simulate, x)
    priors = model.priors_dict()
    assert priors["Intercept"] == {"dist": "Normal", "mu": 0.0, "sigma": 2.5}
    assert priors["x"] == {"dist": "Normal", "mu": 0.0,
                           "sigma": pytest.approx(2.5 / x.std(ddof=1))}
    names, truths = prior_truths(model, N_REPS, rng)
    labels = [simulate(model.family, rng, t["Intercept_centered"] + t["x"] * xc, t)
              for t in truths]
    check_sbc(model, truths, labels, tag=likelihood, seed=SEED, names=names, draws=DRAWS,
              chains=CHAINS, thin=THIN)
