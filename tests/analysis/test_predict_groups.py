"""``predict(kind="pp")`` returns what ArviZ's predictive checks read, and fits written with
the likelihood variable ``labels`` (and no separate centred intercept, no predictive groups,
``obs`` = 0..n-1) still load, predict, compare and rebuild their model."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import special as sp
from scipy import stats

import softbayes as sb
from softbayes.io.attrs import FitAttrs
from softbayes.io.fits import INTERNAL_GROUP, posterior_dataset

N = 30


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(4)
    x = rng.normal(size=N)
    share = np.clip(sp.expit(-0.2 + 0.8 * x) + rng.normal(0.0, 0.08, N), 0.02, 0.98)
    return pd.DataFrame({"share": share, "x": x}, index=[f"r{i}" for i in range(N)])


@pytest.fixture(scope="module")
def fitted(data):
    model = sb.Model("share ~ x", data, likelihood="continuous_bernoulli")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(draws=200, tune=300, chains=2, random_seed=8, progressbar=False)
    return model, fit


def _old_format(fit):
    """The fit as written with the likelihood variable ``labels``: one posterior group,
    no predictive groups, observations numbered 0..n-1."""
    old = fit.copy(deep=True)
    post = posterior_dataset(old)
    for group in (INTERNAL_GROUP, "posterior_predictive", "prior", "prior_predictive"):
        del old[group]
    old["posterior"] = post
    n = old["observed_data"].sizes["obs"]
    for group in ("log_likelihood", "observed_data", "constant_data", "training_data"):
        ds = old[group].to_dataset().assign_coords(obs=np.arange(n))
        old[group] = ds.rename({"share": "labels"}) if group in ("log_likelihood",
                                                                 "observed_data") else ds
    old.attrs.update(FitAttrs(log_likelihood_var="labels").to_attrs())
    return old


def _cb_mean(eta):
    """1 / (1 - e^-eta) - 1 / eta: the Continuous Bernoulli mean, straight from its formula."""
    return 1.0 / (-np.expm1(-eta)) - 1.0 / eta


def test_pp_is_a_tree_arviz_reads(fitted, data):
    _, fit = fitted
    tree = sb.predict(fit, kind="pp", random_seed=1)
    assert isinstance(tree, xr.DataTree)
    pp = tree["posterior_predictive"]
    assert list(pp.data_vars) == ["share"]
    assert pp["share"].dims == ("chain", "draw", "obs")
    assert list(pp["obs"].values) == list(data.index)
    assert pp.attrs["predictive_check"] == "density"
    np.testing.assert_array_equal(tree["observed_data"]["share"].values, data["share"].values)
    # new rows without labels: draws only
    new = pd.DataFrame({"x": [-1.0, 0.0, 2.0]}, index=[7, 8, 9])
    tree = sb.predict(fit, new, kind="pp", random_seed=1)
    assert "observed_data" not in tree.children
    assert list(tree["posterior_predictive"]["obs"].values) == [7, 8, 9]
    # new rows with labels: their labels too
    new["share"] = [0.2, 0.5, 0.9]
    tree = sb.predict(fit, new, kind="pp", random_seed=1)
    np.testing.assert_array_equal(tree["observed_data"]["share"].values, [0.2, 0.5, 0.9])


def test_pp_draws_follow_the_law_given_each_draw(fitted):
    _, fit = fitted
    y = sb.predict(fit, kind="pp", random_seed=2)["posterior_predictive"]["share"].values
    eta = sb.predict(fit, kind="linear").values
    u = np.expm1(eta * y) / np.expm1(eta)  # CB(eta) CDF at y
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3


def test_fit_written_with_labels_still_works(fitted, data, tmp_path):
    _, fit = fitted
    path = tmp_path / "old.nc"
    _old_format(fit).to_netcdf(path)
    old = sb.load_fit(path)  # checks the stored data's hashes
    assert "labels" in old["log_likelihood"].data_vars
    post = old["posterior"].to_dataset()
    eta = (post["Intercept"].values[..., None]
           + post["x"].values[..., None] * data["x"].to_numpy())
    # predictions from the old fit, through a model rebuilt from it
    np.testing.assert_allclose(sb.predict(old).values, _cb_mean(eta), rtol=1e-9)
    rebuilt = sb.Model.from_fit(old)
    np.testing.assert_allclose(rebuilt.predict(old, kind="linear").values, eta, rtol=1e-9,
                               atol=1e-12)
    ll = sb.predict(old, data, kind="log_likelihood")
    assert ll.name == "labels"
    np.testing.assert_allclose(ll.values, old["log_likelihood"]["labels"].values, rtol=1e-9)
    tree = sb.predict(old, kind="pp", random_seed=0)
    assert list(tree["posterior_predictive"].data_vars) == ["labels"]
    # compared with the same fit in the current layout: the same ELPD (up to PSIS's relative
    # efficiency, a mean ESS over the posterior's variables, which differ by the centred
    # intercept)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = sb.compare({"old": old, "new": fit}, kfold_fallback=None, warn=False)
    assert set(cmp.groups["density"]) == {"old", "new"}
    elpd = cmp.elpd_data
    assert elpd["old"].elpd == pytest.approx(elpd["new"].elpd, rel=1e-4)
