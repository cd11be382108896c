"""Parameter recovery for each likelihood family of softbayes.Model.

Data are simulated in NumPy from each family with known coefficients (the Continuous
Bernoulli by its inverse CDF written out here, Beta and Dirichlet by NumPy); the 94%
equal-tailed posterior intervals must cover the truth. One compiled model per family
(module-scoped fixtures), short chains.
"""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit, softmax

import softbayes as sb
from softbayes.io.fits import fit_likelihood_var
from softbayes.terms.families import BetaFamily

DRAWS, TUNE, CHAINS = 500, 500, 2
FIT = {"draws": DRAWS, "tune": TUNE, "chains": CHAINS}
# The Continuous Bernoulli graph takes 30-60 s to JIT with numba (nutpie) on this 2-core
# machine; PyMC's NUTS on one core uses C functions cached on disk between runs.
FIT_PYMC = {**FIT, "sampler": "pymc", "cores": 1}

def interval(fit, name, prob=0.94):
    v = fit.posterior[name]
    v = v.stack(sample=("chain", "draw")).transpose("sample", ...).values
    lo, hi = np.quantile(v, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    return lo, hi


def assert_covers(fit, name, truth, prob=0.94):
    lo, hi = interval(fit, name, prob)
    truth = np.asarray(truth, dtype=float)
    ok = (lo <= truth) & (truth <= hi)
    assert np.all(ok), f"{name}: truth {truth} outside {prob:.0%} interval [{lo}, {hi}]"


def assert_loglik_matches_numpy(fit):
    """The stored pointwise log-likelihood (PyMC graph) equals the family's NumPy logp."""
    ll = fit.log_likelihood[fit_likelihood_var(fit)]
    assert ll.dims == ("chain", "draw", "obs")
    assert ll.shape == (CHAINS, DRAWS, fit.attrs["softbayes_n_obs"])
    again = sb.predict(fit, kind="log_likelihood")
    np.testing.assert_allclose(again.values, ll.values, rtol=1e-9, atol=1e-9)


def assert_attrs_serializable(fit):
    for k, v in fit.attrs.items():
        assert isinstance(v, str | int | float), (k, type(v))
    for key in ("softbayes_options", "softbayes_priors", "softbayes_label_columns"):
        json.loads(fit.attrs[key])
    for key in ("softbayes_family", "softbayes_formula", "softbayes_data_hash",
                "softbayes_labels_hash", "softbayes_log_likelihood_var"):
        assert fit.attrs[key]


# ----------------------------------------------------------------------------- weighted Bernoulli
@pytest.fixture(scope="module")
def wb_fit():
    """Labels are the share of m = 5 raters voting 1, weights m: the cross-entropy is then
    exactly the binomial likelihood, so the group sd is identified as in a GLMM."""
    rng = np.random.default_rng(20240601)
    n_groups, per = 30, 20
    n = n_groups * per
    g = np.repeat([f"g{i:02d}" for i in range(n_groups)], per)
    x = rng.normal(size=n)
    z = rng.uniform(0.5, 3.0, size=n)
    sd_g = 0.7
    u = rng.normal(0.0, sd_g, size=n_groups)
    eta = -0.3 + 0.8 * x + 0.5 * np.log(z) + u[np.repeat(np.arange(n_groups), per)]
    m = 5
    share = rng.binomial(m, expit(eta)) / m
    df = pd.DataFrame({"share": share, "x": x, "z": z, "g": g, "raters": float(m)})
    model = sb.Model("share ~ x + log(z) + (1|g)", df, weights="raters")
    fit = model.fit(random_seed=1, **FIT)
    truth = {"Intercept": -0.3, "x": 0.8, "log(z)": 0.5, "1|g_sigma": sd_g}
    return fit, truth


def test_weighted_bernoulli_recovers_coefficients_and_group_sd(wb_fit):
    fit, truth = wb_fit
    for name, value in truth.items():
        assert_covers(fit, name, value)
    # The group sd is recovered, not just covered by a huge interval.
    lo, hi = interval(fit, "1|g_sigma")
    assert hi - lo < 1.0


def test_weighted_bernoulli_fit_groups_and_attrs(wb_fit):
    fit, _ = wb_fit
    for group in ("posterior", "sample_stats", "log_likelihood", "observed_data",
                  "constant_data", "training_data"):
        assert group in fit.children
    assert fit.attrs["softbayes_family"] == "weighted_bernoulli"
    assert fit.attrs["softbayes_log_likelihood_kind"] == "cross_entropy"
    np.testing.assert_array_equal(fit.constant_data["weights"].values, 5.0)
    assert_attrs_serializable(fit)
    assert_loglik_matches_numpy(fit)
    # Non-centred parametrization: the group effects are sigma * offset.
    post = fit.posterior
    np.testing.assert_allclose(post["1|g"].values, post["1|g_sigma"].values[..., None]
                               * post["1|g_offset"].values)


# ----------------------------------------------------------------------------- Continuous Bernoulli
def cb_draws(rng, eta):
    """Inverse-CDF draws Q(u) = log1p(u expm1(eta)) / eta (u at eta = 0)."""
    u = rng.random(eta.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.log1p(u * np.expm1(eta)) / eta
    return np.where(np.abs(eta) < 1e-12, u, q)


def cb_mean_direct(eta):
    """1/(1 - e^-eta) - 1/eta, the Continuous Bernoulli mean, straight from the formula."""
    return 1.0 / (1.0 - np.exp(-eta)) - 1.0 / eta


@pytest.fixture(scope="module")
def cb_fit():
    rng = np.random.default_rng(7)
    n = 400
    x = rng.normal(size=n)
    g = rng.choice(["a", "b", "c"], size=n)
    eta = 0.5 + 1.5 * x - 1.0 * (g == "b") + 0.8 * (g == "c")
    df = pd.DataFrame({"y": cb_draws(rng, eta), "x": x, "g": g})
    model = sb.Model("y ~ x + g", df, likelihood="continuous_bernoulli")
    fit = model.fit(random_seed=2, **FIT_PYMC)
    truth = {"Intercept": 0.5, "x": 1.5, "g": [-1.0, 0.8]}
    return fit, truth, df


def test_continuous_bernoulli_recovers_coefficients(cb_fit):
    fit, truth, _ = cb_fit
    assert list(fit.posterior["g_dim"].values) == ["g[b]", "g[c]"]
    for name, value in truth.items():
        assert_covers(fit, name, value)
    assert fit.attrs["softbayes_sampler"] == "pymc"
    assert_loglik_matches_numpy(fit)


def test_continuous_bernoulli_predict_is_cb_mean_of_lambda(cb_fit):
    fit, _, _ = cb_fit
    new = pd.DataFrame({"x": [-2.0, -0.3, 0.0, 0.7, 2.5], "g": ["a", "b", "c", "a", "c"]})
    pred = sb.predict(fit, new)
    assert pred.dims == ("chain", "draw", "obs")
    # Independent computation from the posterior draws.
    post = fit.posterior
    a = post["Intercept"].values[..., None]
    bx = post["x"].values[..., None]
    gb = post["g"].sel(g_dim="g[b]").values[..., None]
    gc = post["g"].sel(g_dim="g[c]").values[..., None]
    eta = a + bx * new.x.values + gb * (new.g.values == "b") + gc * (new.g.values == "c")
    expected = cb_mean_direct(eta)
    np.testing.assert_allclose(pred.values, expected, rtol=1e-7, atol=1e-9)
    # The CB mean is not lambda.
    assert np.abs(pred.values - expit(eta)).max() > 0.05


# ----------------------------------------------------------------------------- Beta
@pytest.fixture(scope="module")
def beta_fit():
    rng = np.random.default_rng(11)
    n = 500
    x = rng.normal(size=n)
    z = rng.normal(size=n)
    mu = expit(-0.5 + 0.8 * x)
    phi = np.exp(2.5 + 0.5 * z)
    df = pd.DataFrame({"y": rng.beta(mu * phi, (1 - mu) * phi), "x": x, "z": z})
    model = sb.Model("y ~ x", df, likelihood="beta", phi_formula="~ z")
    fit = model.fit(random_seed=3, **FIT)
    truth = {"Intercept": -0.5, "x": 0.8, "phi_Intercept": 2.5, "phi_z": 0.5}
    return fit, truth


def test_beta_recovers_mean_and_precision_coefficients(beta_fit):
    fit, truth = beta_fit
    for name, value in truth.items():
        assert_covers(fit, name, value)
    assert fit.attrs["softbayes_phi_formula"] == "z"
    assert fit.attrs["softbayes_squeeze"] == 0
    assert_loglik_matches_numpy(fit)


def test_beta_logp_matches_scipy():
    rng = np.random.default_rng(0)
    y = rng.uniform(0.001, 0.999, size=50)
    eta = rng.normal(size=50) * 2
    phi = rng.uniform(0.5, 100, size=50)
    mu = expit(eta)
    ours = BetaFamily().logp(y, eta=eta, phi=phi)
    np.testing.assert_allclose(ours, stats.beta.logpdf(y, mu * phi, (1 - mu) * phi),
                               rtol=1e-10)


# ----------------------------------------------------------------------------- Bernoulli
@pytest.fixture(scope="module")
def bernoulli_fit():
    rng = np.random.default_rng(5)
    n = 500
    x = rng.normal(size=n)
    y = rng.random(n) < expit(0.3 + 1.0 * x)
    # Soft labels on the right side of 0.5; a quarter of them already hard.
    soft = np.where(y, rng.uniform(0.5, 1.0, n), rng.uniform(0.0, 0.4999, n))
    hard = rng.random(n) < 0.25
    labels = np.where(hard, y.astype(float), soft)
    df = pd.DataFrame({"l": labels, "x": x})
    n_soft = int(((labels != 0) & (labels != 1)).sum())
    with pytest.warns(UserWarning, match=rf"{n_soft} of {n} labels .* thresholded at 0.5"):
        model = sb.Model("l ~ x", df, likelihood="bernoulli")
    fit = model.fit(random_seed=4, **FIT)
    return fit, {"Intercept": 0.3, "x": 1.0}, y, n_soft


def test_bernoulli_thresholds_and_recovers(bernoulli_fit):
    fit, truth, y, n_soft = bernoulli_fit
    for name, value in truth.items():
        assert_covers(fit, name, value)
    np.testing.assert_array_equal(fit.observed_data["l"].values, y.astype(float))
    assert fit.attrs["softbayes_n_thresholded"] == n_soft
    assert fit.attrs["softbayes_threshold"] == 0.5
    assert fit.attrs["softbayes_log_likelihood_kind"] == "probability"
    assert_loglik_matches_numpy(fit)


# ----------------------------------------------------------------------------- soft categorical
@pytest.fixture(scope="module")
def cat_fit():
    rng = np.random.default_rng(9)
    n = 400
    x = rng.normal(size=n)
    logits = np.column_stack([np.zeros(n), 0.5 + 1.0 * x, -0.3 - 0.8 * x])
    p = softmax(logits, axis=1)
    labels = np.array([rng.dirichlet(30 * row) for row in p])
    df = pd.DataFrame({"p_a": labels[:, 0], "p_b": labels[:, 1], "p_c": labels[:, 2], "x": x})
    df[["p_a", "p_b", "p_c"]] = df[["p_a", "p_b", "p_c"]].div(
        df[["p_a", "p_b", "p_c"]].sum(axis=1), axis=0)
    model = sb.Model("c(p_a, p_b, p_c) ~ x", df, likelihood="soft_categorical")
    fit = model.fit(random_seed=5, **FIT)
    return fit, {"Intercept": [0.5, -0.3], "x": [1.0, -0.8]}


def test_soft_categorical_recovers_and_predicts_probability_vectors(cat_fit):
    fit, truth = cat_fit
    assert list(fit.posterior["class_reduced"].values) == ["p_b", "p_c"]
    for name, value in truth.items():
        assert_covers(fit, name, value)
    pred = sb.predict(fit, pd.DataFrame({"x": [-1.0, 0.0, 2.0]}))
    assert pred.dims == ("chain", "draw", "obs", "class")
    np.testing.assert_allclose(pred.sum("class").values, 1.0)
    post = fit.posterior
    eta = np.stack([np.zeros_like(post["Intercept"].sel(class_reduced="p_b").values)]
                   + [post["Intercept"].sel(class_reduced=c).values
                      + post["x"].sel(class_reduced=c).values * 2.0 for c in ("p_b", "p_c")],
                   axis=-1)
    np.testing.assert_allclose(pred.isel(obs=2).values, softmax(eta, axis=-1), rtol=1e-10)
    pp = sb.predictive_draws(fit, random_seed=0)
    np.testing.assert_array_equal(pp.sum("class").values, 1.0)
    assert set(np.unique(pp.values)) <= {0.0, 1.0}
    assert_loglik_matches_numpy(fit)
