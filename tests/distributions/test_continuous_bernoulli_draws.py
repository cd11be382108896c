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
        warnings.simplefilter("ignore")  # numba runs the NumPy rng_fn in object mode
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


def test_posterior_predictive_follows_the_exact_cdf():
    rng = np.random.default_rng(0)
    labels = rng.uniform(0.05, 0.95, size=30)
    with pm.Model() as model:
        eta = pm.Normal("eta", 0.0, 1.0)
        sb.ContinuousBernoulli("y", logit_p=eta, observed=labels)
    post = az.from_dict({"posterior": {"eta": np.full((2, 500), 1.5)}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp = pm.sample_posterior_predictive(post, model=model, random_seed=3, progressbar=False)
    y = pp["posterior_predictive"]["y"].values.ravel()
    res = stats.kstest(y, lambda x: exact_cdf(np.atleast_1d(x), 1.5))
    assert res.pvalue > 1e-3, res
