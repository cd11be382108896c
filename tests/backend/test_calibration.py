"""Calibrated uncertainty (softbayes.backend.calibration): dispersion, sandwich, adjusted draws."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import special as sp

import softbayes as sb
from softbayes.backend import calibration as cal
from softbayes.io.fits import posterior_dataset
from softbayes.math.continuous_bernoulli import cb_logp

N = 500
BETA = np.array([0.3, 1.0, -0.5])


def _data(seed=0, noise="gauss", n=N):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.standard_normal((n, 2))])
    mu = sp.expit(X @ BETA)
    if noise == "gauss":
        lab = np.clip(mu + rng.normal(0.0, 0.05, n), 0.0, 1.0)
    elif noise == "beta":
        lab = rng.beta(30 * mu, 30 * (1 - mu))
    else:
        lab = mu.copy()
    return X, lab, mu


def test_sandwich_matches_statsmodels_hc0():
    X, lab, _ = _data()
    res = sm.GLM(lab, X, family=sm.families.Binomial()).fit(cov_type="HC0", tol=1e-14)
    theta = cal.find_mode("weighted_bernoulli", lab, X)
    np.testing.assert_allclose(theta, res.params, rtol=1e-9, atol=1e-12)
    cov, H, _ = cal.sandwich_covariance("weighted_bernoulli", lab, X, theta)
    ref = np.asarray(res.cov_params())
    np.testing.assert_allclose(cov, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
    # H is the (observed = expected) information of the logit GLM
    ref_h = np.linalg.inv(np.asarray(sm.GLM(lab, X, family=sm.families.Binomial())
                                     .fit(tol=1e-14).cov_params()))
    np.testing.assert_allclose(H, ref_h, rtol=1e-6)


def test_dispersion_matches_statsmodels_pearson():
    X, lab, _ = _data(1)
    res = sm.GLM(lab, X, family=sm.families.Binomial()).fit(tol=1e-14)
    phi = cal.estimate_dispersion("weighted_bernoulli", lab, X=X)
    assert phi == pytest.approx(res.pearson_chi2 / res.df_resid, rel=1e-8)
    # same from eta at the mode
    phi2 = cal.estimate_dispersion("weighted_bernoulli", lab, eta=X @ res.params, n_params=3)
    assert phi2 == pytest.approx(phi, rel=1e-8)
    # weighted rows: statsmodels var_weights
    w = np.random.default_rng(2).uniform(0.5, 3.0, N)
    resw = sm.GLM(lab, X, family=sm.families.Binomial(), var_weights=w).fit(tol=1e-14)
    phiw = cal.estimate_dispersion("weighted_bernoulli", lab, X=X, weights=w)
    assert phiw == pytest.approx(resw.pearson_chi2 / resw.df_resid, rel=1e-8)
    # the Beta noise dispersion is 1 / (kappa + 1)
    Xb, labb, _ = _data(3, "beta", n=20000)
    assert cal.estimate_dispersion("weighted_bernoulli", labb, X=Xb) == pytest.approx(
        1 / 31, rel=0.05)


def _numeric_info(family, lab, X, theta, eps=1e-6):
    k = theta.size
    out = np.zeros((k, k))
    for j in range(k):
        e = np.zeros(k)
        e[j] = eps
        gp = cal.glm_quantities(family, lab, X, theta + e)["grad"]
        gm = cal.glm_quantities(family, lab, X, theta - e)["grad"]
        out[:, j] = -(gp - gm) / (2 * eps)
    return out


def test_continuous_bernoulli_scores_and_curvature():
    X, lab, _ = _data(4, "beta")
    theta = np.array([0.5, 2.0, -1.0])
    q = cal.glm_quantities("continuous_bernoulli", lab, X, theta)
    assert q["loglik"] == pytest.approx(np.sum(cb_logp(lab, X @ theta)), rel=1e-12)
    eps = 1e-6
    for j in range(3):
        e = np.zeros(3)
        e[j] = eps
        num = (np.sum(cb_logp(lab, X @ (theta + e))) - np.sum(cb_logp(lab, X @ (theta - e))))
        assert q["grad"][j] == pytest.approx(num / (2 * eps), rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(q["info"], _numeric_info("continuous_bernoulli", lab, X, theta),
                               rtol=1e-5, atol=1e-5)


def test_soft_categorical_matches_multinomial_glm():
    rng = np.random.default_rng(5)
    X = np.column_stack([np.ones(N), rng.standard_normal((N, 2))])
    B = np.array([[0.2, -0.3], [1.0, 0.4], [-0.5, 0.8]])
    eta = np.column_stack([np.zeros(N), X @ B])
    P = sp.softmax(eta, axis=1)
    lab = np.array([rng.dirichlet(40 * p) for p in P])
    theta = cal.find_mode("soft_categorical", lab, X)
    q = cal.glm_quantities("soft_categorical", lab, X, theta)
    np.testing.assert_allclose(q["grad"], 0.0, atol=1e-8)
    np.testing.assert_allclose(q["info"], _numeric_info("soft_categorical", lab, X, theta),
                               rtol=1e-5, atol=1e-5)
    # K = 2 reduces to the weighted Bernoulli
    X2, l2, _ = _data(6)
    L2 = np.column_stack([1 - l2, l2])
    t2 = cal.find_mode("soft_categorical", L2, X2)
    np.testing.assert_allclose(t2, cal.find_mode("weighted_bernoulli", l2, X2), atol=1e-9)
    c2, _, _ = cal.sandwich_covariance("soft_categorical", L2, X2, t2)
    c1, _, _ = cal.sandwich_covariance("weighted_bernoulli", l2, X2, t2)
    np.testing.assert_allclose(c2, c1, rtol=1e-9)
    # multinomial Pearson on n(K-1) - p df: for K = 2, r^2/pi + r^2/(1-pi) = the binary X^2
    phi2 = cal.estimate_dispersion("soft_categorical", L2, X=X2)
    phi1 = cal.estimate_dispersion("weighted_bernoulli", l2, X=X2)
    assert phi2 == pytest.approx(phi1, rel=1e-8)


def test_noiseless_labels_refused_with_message():
    X, lab, _ = _data(7, "none")
    phi = cal.estimate_dispersion("weighted_bernoulli", lab, X=X)
    assert phi < cal.NOISELESS_DISPERSION
    with pytest.raises(cal.NoiselessLabelsError, match="no noise"):
        cal.check_noise(phi, "weighted_bernoulli")
    assert isinstance(cal.NoiselessLabelsError("x"), ValueError)


def test_dispersion_message_words():
    msg = cal.dispersion_message(0.1, "weighted_bernoulli")
    assert "10x less" in msg and "3.2x too wide" in msg and "calibrate='sandwich'" in msg
    msg = cal.dispersion_message(4.0, "continuous_bernoulli")
    assert "4x more" in msg and "2x too narrow" in msg
    assert cal.dispersion_warning(1.2) is None
    assert cal.dispersion_warning(0.3) is not None


@pytest.mark.parametrize("method", ["cholesky", "symmetric"])
def test_adjusted_draws_have_sandwich_covariance_and_same_mode(method):
    X, lab, _ = _data(8)
    prec = np.full(3, 1 / 2.5**2)
    theta = cal.find_mode("weighted_bernoulli", lab, X, prior_precision=prec)
    cov_s, H, _ = cal.sandwich_covariance("weighted_bernoulli", lab, X, theta,
                                          prior_precision=prec)
    rng = np.random.default_rng(9)
    draws = rng.multivariate_normal(theta, np.linalg.inv(H), size=4000)
    A = cal.adjustment_matrix(np.cov(draws, rowvar=False), cov_s, method)
    adj = cal.adjust_draws(draws, theta, A)
    np.testing.assert_allclose(np.cov(adj, rowvar=False), cov_s, rtol=1e-8,
                               atol=1e-10 * np.abs(cov_s).max())
    np.testing.assert_allclose(cal.adjust_draws(theta[None], theta, A)[0], theta)
    if method == "symmetric":
        np.testing.assert_allclose(A, A.T, atol=1e-10)
    # ~7x narrower than the Bernoulli-information posterior at label sd 0.05
    ratio = np.sqrt(np.diag(np.linalg.inv(H)) / np.diag(cov_s))
    assert np.all(ratio > 3)


def test_unknown_family_and_bad_calibrate():
    with pytest.raises(ValueError, match="beta"):
        cal.estimate_dispersion("beta", np.full(5, 0.5), eta=np.zeros(5), n_params=1)


@pytest.mark.slow
def test_coverage_small_run():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from validation.coverage import run

    df = run(100, progress=False, settings=("beta100",))
    wb = df[(df.family == "weighted_bernoulli")].set_index("calibration").coverage
    assert wb["none"] > 0.98  # uncalibrated: far too wide
    for m in ("dispersion", "sandwich"):
        assert 0.82 <= wb[m] <= 0.97, (m, wb[m])
    cb = df[(df.family == "continuous_bernoulli") & (df.target == "cb_pseudo")]
    for m in ("dispersion", "sandwich"):
        c = cb.set_index("calibration").coverage[m]
        assert 0.75 <= c <= 0.97, (m, c)


# -- the Model layer (Model.fit(calibrate=...)) ----------------------------------------------
def _frame(seed=11, n=300, kappa=50.0, exact=False, groups=False):
    rng = np.random.default_rng(seed)
    x, z = rng.standard_normal(n), rng.standard_normal(n)
    mu = sp.expit(0.3 + x - 0.5 * z)
    y = mu if exact else rng.beta(kappa * mu, kappa * (1 - mu))
    df = pd.DataFrame({"y": y, "x": x, "z": z})
    if groups:
        df["g"] = rng.choice(list("abcd"), n)
    return df


def test_model_calibration_refusals():
    with pytest.raises(ValueError, match="group-level"):
        sb.Model("y ~ x + (1|g)", _frame(groups=True)).fit(calibrate="sandwich")
    with pytest.raises(ValueError, match="beta family"):
        sb.Model("y ~ x", _frame(), likelihood="beta").fit(calibrate="dispersion")
    with pytest.raises(ValueError, match="calibrate must be"):
        sb.Model("y ~ x", _frame()).fit(calibrate="hc0")
    with pytest.raises(cal.NoiselessLabelsError, match="no noise"):
        sb.Model("y ~ x + z", _frame(exact=True)).fit(calibrate="sandwich")


def test_model_fit_sandwich_and_dispersion_record():
    df = _frame()
    model = sb.Model("y ~ x + z", df)
    fit = model.fit(draws=300, tune=300, chains=2, random_seed=3, calibrate="sandwich")
    a = fit.attrs
    assert a["softbayes_calibration"] == "sandwich"
    assert 0.005 < a["softbayes_dispersion"] < 0.05  # Beta(50) noise: 1/51
    post = posterior_dataset(fit)
    draws = np.column_stack([post[v].values.ravel() for v in ("Intercept_centered", "x", "z")])
    cov = np.asarray(json.loads(a["softbayes_sandwich_covariance"]))
    np.testing.assert_allclose(np.cov(draws, rowvar=False), cov, rtol=1e-8)
    mode = np.asarray(json.loads(a["softbayes_sandwich_mode"]))
    lay = cal.coefficients(model.description)
    np.testing.assert_allclose(mode, cal.find_mode(
        "weighted_bernoulli", model.labels, lay.Z,
        prior_precision=cal.normal_prior(model.description, lay)[1]), rtol=1e-8)
    # deterministic intercept follows the adjusted draws
    d = model.description.main.design
    icpt = post["Intercept_centered"] - post["x"] * d.means[1] - post["z"] * d.means[2]
    np.testing.assert_allclose(post["Intercept"].values, icpt.values, atol=1e-12)
    # log_likelihood recomputed on the adjusted draws (family logp)
    ll = fit["log_likelihood"]["y"].values
    eta = model.description.params(post)["eta"]
    np.testing.assert_allclose(ll, model.family.logp(model.labels, eta=eta), rtol=1e-10)
    mean = sb.predict(fit, model=model)
    assert mean.shape == (2, 300, 300)
    # an uncalibrated fit of the same model records the dispersion too (and warns)
    with pytest.warns(UserWarning, match="7.1x too wide"):
        plain = model.fit(draws=200, tune=200, chains=2, random_seed=4)
    assert plain.attrs["softbayes_calibration"] == "none"
    assert plain.attrs["softbayes_dispersion"] == pytest.approx(a["softbayes_dispersion"],
                                                                rel=0.05)
    sd_plain = plain["posterior"]["x"].std().item()
    sd_cal = post["x"].std().item()
    assert 3 < sd_plain / sd_cal < 12  # ~ sqrt(51) = 7
    # post-hoc sandwich on an existing fit equals calibrate="sandwich"'s covariance
    adj = cal.calibrate_fit(plain, model=model)
    p2 = posterior_dataset(adj)
    d2 = np.column_stack([p2[v].values.ravel() for v in ("Intercept_centered", "x", "z")])
    np.testing.assert_allclose(np.cov(d2, rowvar=False), cov, rtol=1e-8)


@pytest.mark.slow
def test_model_fit_dispersion_continuous_bernoulli():
    model = sb.Model("y ~ x + z", _frame(12), likelihood="continuous_bernoulli")
    fit = model.fit(draws=300, tune=300, chains=2, random_seed=5, calibrate="dispersion")
    a = fit.attrs
    assert a["softbayes_calibration"] == "dispersion"
    assert a["softbayes_learning_rate"] == pytest.approx(1 / a["softbayes_dispersion"])
    lay = cal.coefficients(model.description)
    w = np.full(model.n_obs, a["softbayes_learning_rate"])
    prec = cal.normal_prior(model.description, lay)[1]
    tw = cal.find_mode("continuous_bernoulli", model.labels, lay.Z, w, prior_precision=prec)
    sd_laplace = np.sqrt(np.diag(np.linalg.inv(
        cal.glm_quantities("continuous_bernoulli", model.labels, lay.Z, tw, w)["info"]
        + np.diag(prec))))
    post = posterior_dataset(fit)
    assert post["x"].std().item() == pytest.approx(sd_laplace[1], rel=0.2)
    ll = fit["log_likelihood"]["y"].values
    eta = model.description.params(post)["eta"]
    np.testing.assert_allclose(ll, model.family.logp(model.labels, eta=eta), rtol=1e-8)


@pytest.mark.slow
def test_model_fit_sandwich_soft_categorical():
    rng = np.random.default_rng(13)
    n = 300
    x = rng.standard_normal(n)
    eta = np.column_stack([np.zeros(n), 0.2 + x, -0.3 + 0.5 * x])
    P = sp.softmax(eta, axis=1)
    L = np.array([rng.dirichlet(30 * p) for p in P])
    df = pd.DataFrame({"a": L[:, 0], "b": L[:, 1], "c": L[:, 2], "x": x})
    model = sb.Model("c(a, b, c) ~ x", df, likelihood="soft_categorical")
    fit = model.fit(draws=300, tune=300, chains=2, random_seed=6, calibrate="sandwich")
    a = fit.attrs
    assert 0.01 < a["softbayes_dispersion"] < 0.1  # Dirichlet(30): 1/31
    post = posterior_dataset(fit)
    lay = cal.coefficients(model.description)
    draws = lay.layout.stack(post).reshape(-1, lay.size)
    cov = np.asarray(json.loads(a["softbayes_sandwich_covariance"]))
    np.testing.assert_allclose(np.cov(draws, rowvar=False), cov, rtol=1e-8)
    ll = fit["log_likelihood"]["a__b__c"].values
    np.testing.assert_allclose(
        ll, model.family.logp(model.labels, eta=model.description.params(post)["eta"]),
        rtol=1e-8)
