"""Simulation-based calibration (Talts et al. 2018) of softbayes.Model fits.

For each replicate: parameters drawn from the prior (the documented default rule, computed
here), labels simulated in NumPy from the family, the *same compiled model* refitted with
only the labels swapped (``Model.set_labels``, nutpie's ``with_data``), and the rank of
the true value among thinned posterior draws recorded. Calibrated inference gives uniform
ranks (chi-square test over 10 bins).

* ``weighted_bernoulli``: labels are the share of m = 4 raters voting 1, weights m, for
  which the soft-label cross-entropy is exactly the binomial likelihood.
* ``continuous_bernoulli``: labels drawn by the inverse CDF.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

import softbayes as sb

N_REPS = 200
N_OBS = 60
THIN = 10  # 2 chains x 500 draws -> 100 draws, ranks 0..100
RATERS = 4


def simulate(family, rng, eta):
    if family == "weighted_bernoulli":
        return rng.binomial(RATERS, expit(eta)) / RATERS
    u = rng.random(eta.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.log1p(u * np.expm1(eta)) / eta
    return np.where(np.abs(eta) < 1e-12, u, q)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["weighted_bernoulli", "continuous_bernoulli"])
def test_simulation_based_calibration(family):
    rng = np.random.default_rng(4242)
    x = rng.normal(size=N_OBS)
    xc = x - x.mean()
    sd_slope = 2.5 / x.std(ddof=1)
    df = pd.DataFrame({"y": 0.5, "x": x, "raters": float(RATERS)})
    weights = "raters" if family == "weighted_bernoulli" else None
    model = sb.Model("y ~ x", df, likelihood=family, weights=weights)
    assert model.priors_dict() == {
        "Intercept": {"dist": "Normal", "mu": 0.0, "sigma": 2.5},
        "x": {"dist": "Normal", "mu": 0.0, "sigma": pytest.approx(sd_slope)},
    }
    ranks = {"Intercept_centered": [], "x": []}
    for rep in range(N_REPS):
        truth = {"Intercept_centered": rng.normal(0, 2.5), "x": rng.normal(0, sd_slope)}
        eta = truth["Intercept_centered"] + truth["x"] * xc
        model.set_labels(simulate(family, rng, eta))
        fit = model.fit(draws=500, tune=500, chains=2, random_seed=rep, log_likelihood=False)
        for name, value in truth.items():
            draws = fit.posterior[name].values[:, ::THIN].ravel()
            ranks[name].append(int((draws < value).sum()))
    n_draws = 2 * 500 // THIN
    for name, r in ranks.items():
        counts, _ = np.histogram(r, bins=10, range=(0, n_draws + 1))
        p = stats.chisquare(counts).pvalue
        print(f"SBC {family} {name}: rank counts {counts.tolist()}, chi-square p = {p:.3f}")
        assert p > 0.001, (name, counts, p)
