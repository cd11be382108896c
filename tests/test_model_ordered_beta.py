"""Ordered beta models end to end: an MLE anchor, group-level terms with ``phi_formula``, the
pointwise log-likelihood against scipy, and the comparison's refusal to rank it against
densities on [0, 1].

No reference implementation (R's ordbetareg) is reachable offline, so the anchor is an MLE
computed here with scipy.optimize from a log-likelihood written with scipy.stats.beta.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats
from scipy.special import expit, log_expit

import softbayes as sb
from softbayes.terms.families import get_family

DIFFUSE = {"dist": "Normal", "mu": 0, "sigma": 100}
FAM = get_family("ordered_beta")


def simulate(rng, eta, phi, k1, k2):
    """Labels drawn directly from the definition (not through the family's draws)."""
    p0 = 1 - expit(eta - k1)
    p1 = expit(eta - k2)
    u = rng.random(eta.shape)
    mu = expit(eta)
    y = rng.beta(mu * phi, (1 - mu) * phi)
    return np.where(u < p0, 0.0, np.where(u > 1 - p1, 1.0, y))


def ref_loglik(y, eta, phi, k1, k2):
    """Pointwise log-likelihood from scipy (a log of a difference, fine away from the tails)."""
    mu = expit(eta)
    inside = (y > 0) & (y < 1)
    ys = np.where(inside, y, 0.5)
    mid = np.log(expit(eta - k1) - expit(eta - k2)) + stats.beta.logpdf(ys, mu * phi,
                                                                         (1 - mu) * phi)
    return np.where(y == 0, log_expit(-(eta - k1)), np.where(y == 1, log_expit(eta - k2), mid))


def test_posterior_means_match_an_independent_mle():
    rng = np.random.default_rng(2026)
    n = 1000
    x = rng.standard_normal(n)
    truth = (0.4, 0.9, np.log(6.0), -2.0, np.log(3.5))  # a, b, log phi, k1, log(k2 - k1)
    y = simulate(rng, truth[0] + truth[1] * x, 6.0, -2.0, 1.5)
    assert 0.03 < (y == 0).mean() < 0.3 and 0.03 < (y == 1).mean() < 0.3

    def nll(th):
        a, b, lphi, k1, lgap = th
        return -ref_loglik(y, a + b * x, np.exp(lphi), k1, k1 + np.exp(lgap)).sum()

    mle = optimize.minimize(nll, np.array([0.0, 0.0, 1.0, -1.0, 0.0]), method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000,
                                     "maxfev": 20000})
    mle = optimize.minimize(nll, mle.x, method="BFGS", options={"gtol": 1e-8})
    model = sb.Model("y ~ x", pd.DataFrame({"y": y, "x": x}), likelihood="ordered_beta",
                     priors={"Intercept": DIFFUSE, "x": DIFFUSE, "cutzero": DIFFUSE,
                             "cutone": DIFFUSE,
                             "phi": {"dist": "LogNormal", "mu": 2, "sigma": 3}})
    fit = model.fit(draws=2000, tune=1000, chains=4, random_seed=3, log_likelihood=False)
    post = fit.posterior
    draws = {"Intercept": post["Intercept"].values.ravel(), "x": post["x"].values.ravel(),
             "log phi": np.log(post["phi"].values.ravel()),
             "cutzero": post["cutzero"].values.ravel(), "cutone": post["cutone"].values.ravel()}
    z = {k: (v.mean() - m) / v.std() for (k, v), m in zip(draws.items(), mle.x, strict=True)}
    print("MLE", dict(zip(draws, np.round(mle.x, 4), strict=True)))
    print("posterior mean - MLE, in posterior sds:", {k: round(float(v), 3) for k, v in z.items()})
    assert max(abs(v) for v in z.values()) < 0.1, z


@pytest.fixture(scope="module")
def grouped():
    """A fit with a group-level term and a phi formula, on simulated labels."""
    rng = np.random.default_rng(7)
    n, n_groups = 300, 12
    g = rng.integers(0, n_groups, n)
    x, z = rng.standard_normal(n), rng.standard_normal(n)
    b = rng.normal(0, 0.7, n_groups)
    eta = -0.3 + 0.8 * x + b[g]
    phi = np.exp(2.0 + 0.5 * z)
    y = simulate(rng, eta, phi, -2.5, 2.0)
    data = pd.DataFrame({"y": y, "x": x, "z": z, "g": [f"g{i}" for i in g]})
    model = sb.Model("y ~ x + (1|g)", data, likelihood="ordered_beta", phi_formula="~ z")
    fit = model.fit(draws=500, tune=500, chains=2, random_seed=5)
    return model, fit, data


def test_group_level_terms_and_phi_formula_recover_the_truth(grouped):
    model, fit, _ = grouped
    post = fit.posterior
    assert "cutzero" in model.priors.index and "cutone" in model.priors.index
    for name, true in (("x", 0.8), ("phi_z", 0.5), ("cutzero", -2.5), ("cutone", np.log(4.5))):
        v = post[name].values.ravel()
        assert abs(v.mean() - true) < 3.5 * v.std(), (name, v.mean(), v.std())
    sigma = post["1|g_sigma"].values.ravel()
    assert np.quantile(sigma, 0.01) < 0.7 < np.quantile(sigma, 0.99)


def _draw_params(fit, data, draws):
    """eta, phi, k1, k2 at some posterior draws, computed here from the named variables."""
    post = fit.posterior.to_dataset().stack(s=("chain", "draw")).isel(s=draws)
    levels = [str(v) for v in post["1|g"].coords["1|g__factor_dim"].values]
    b = post["1|g"].transpose("s", "1|g__factor_dim").values
    gi = np.array([levels.index(v) for v in data["g"]])
    eta = (post["Intercept"].values[:, None] + post["x"].values[:, None] * data["x"].values
           + b[:, gi])
    phi = np.exp(post["phi_Intercept"].values[:, None]
                 + post["phi_z"].values[:, None] * data["z"].values)
    k1 = post["cutzero"].values[:, None]
    k2 = k1 + np.exp(post["cutone"].values[:, None])
    return eta, phi, k1, k2


def test_pointwise_log_likelihood_and_mean_match_scipy(grouped):
    _, fit, data = grouped
    draws = np.arange(0, 1000, 97)
    eta, phi, k1, k2 = _draw_params(fit, data, draws)
    ref = ref_loglik(data["y"].values, eta, phi, k1, k2)
    ll = fit.log_likelihood.to_dataset()["y"].stack(s=("chain", "draw")).isel(s=draws)
    got = ll.transpose("s", ...).values
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
    mean = sb.predict(fit, data).stack(s=("chain", "draw")).isel(s=draws)
    ref_mean = expit(eta - k2) + (expit(eta - k1) - expit(eta - k2)) * expit(eta)
    np.testing.assert_allclose(mean.transpose("s", ...).values, ref_mean, rtol=1e-10)
    # held-out scores: the NumPy path of the same formula on rows given as new data
    held = sb.predict(fit, data.iloc[::7], kind="log_likelihood").stack(s=("chain", "draw"))
    np.testing.assert_allclose(held.isel(s=draws).transpose("s", ...).values, ref[:, ::7],
                               rtol=1e-9, atol=1e-9)
    pp = sb.predictive_draws(fit, data, random_seed=1).values
    assert ((pp >= 0) & (pp <= 1)).all()
    # the shares of exact 0s and 1s in the predictive draws are those of the model
    p0 = (1 - expit(eta - k1)).mean()
    assert abs((pp == 0).mean() - p0) < 0.03 and 0 < (pp == 1).mean() < 1


def test_comparison_refuses_ordered_beta_against_densities_on_labels_with_0_and_1(grouped):
    _, fit, data = grouped
    assert ((data.y == 0) | (data.y == 1)).any()
    beta = sb.Model("y ~ x + (1|g)", data, likelihood="beta", squeeze=True)
    beta_fit = beta.fit(draws=300, tune=300, chains=2, random_seed=1)
    pair = {"ordered_beta": fit, "beta": beta_fit}
    with pytest.raises(ValueError, match="Refusing to rank") as err:
        sb.compare(pair, elpd="all", kfold_fallback=None)
    assert "mixed_density" in str(err.value)
    cmp = sb.compare(pair, kfold_fallback=None, warn=False)
    groups = {g: list(t.index) for g, t in cmp.elpd_tables.items()}
    assert groups == {"mixed_density": ["ordered_beta"], "density": ["beta"]}
    # both meet on the common-scale scores of the labels as given
    assert set(cmp.scores.index) == {"ordered_beta", "beta"}
    assert np.isfinite(cmp.scores["log"].astype(float)).all()
