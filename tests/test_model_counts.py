"""Models of counts k of m trials (``p(k, m) ~ x``): labels and trials, predictions against
scipy, the ELPD group, the calibration refusal, and the beta-binomial posterior against an
independent maximum-likelihood fit."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import optimize, special, stats

import softbayes as sb
from softbayes.backend import Refitter

TRUTH = {"Intercept": -0.4, "x": 0.9, "phi": 6.0}


def simulate(n, seed, phi=TRUTH["phi"], m_range=(3, 21)):
    """Annotator counts: per item p ~ Beta(mu phi, (1 - mu) phi), k ~ Binomial(m, p)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    m = rng.integers(*m_range, size=n)
    mu = special.expit(TRUTH["Intercept"] + TRUTH["x"] * x)
    p = rng.beta(mu * phi, (1 - mu) * phi)
    return pd.DataFrame({"k": rng.binomial(m, p), "m": m, "x": x,
                         "g": rng.choice(["a", "b", "c"], size=n)})


@pytest.fixture(scope="module")
def data():
    return simulate(150, 7)


@pytest.fixture(scope="module")
def fits(data):
    """Laplace fits (fast) of three families of the same counts."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lik in ("beta_binomial", "binomial", "weighted_bernoulli"):
            out[lik] = sb.Model("p(k, m) ~ x", data, likelihood=lik).fit(
                draws=200, chains=1, method="laplace", random_seed=1)
    return out


def test_labels_trials_and_weights(data):
    k, m = data["k"].to_numpy(float), data["m"].to_numpy(float)
    bb = sb.Model("p(k, m) ~ x + log(m)", data, likelihood="beta_binomial").description
    np.testing.assert_array_equal(bb.labels, k)  # the likelihood sees the counts
    np.testing.assert_array_equal(bb.row_trials(bb.data), m)
    np.testing.assert_allclose(bb.raw_labels(bb.data), k / m)  # labels as given
    assert "log(m)" in bb.main.design.common_labels  # the trials may be a predictor
    wb = sb.Model("p(k, m) ~ x", data).description
    np.testing.assert_allclose(wb.labels, k / m)
    assert wb.weights is None
    wbw = sb.Model("p(k, m) ~ x", data, weights="m").description
    np.testing.assert_array_equal(wbw.weights, m)
    const = sb.Model("p(k, 20) ~ x", data.assign(k=np.minimum(k, 20)), likelihood="binomial")
    np.testing.assert_array_equal(const.description.row_trials(data), np.full(len(data), 20.0))
    # other labels as given (proportions) become counts; a fraction of a trial is refused
    k2 = np.minimum(k[::-1], m)
    np.testing.assert_array_equal(bb.with_labels(k2 / m).labels, k2)
    with pytest.raises(ValueError, match="whole number"):
        bb.with_labels(np.full(len(k), 0.5 / m.max()))
    with pytest.raises(ValueError, match="needs K >= 2"):
        sb.Model("p(k, m) ~ x", data, likelihood="soft_categorical")


def test_predictions_and_log_likelihood_match_scipy(data, fits):
    fit = fits["beta_binomial"]
    post = fit["posterior"]
    b0, b1 = post["Intercept"].values.ravel(), post["x"].values.ravel()
    phi = post["phi"].values.ravel()
    new = simulate(12, 99)
    eta = b0[:, None] + b1[:, None] * new["x"].to_numpy()[None, :]
    mu = special.expit(eta)
    ref = stats.betabinom.logpmf(new["k"].to_numpy(), new["m"].to_numpy(), mu * phi[:, None],
                                 special.expit(-eta) * phi[:, None])
    ll = sb.predict(fit, new, kind="log_likelihood").values.reshape(len(b0), -1)
    np.testing.assert_allclose(ll, ref, rtol=1e-9)
    mean = sb.predict(fit, new).values.reshape(len(b0), -1)
    np.testing.assert_allclose(mean, mu, rtol=1e-12)  # on the proportion scale k / m
    pp = sb.predictive_draws(fit, new, random_seed=3).values.reshape(len(b0), -1)
    counts = pp * new["m"].to_numpy()
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
    assert pp.min() >= 0 and pp.max() <= 1
    # the fit's pointwise log-likelihood is that of the counts (with log C(m, k))
    own = fit["log_likelihood"]
    own = own[next(iter(own.data_vars))].values.reshape(len(b0), -1)
    eta = b0[:, None] + b1[:, None] * data["x"].to_numpy()[None, :]
    ref = stats.betabinom.logpmf(data["k"].to_numpy(), data["m"].to_numpy(),
                                 special.expit(eta) * phi[:, None],
                                 special.expit(-eta) * phi[:, None])
    np.testing.assert_allclose(own, ref, rtol=1e-8)


def test_counts_group_compares_and_refuses_the_proportions(fits):
    cmp = sb.compare(fits, kfold_fallback=None, warn=False)
    table = cmp.scores
    assert set(table.index) == set(fits)
    assert table.loc["beta_binomial", "group"] == table.loc["binomial", "group"] == "counts"
    assert table.loc["weighted_bernoulli", "group"] != "counts"
    pair = {k: fits[k] for k in ("beta_binomial", "binomial")}
    ranked = sb.compare(pair, kfold_fallback=None, elpd="all", warn=False)
    assert set(ranked.scores.index) == set(pair)
    with pytest.raises(ValueError, match="Refusing to rank"):
        sb.compare({k: fits[k] for k in ("beta_binomial", "weighted_bernoulli")},
                   kfold_fallback=None, elpd="all", warn=False)


def test_calibration_refusal_points_to_the_count_families(data):
    model = sb.Model("p(k, m) ~ x + (1|g)", data)
    with pytest.raises(ValueError, match=r"group-level terms.*beta_binomial.*p\(k, m\)"):
        model.fit(draws=10, tune=10, chains=1, calibrate="dispersion")
    with pytest.raises(ValueError, match="not the beta_binomial family"):
        sb.Model("p(k, m) ~ x", data, likelihood="beta_binomial").fit(
            draws=10, tune=10, chains=1, calibrate="dispersion")


def _mle(df):
    """Maximum-likelihood fit of the beta-binomial regression, by scipy (independent of
    softbayes): (Intercept, x, log phi)."""
    k, m, x = (df[c].to_numpy(float) for c in ("k", "m", "x"))

    def nll(t):
        eta = t[0] + t[1] * x
        phi = np.exp(t[2])
        return -stats.betabinom.logpmf(k, m, special.expit(eta) * phi,
                                       special.expit(-eta) * phi).sum()

    res = optimize.minimize(nll, np.zeros(3), method="Nelder-Mead",
                            options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 20_000})
    assert res.success, res.message
    return res.x


@pytest.mark.slow
def test_beta_binomial_posterior_means_match_the_mle():
    df = simulate(1000, 2026)
    wide = {"Intercept": {"dist": "Normal", "mu": 0, "sigma": 20},
            "x": {"dist": "Normal", "mu": 0, "sigma": 20},
            "phi": {"dist": "LogNormal", "mu": 2, "sigma": 10}}
    fit = sb.Model("p(k, m) ~ x", df, likelihood="beta_binomial", priors=wide).fit(
        draws=1000, tune=600, chains=2, random_seed=11)
    post = fit["posterior"]
    mle = _mle(df)
    draws = {"Intercept": post["Intercept"].values, "x": post["x"].values,
             "log phi": np.log(post["phi"].values)}
    for (name, d), ref in zip(draws.items(), mle, strict=True):
        gap = abs(d.mean() - ref) / d.std()
        print(f"{name}: posterior mean {d.mean():.4f} sd {d.std():.4f}, MLE {ref:.4f}, "
              f"gap {gap:.3f} sd")
        assert gap < 0.1, (name, d.mean(), ref, d.std())


@pytest.mark.slow
def test_refitter_swaps_counts_and_trials(data):
    # one compiled model refitted on other rows: other counts and other trials
    model = sb.Model("p(k, m) ~ x", data, likelihood="binomial")
    refit = Refitter(model.description)
    refit.fit(draws=50, tune=50, chains=1, random_seed=1)
    other = simulate(len(data), 8, phi=1e9)  # binomial counts, other trials
    fit = refit.set_data(other).fit(draws=300, tune=300, chains=1, random_seed=2)
    k, m, x = other["k"].to_numpy(float), other["m"].to_numpy(float), other["x"].to_numpy()
    glm = sm_binomial_mle(k, m, x)
    post = fit["posterior"]
    assert abs(float(post["x"].mean()) - glm[1]) < 0.3 * float(post["x"].std())


def sm_binomial_mle(k, m, x):
    """Binomial-logit MLE (statsmodels' GLM of the successes and failures)."""
    X = sm.add_constant(x)
    return sm.GLM(np.column_stack([k, m - k]), X, family=sm.families.Binomial()).fit().params
