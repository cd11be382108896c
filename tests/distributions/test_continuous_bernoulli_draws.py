"""Prior and posterior predictive draws of the Continuous Bernoulli follow its exact law (mpmath
CDF), at ordinary and extreme logits."""

from __future__ import annotations

import warnings

import arviz as az
import mpmath as mp
import numpy as np
import pymc as pm
import pytest
from scipy import stats

import softbayes as sb

ETAS = np.array([-30.0, -3.0, -0.5, 1e-9, 0.7, 4.0, 30.0])
N_DRAWS = 4000


def exact_cdf(x, eta):
    """CDF of CB(eta): (e^{eta x} - 1) / (e^eta - 1), x at eta = 0 (mpmath, 50 digits)."""
    mp.mp.dps = 50
    eta = mp.mpf(float(eta))
    if eta == 0:
        return np.asarray(x, float)
    return np.array([float(mp.expm1(eta * mp.mpf(float(v))) / mp.expm1(eta)) for v in x])


def exact_mean(eta):
    """Mean of CB(eta): 1 / (1 - e^{-eta}) - 1 / eta (mpmath)."""
    mp.mp.dps = 50
    eta = mp.mpf(float(eta))
    return float(1 / (1 - mp.exp(-eta)) - 1 / eta)


@pytest.fixture(scope="module")
def prior_draws():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # compiled draws: no object-mode (or any) warning
        with pm.Model():
            sb.ContinuousBernoulli("y", logit_p=ETAS)
            prior = pm.sample_prior_predictive(draws=N_DRAWS, random_seed=5)
    return prior, None


@pytest.mark.parametrize("j", range(len(ETAS)))
def test_draws_follow_the_exact_cdf(prior_draws, j):
    y = prior_draws[0]["prior"]["y"].values.reshape(-1, len(ETAS))[:, j]
    assert np.all((y >= 0) & (y <= 1))
    res = stats.kstest(y, lambda x: exact_cdf(np.atleast_1d(x), ETAS[j]))
    assert res.pvalue > 1e-3, (ETAS[j], res)


@pytest.mark.parametrize("eta", [-800.0, 800.0])
def test_extreme_logits_stay_finite_and_exact(eta):
    with pm.Model():
        sb.ContinuousBernoulli("y", logit_p=eta)
        y = pm.sample_prior_predictive(draws=N_DRAWS, random_seed=2)["prior"]["y"].values
    assert np.all(np.isfinite(y)) and np.all((y >= 0) & (y <= 1))
    # the draws are exponential with rate |eta| near their end point: mean 1/800 away
    assert abs(y.mean() - exact_mean(eta)) < 4 * (1 / 800) / np.sqrt(y.size)


@pytest.mark.parametrize("mode", [None, "NUMBA"])
def test_posterior_predictive_is_compiled_and_follows_the_exact_cdf(mode):
    rng = np.random.default_rng(0)
    labels = rng.uniform(0.05, 0.95, size=30)
    with pm.Model() as model:
        eta = pm.Normal("eta", 0.0, 1.0)
        sb.ContinuousBernoulli("y", logit_p=eta, observed=labels)
    post = az.from_dict({"posterior": {"eta": np.full((2, 500), 1.5)}})
    kwargs = {} if mode is None else {"compile_kwargs": {"mode": mode}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numba's object-mode fallback would warn
        pp = pm.sample_posterior_predictive(post, model=model, random_seed=3, progressbar=False,
                                            **kwargs)
    y = pp["posterior_predictive"]["y"].values.ravel()
    res = stats.kstest(y, lambda x: exact_cdf(np.atleast_1d(x), 1.5))
    assert res.pvalue > 1e-3, res


def test_draws_follow_the_exact_cdf_after_a_nutpie_fit():
    """A nutpie fit, then posterior predictive draws under numba: no warning, exact law."""
    nutpie = pytest.importorskip("nutpie")
    rng = np.random.default_rng(1)
    labels = np.clip(rng.uniform(0.0, 1.0, size=40) ** 0.5, 0.01, 0.99)
    with pm.Model() as model:
        eta = pm.Normal("eta", 0.0, 2.0)
        sb.ContinuousBernoulli("y", logit_p=eta, observed=labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = nutpie.sample(nutpie.compile_pymc_model(model), draws=300, tune=300, chains=2,
                            seed=4, progress_bar=False)
        pp = pm.sample_posterior_predictive(fit, model=model, random_seed=5, progressbar=False,
                                            compile_kwargs={"mode": "NUMBA"})
    y = pp["posterior_predictive"]["y"].values  # (chain, draw, obs)
    eta = fit["posterior"]["eta"].values[:, :, None]
    assert np.all(np.abs(eta) > 0.1)  # the closed-form CDF below needs eta away from 0
    # given its draw's eta, each label's CDF value (e^{eta y} - 1) / (e^eta - 1) is uniform
    u = (np.expm1(eta * y) / np.expm1(eta)).ravel()
    res = stats.kstest(u, "uniform")
    assert res.pvalue > 1e-3, res
