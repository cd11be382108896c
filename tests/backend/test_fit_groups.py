"""A fit is a complete DataTree: predictive groups drawn from the right law, variables named
after the label column, observations' coords, a default ``az.summary`` without the centred
intercept, and a warning for potentials ``compute_log_likelihood`` cannot split."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytest
from scipy import special as sp
from scipy import stats

import softbayes as sb
from softbayes.backend.result import (
    PREDICTIVE_MAX_VALUES,
    PRIOR_DRAWS,
    add_predictive,
    wants_predictive,
)
from softbayes.io.fits import INTERNAL_GROUP, posterior_dataset

N = 40
CHAINS, DRAWS = 2, 200


def _data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    share = np.clip(sp.expit(0.4 + x) + rng.normal(0.0, 0.08, n), 0.02, 0.98)
    # an index of the user's own: the fit's observations carry it
    return pd.DataFrame({"share": share, "x": x}, index=np.arange(100, 100 + 2 * n, 2))


def _fit(family, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains may warn about ESS
        model = sb.Model("share ~ x", _data(), likelihood=family)
        return model, model.fit(draws=DRAWS, tune=300, chains=CHAINS, random_seed=3,
                                progressbar=False, **kw)


@pytest.fixture(scope="module")
def cb():
    return _fit("continuous_bernoulli")


@pytest.fixture(scope="module")
def wb():
    return _fit("weighted_bernoulli")


def _eta(model, params):
    return model.description.params(params)["eta"]


def _cb_cdf_values(y, eta):
    """CB(eta) CDF at y, (e^{eta y} - 1) / (e^eta - 1): uniform if y ~ CB(eta)."""
    small = np.abs(eta) < 1e-8
    safe = np.where(small, 1.0, eta)
    return np.where(small, y, np.expm1(safe * y) / np.expm1(safe))


def test_groups_names_and_coords(cb):
    _, fit = cb
    for group in ("posterior", "posterior_predictive", "prior", "prior_predictive",
                  "log_likelihood", "observed_data", "constant_data", "training_data",
                  INTERNAL_GROUP):
        assert group in fit.children, group
    index = _data().index.to_numpy()
    for group in ("posterior_predictive", "prior_predictive", "log_likelihood",
                  "observed_data"):
        ds = fit[group].to_dataset()
        assert list(ds.data_vars) == ["share"], group
        np.testing.assert_array_equal(ds["obs"].values, index)
    assert "labels" not in fit["log_likelihood"].data_vars
    assert fit.attrs["softbayes_log_likelihood_var"] == "share"
    assert fit["posterior_predictive"]["share"].shape == (CHAINS, DRAWS, N)
    assert fit["prior_predictive"]["share"].shape == (1, PRIOR_DRAWS, N)
    assert fit["posterior_predictive"].attrs["predictive_check"] == "density"


def test_posterior_predictive_follows_the_continuous_bernoulli(cb):
    model, fit = cb
    y = fit["posterior_predictive"]["share"].values
    eta = _eta(model, posterior_dataset(fit))
    res = stats.kstest(_cb_cdf_values(y, eta).ravel(), "uniform")
    assert res.pvalue > 1e-3, res


def test_prior_predictive_follows_the_prior_draws(cb):
    model, fit = cb
    y = fit["prior_predictive"]["share"].values
    eta = _eta(model, fit["prior"].to_dataset())
    assert np.all((y >= 0) & (y <= 1))
    res = stats.kstest(_cb_cdf_values(y, eta).ravel(), "uniform")
    assert res.pvalue > 1e-3, res
    # the prior draws are the priors': Intercept_centered ~ Normal(0, 2.5) by default
    ic = fit["prior"]["Intercept_centered"].values.ravel()
    assert stats.kstest(ic, stats.norm(0, 2.5).cdf).pvalue > 1e-3


def test_cross_entropy_draws_are_hard_outcomes_with_the_right_mean(wb):
    model, fit = wb
    pp = fit["posterior_predictive"]
    assert pp.attrs["predictive_check"] == "reliability"
    assert "hard outcomes" in pp["share"].attrs["draws"]
    y = pp["share"].values
    assert set(np.unique(y)) <= {0.0, 1.0}
    q = sp.expit(_eta(model, posterior_dataset(fit)))
    # y - q has mean 0 and variance mean(q (1 - q)) over all draws and rows
    z = (y - q).sum() / np.sqrt((q * (1 - q)).sum())
    assert abs(z) < 4


@pytest.mark.parametrize("which", ["cb", "wb"])
def test_predictive_groups_warn_about_nothing(which, request):
    """No warning a user cannot act on (the potential likelihood of the cross-entropy
    families is rightly left out of the prior)."""
    model, fit = request.getfixturevalue(which)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        add_predictive(fit.copy(), model.description, model.pymc_model, random_seed=0)


def test_predictive_option_and_size_rule():
    model, fit = _fit("continuous_bernoulli", predictive=False)
    for group in ("posterior_predictive", "prior", "prior_predictive"):
        assert group not in fit.children
    desc = model.description
    assert wants_predictive(None, desc, 4, 1000)
    # posterior predictive (4 chains) and the prior predictive's PRIOR_DRAWS count together
    fits = PREDICTIVE_MAX_VALUES // N - PRIOR_DRAWS
    assert wants_predictive(None, desc, 1, fits)
    assert not wants_predictive(None, desc, 1, fits + 1)
    assert wants_predictive(None, desc, 4, fits // 4)
    assert not wants_predictive(None, desc, 4, fits // 4 + 1)
    assert wants_predictive(True, desc, 4, 10**9)
    assert not wants_predictive(False, desc, 1, 1)
    with pytest.raises(TypeError, match="predictive"):
        wants_predictive("yes", desc, 1, 1)


def test_default_summary_shows_what_users_read(cb):
    _, fit = cb
    table = az.summary(fit, kind="stats")
    rows = set(table.index)
    assert {"Intercept", "x"} <= rows
    assert not any("Intercept_centered" in r for r in rows)
    # still there for computations, diagnostics and on request
    assert "Intercept_centered" in posterior_dataset(fit)
    assert "Intercept_centered" in az.summary(fit, group=INTERNAL_GROUP, kind="stats").index


def test_arviz_predictive_checks_take_the_fit(cb):
    azp = pytest.importorskip("arviz_plots")
    import matplotlib

    matplotlib.use("Agg")
    _, fit = cb
    azp.plot_ppc_dist(fit, num_samples=20)
    azp.plot_ppc_dist(fit, group="prior_predictive", num_samples=20)


# -------------------------------------------------------------- unregistered potentials


def _potential_model(plain=True, registered=True):
    rng = np.random.default_rng(0)
    x = rng.normal(size=20)
    labels = np.clip(sp.expit(x) + rng.normal(0, 0.05, 20), 0.01, 0.99)
    with pm.Model() as m:
        b = pm.Normal("b", 0.0, 1.0)
        if registered:
            sb.WeightedBernoulli("lik", labels=labels, logit_p=b * x)
        if plain:
            pm.Potential("penalty", -0.5 * b**2)
    post = az.from_dict({"posterior": {"b": rng.normal(size=(2, 10))}})
    return m, post


def test_unregistered_potentials_warn():
    m, post = _potential_model()
    with pytest.warns(UserWarning, match=r"\['penalty'\] are not softbayes likelihood terms"):
        ll = sb.compute_log_likelihood(post, model=m, extend_inferencedata=False)
    assert list(ll.data_vars) == ["lik"]


def test_registered_potentials_alone_are_silent():
    m, post = _potential_model(plain=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ll = sb.compute_log_likelihood(post, model=m, extend_inferencedata=False)
    assert ll["lik"].shape == (2, 10, 20)
    # naming the variables asked for: nothing left out unasked, no warning
    m, post = _potential_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb.compute_log_likelihood(post, model=m, var_names=["lik"], extend_inferencedata=False)


def test_only_plain_potentials_is_an_error_naming_them():
    m, post = _potential_model(registered=False)
    with pytest.raises(ValueError, match=r"\['penalty'\] are plain pm.Potential"):
        sb.compute_log_likelihood(post, model=m)
