"""softbayes.Model builds its likelihood on the fused GLM kernels where it can.

Reference: the same Model with ``fused=False`` (the elementwise graph of softbayes.math), and
a NumPy evaluation of the log posterior from the design matrix. Value and gradient must agree
to 1e-10 at random points; the pointwise log-likelihood of a fit must agree to 1e-10.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr
from scipy.special import expit, log_expit

import softbayes as sb
from softbayes.backend.calibration import tempered_pymc_model
from softbayes.io.fits import posterior_dataset
from softbayes.math.continuous_bernoulli import cb_icdf

FAMILIES = ["weighted_bernoulli", "continuous_bernoulli"]


def _frame(family, n=400, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "x1": rng.normal(size=n),
        "x2": rng.normal(size=n) * 3 + 1,
        "g": rng.choice(["a", "b", "c"], n),
    })
    eta = -0.4 + 0.9 * df.x1 - 0.2 * df.x2 + (df.g == "b") * 0.5
    if family == "continuous_bernoulli":
        df["y"] = cb_icdf(rng.random(n), eta.to_numpy())
    else:
        df["y"] = np.clip(expit(eta) + rng.normal(0, 0.1, n), 0, 1)
        df.loc[:10, "y"] = [0.0, 1.0] * 5 + [0.0]  # exact 0/1 labels
    df["w"] = rng.integers(1, 5, n).astype(float)
    return df


def _op_names(model):
    f = model.logp_dlogp_function(ravel_inputs=True)
    return [type(n.op).__name__ for n in f._pytensor_function.maker.fgraph.toposort()]


def _logp_dlogp(model, point):
    f = model.logp_dlogp_function(ravel_inputs=True)
    f.set_extra_values({})
    x = np.concatenate([np.ravel(point[v.name]) for v in f._grad_vars])
    return f(x)


CASES = [
    ("weighted_bernoulli", "y ~ x1 + x2 + g", None),
    ("weighted_bernoulli", "y ~ 0 + x1 + x2", "w"),
    ("weighted_bernoulli", "y ~ x1 + scale(x2)", "w"),
    ("continuous_bernoulli", "y ~ x1 + x2 + g", None),
    ("continuous_bernoulli", "y ~ 0 + x2 + g", None),
]


@pytest.mark.parametrize(("family", "formula", "weights"), CASES)
def test_fused_model_matches_reference_graph(family, formula, weights):
    df = _frame(family)
    kw = {"weights": weights} if weights else {}
    fused = sb.Model(formula, df, likelihood=family, **kw)
    ref = sb.Model(formula, df, likelihood=family, fused=False, **kw)
    names = _op_names(fused.pymc_model)
    assert names.count("GLMLogpDlogp") == 1, names
    assert "GLMLogpDlogp" not in _op_names(ref.pymc_model)
    rng = np.random.default_rng(1)
    for _ in range(3):
        point = {k: v + rng.normal(size=np.shape(v)) * 0.5
                 for k, v in fused.pymc_model.initial_point(0).items()}
        (v1, g1), (v2, g2) = _logp_dlogp(fused.pymc_model, point), \
            _logp_dlogp(ref.pymc_model, point)
        np.testing.assert_allclose(v1, v2, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-10 * (1 + np.abs(g2).max()))


def test_fused_weighted_bernoulli_logp_matches_numpy():
    """The log posterior from the design matrix, written out in NumPy (independent of the
    package's math): priors from ``model.priors``, likelihood sum_i w_i [l_i log p_i +
    (1 - l_i) log(1 - p_i)]."""
    from scipy import stats

    df = _frame("weighted_bernoulli")
    model = sb.Model("y ~ x1 + x2", df, weights="w",
                     priors={"Intercept": {"dist": "Normal", "mu": 0, "sigma": 2},
                             "x1": {"dist": "Normal", "mu": 0, "sigma": 1.5},
                             "x2": {"dist": "Normal", "mu": 0.1, "sigma": 0.5}})
    m = model.pymc_model
    a, b1, b2 = 0.3, -0.7, 0.25
    point = {"Intercept_centered": a, "x1": b1, "x2": b2}
    x1c = df.x1 - df.x1.mean()
    x2c = df.x2 - df.x2.mean()
    eta = (a + b1 * x1c + b2 * x2c).to_numpy()
    lab, w = df.y.to_numpy(), df.w.to_numpy()
    loglik = np.sum(w * (lab * log_expit(eta) + (1 - lab) * log_expit(-eta)))
    prior = (stats.norm(0, 2).logpdf(a) + stats.norm(0, 1.5).logpdf(b1)
             + stats.norm(0.1, 0.5).logpdf(b2))
    val, grad = _logp_dlogp(m, point)
    np.testing.assert_allclose(val, loglik + prior, rtol=1e-10)
    resid = w * (lab - expit(eta))
    expected = np.array([resid.sum() - a / 4, resid @ x1c - b1 / 1.5**2,
                         resid @ x2c - (b2 - 0.1) / 0.25])
    f = m.logp_dlogp_function(ravel_inputs=True)
    order = [v.name for v in f._grad_vars]
    np.testing.assert_allclose(
        grad, expected[[["Intercept_centered", "x1", "x2"].index(nm) for nm in order]],
        rtol=1e-10)


@pytest.fixture(scope="module")
def cb_fits():
    df = _frame("continuous_bernoulli", n=300, seed=3)
    out = {}
    for fused in (True, False):
        model = sb.Model("y ~ x1 + g", df, likelihood="continuous_bernoulli", fused=fused)
        out[fused] = (model, model.fit(draws=100, tune=150, chains=2, random_seed=7))
    return out


def test_fused_fit_pointwise_log_likelihood_and_draws(cb_fits):
    model_f, fit_f = cb_fits[True]
    model_r, _ = cb_fits[False]
    # the pointwise log-likelihood of the fused fit, recomputed on the reference graph
    post = posterior_dataset(fit_f)
    tree = xr.DataTree.from_dict({"posterior": post})
    ref = sb.compute_log_likelihood(tree, model=model_r.pymc_model,
                                    extend_inferencedata=False)
    np.testing.assert_allclose(fit_f.log_likelihood["y"].values, ref["y"].values,
                               rtol=1e-10, atol=1e-10)
    # and with the family's NumPy math on the posterior draws
    params = model_f.description.params(post)
    by_family = model_f.family.logp(model_f.labels, **params)
    np.testing.assert_allclose(fit_f.log_likelihood["y"].values, by_family,
                               rtol=1e-10, atol=1e-10)
    assert fit_f.attrs["softbayes_likelihood_kernel"] == "fused"
    assert cb_fits[False][1].attrs["softbayes_likelihood_kernel"] == "graph"


def test_fused_posterior_agrees_with_reference(cb_fits):
    # Independent chains of the same posterior: means within 4 Monte Carlo standard errors
    import arviz as az

    (_, a), (_, b) = cb_fits[True], cb_fits[False]
    for var in ("Intercept", "x1"):
        ma, mb = float(a.posterior[var].mean()), float(b.posterior[var].mean())
        se = np.hypot(float(np.max(az.mcse(a.posterior[var]))),
                      float(np.max(az.mcse(b.posterior[var]))))
        assert abs(ma - mb) < 4 * se + 1e-3, (var, ma, mb, se)


def test_fused_model_refit_and_tempering():
    """Data swaps (set_data) and the dispersion-tempered model use the fused term too."""
    df = _frame("continuous_bernoulli", n=200, seed=5)
    model = sb.Model("y ~ x1 + x2", df, likelihood="continuous_bernoulli")
    other = _frame("continuous_bernoulli", n=150, seed=6)
    model.set_data(other)
    ref = sb.Model("y ~ x1 + x2", df, likelihood="continuous_bernoulli", fused=False)
    ref.set_data(other)
    point = {k: v + 0.3 for k, v in model.pymc_model.initial_point(0).items()}
    (v1, g1), (v2, g2) = _logp_dlogp(model.pymc_model, point), \
        _logp_dlogp(ref.pymc_model, point)
    np.testing.assert_allclose(v1, v2, rtol=1e-10)
    np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-10)

    tf = tempered_pymc_model(model.description, 0.4)
    tr = tempered_pymc_model(ref.description, 0.4)
    assert "GLMLogpDlogp" in _op_names(tf)
    (v1, g1), (v2, g2) = _logp_dlogp(tf, point), _logp_dlogp(tr, point)
    np.testing.assert_allclose(v1, v2, rtol=1e-10)
    np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-10)
    # tempering multiplies the log-likelihood by the rate
    with model.pymc_model:
        ll = pm.compile(model.pymc_model.value_vars,
                        model.pymc_model.logp(vars=model.pymc_model.observed_RVs))
    with tf:
        tll = pm.compile(tf.value_vars, tf.logp(vars=tf.observed_RVs + tf.potentials))
    args = [point[v.name] for v in model.pymc_model.value_vars]
    np.testing.assert_allclose(tll(*args), 0.4 * ll(*args), rtol=1e-10)


def test_group_terms_and_multiclass_use_the_graph():
    df = _frame("weighted_bernoulli")
    model = sb.Model("y ~ x1 + (1|g)", df)
    assert "GLMLogpDlogp" not in _op_names(model.pymc_model)
