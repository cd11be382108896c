"""softbayes.bambi: the Bambi families fit known coefficients and predict on the mean scale."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special

bmb = pytest.importorskip("bambi")

import softbayes.bambi as sbb  # noqa: E402  (needs bambi, skipped above without it)

N = 1500  # rows of the soft-label data
N_CB = 4000  # rows of the CB data: a CB label carries little information (variance <= 1/12)
TRUE = {"Intercept": -0.6, "x": 1.3}


def _fit(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(draws=500, tune=500, chains=2, cores=1, random_seed=11,
                         progressbar=False)


def _eta(idata, x):
    """The linear predictor by hand from the posterior draws: (chain, draw, row)."""
    post = idata.posterior
    b0 = post["Intercept"].to_numpy()[..., None]
    b1 = post["x"].to_numpy()[..., None]
    return b0 + b1 * np.asarray(x)[None, None, :]


def _cb_mean_np(eta):
    """The CB mean: closed form, and its Taylor series 1/2 + eta/12 - eta^3/720 near 0
    (where the closed form cancels)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        closed = 1.0 / (-np.expm1(-eta)) - 1.0 / eta
    return np.where(np.abs(eta) < 1e-3, 0.5 + eta / 12 - eta**3 / 720, closed)


def _cb_logpdf_np(y, eta):
    """log(eta e^(eta y) / (e^eta - 1)) in closed form, for moderate |eta| > 0."""
    return np.log(eta / np.expm1(eta)) + eta * y


@pytest.fixture(scope="module")
def cb_fit():
    rng = np.random.default_rng(20261201)
    x = rng.normal(size=N_CB)
    eta = TRUE["Intercept"] + TRUE["x"] * x
    # inverse CDF of the CB: log(1 + u (e^eta - 1)) / eta
    y = np.log1p(rng.random(N_CB) * np.expm1(eta)) / eta
    data = pd.DataFrame({"y": y, "x": x})
    model = bmb.Model("y ~ x", data, family=sbb.continuous_bernoulli())
    return model, _fit(model), data


@pytest.fixture(scope="module")
def soft_fit():
    rng = np.random.default_rng(7)
    x = rng.normal(size=N)
    q = special.expit(0.4 - 0.9 * x)
    labels = np.clip(q + rng.normal(scale=0.15, size=N), 0.0, 1.0)  # soft labels
    data = pd.DataFrame({"l": labels, "x": x})
    model = bmb.Model("l ~ x", data, family=sbb.soft_bernoulli())
    return model, _fit(model), data


def _assert_posterior_means_near(idata, mle):
    """Posterior means of Intercept and x within 0.25 posterior sd of the reference ``mle``."""
    for name, ref in zip(("Intercept", "x"), mle, strict=True):
        draws = idata.posterior[name].to_numpy()
        assert abs(draws.mean() - ref) < 0.25 * draws.std(), (name, draws.mean(), ref)


def test_cb_coefficients_near_the_truth(cb_fit):
    _, idata, _ = cb_fit
    for name, truth in TRUE.items():
        draws = idata.posterior[name].to_numpy()
        err = abs(draws.mean() - truth)
        assert err < 4 * draws.std(), (name, draws.mean(), truth)
        assert err < 0.2, (name, err)


def test_cb_posterior_mean_matches_the_maximum_likelihood_fit(cb_fit):
    _, idata, data = cb_fit
    x, y = data["x"].to_numpy(), data["y"].to_numpy()

    def nll(beta):
        return -_cb_logpdf_np(y, beta[0] + beta[1] * x).sum()

    mle = optimize.minimize(nll, [0.1, 0.1], method="BFGS").x
    _assert_posterior_means_near(idata, mle)


def test_cb_predictions_are_the_cb_mean_of_the_linear_predictor(cb_fit):
    model, idata, data = cb_fit
    pred = model.predict(idata, kind="response_params", inplace=False)
    mu = pred.posterior["mu"].to_numpy()
    want = _cb_mean_np(_eta(idata, data["x"]))
    np.testing.assert_allclose(mu, want, rtol=1e-10)
    lam = special.expit(_eta(idata, data["x"]))
    assert np.abs(mu - lam).max() > 0.05  # the mean is not lambda
    new = pd.DataFrame({"x": [-2.0, 0.0, 1.5]})
    pred = model.predict(idata, data=new, kind="response_params", inplace=False)
    np.testing.assert_allclose(pred.posterior["mu"].to_numpy(),
                               _cb_mean_np(_eta(idata, new["x"])), rtol=1e-10)


def test_cb_interpret_predictions_are_on_the_mean_scale(cb_fit):
    model, idata, _ = cb_fit
    xs = [-1.0, 0.5, 2.0]
    result = bmb.interpret.predictions(model, idata, conditional={"x": xs})
    est = result.summary["estimate"]
    want = _cb_mean_np(_eta(idata, xs)).mean(axis=(0, 1))
    np.testing.assert_allclose(np.asarray(est, dtype=float), want, rtol=1e-8)


def test_cb_log_likelihood_and_draws(cb_fit):
    model, idata, data = cb_fit
    out = model.compute_log_likelihood(idata, inplace=False)
    ll = out.log_likelihood["y"].to_numpy()
    want = _cb_logpdf_np(data["y"].to_numpy()[None, None, :], _eta(idata, data["x"]))
    np.testing.assert_allclose(ll, want, rtol=1e-7, atol=1e-9)
    pp = model.predict(idata, kind="response", inplace=False, random_seed=3)
    draws = pp.posterior_predictive["y"].to_numpy()
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    # replicated labels average to the predicted mean (1000 draws a row, sd <= 0.29)
    mu = _cb_mean_np(_eta(idata, data["x"]))
    assert np.abs(draws.mean(axis=(0, 1)) - mu.mean(axis=(0, 1))).max() < 0.06


def test_soft_bernoulli_matches_statsmodels_on_duplicated_rows(soft_fit):
    sm = pytest.importorskip("statsmodels.api")
    _, idata, data = soft_fit
    labels, x = data["l"].to_numpy(), data["x"].to_numpy()
    # each row twice: label 1 with weight l, label 0 with weight 1 - l
    X = sm.add_constant(np.concatenate([x, x]))
    y = np.concatenate([np.ones(N), np.zeros(N)])
    w = np.concatenate([labels, 1.0 - labels])
    mle = sm.GLM(y, X, family=sm.families.Binomial(), freq_weights=w).fit().params
    _assert_posterior_means_near(idata, mle)


def test_soft_bernoulli_predictions_are_the_probability(soft_fit):
    model, idata, data = soft_fit
    pred = model.predict(idata, kind="response_params", inplace=False)
    np.testing.assert_allclose(pred.posterior["p"].to_numpy(),
                               special.expit(_eta(idata, data["x"])), rtol=1e-10)
    out = model.compute_log_likelihood(idata, inplace=False)
    eta = _eta(idata, data["x"])
    labels = data["l"].to_numpy()[None, None, :]
    want = labels * eta - np.logaddexp(0.0, eta)  # the cross-entropy of each row
    np.testing.assert_allclose(out.log_likelihood["l"].to_numpy(), want, rtol=1e-7, atol=1e-9)


def test_soft_bernoulli_refuses_an_unknown_link():
    with pytest.raises(ValueError, match="link must be"):
        sbb.soft_bernoulli(link="log")
