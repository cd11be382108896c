"""PSIS-LOO of Laplace and Pathfinder fits with ArviZ's approximate-posterior correction:
the stored log densities against scipy, the ELPD against importance-weighted PSIS by hand and
against PSIS-LOO of an independent NUTS fit."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special as sp
from scipy import stats

import softbayes as sb
from softbayes.io.fits import posterior_dataset

N = 60


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=N)
    y = np.clip(sp.expit(0.3 + x) + rng.normal(0.0, 0.1, N), 0.02, 0.98)
    return sb.Model("y ~ x", pd.DataFrame({"y": y, "x": x}))


@pytest.fixture(scope="module")
def fits(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {method: model.fit(method=method, draws=2000, chains=2, random_seed=2)
                for method in ("laplace", "pathfinder")}


def _flat(da):
    return da.transpose("chain", "draw", ...).values.reshape(da.sizes["chain"] * da.sizes[
        "draw"], -1).squeeze()


@pytest.mark.parametrize("method", ["laplace", "pathfinder"])
def test_stored_log_densities_match_scipy(fits, model, method):
    fit = fits[method]
    ss = fit["sample_stats"]
    lp, log_q = _flat(ss["lp"]), _flat(ss["log_q"])
    post = posterior_dataset(fit)
    ic, b = _flat(post["Intercept_centered"]), _flat(post["x"])
    # log p = log-likelihood + log prior (both parameters unbounded: no Jacobian); the
    # prior sds are the model's (printed to 4 digits), so allow the rounding
    ll = _flat(fit["log_likelihood"]["y"]).sum(axis=1)
    sd_x = float(str(model.priors_dict).split("x: Normal(mu=0, sigma=")[1].split(")")[0])
    prior = stats.norm(0, 2.5).logpdf(ic) + stats.norm(0, sd_x).logpdf(b)
    assert np.ptp(lp - ll - prior) < 1e-3
    # log q: the draws' normal, estimated from the draws themselves
    z = np.column_stack([ic, b])
    ref = stats.multivariate_normal(z.mean(axis=0), np.cov(z.T)).logpdf(z)
    assert np.median(np.abs(log_q - ref)) < 0.05
    assert np.corrcoef(log_q, ref)[0, 1] > 0.999


@pytest.mark.parametrize("method", ["laplace", "pathfinder"])
def test_loo_is_importance_corrected_psis(fits, model, method):
    fit = fits[method]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = sb.compare({"m": fit}, kfold_fallback=None)
    elpd = cmp.elpd_data["m"]
    assert elpd.approx_posterior
    ll = fit["log_likelihood"]["y"]
    ratio = fit["sample_stats"]["lp"] - fit["sample_stats"]["log_q"]
    # by hand: PSIS on the ratios p(theta) / (q(theta) p(y_i | theta)) of each observation
    lw, _ = (ll - ratio).azstats.psislw(r_eff=1.0, dim=["chain", "draw"])
    lw_v, ll_v = _flat(lw), _flat(ll)
    expected = sp.logsumexp(lw_v + ll_v, axis=0) - sp.logsumexp(lw_v, axis=0)
    np.testing.assert_allclose(elpd.elpd_i.values, expected, rtol=0, atol=1e-8)
    # its leave-one-out predictive means use the same weights
    w = np.exp(lw_v - sp.logsumexp(lw_v, axis=0))
    x = model.data["x"].to_numpy()
    mu = sp.expit(_flat(fit["posterior"]["Intercept"])[:, None]
                  + _flat(fit["posterior"]["x"])[:, None] * x[None, :])
    np.testing.assert_allclose(cmp.loo_means["m"], (w * mu).sum(axis=0), rtol=0, atol=1e-8)


@pytest.mark.slow
def test_approximate_loo_agrees_with_nuts_psis_loo(fits, model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nuts = model.fit(draws=2000, tune=1000, chains=2, random_seed=5, progressbar=False)
        ref = sb.compare({"m": nuts}, kfold_fallback=None).elpd_data["m"]
        for method, fit in fits.items():
            got = sb.compare({"m": fit}, kfold_fallback=None).elpd_data["m"]
            # Monte Carlo differences of two 4000-draw estimates: ~0.005 per point here
            assert np.max(np.abs(got.elpd_i.values - ref.elpd_i.values)) < 0.03, method
            assert got.elpd == pytest.approx(ref.elpd, abs=0.1), method
