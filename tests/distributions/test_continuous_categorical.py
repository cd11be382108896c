"""softbayes.ContinuousCategorical and its NumPy/PyTensor functions.

References: mpmath at 60+ digits (tests/cc_reference.py) for the density, its gradient and
the mean; the continuous Bernoulli for K = 2; PyMC's own test helpers; and recovery of known
parameters from simulated data with nutpie. pymc.testing.check_logp does not apply: it
draws values from a box domain, not from the simplex.
"""

from __future__ import annotations

from typing import ClassVar

import cc_reference as ref
import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.logprob.utils import ParameterValueError
from pymc.testing import BaseTestDistributionRandom, assert_support_point_is_expected

import softbayes as sb
from softbayes.distributions.continuous_categorical import (
    ContinuousCategorical,
    continuous_categorical,
    continuous_categorical_draws,
    continuous_categorical_logp,
    continuous_categorical_mean,
)
from softbayes.math import continuous_bernoulli as cbm

LOGIT_CASES = [
    np.array([0.3, 0.3, 0.3]),
    np.array([0.7, 0.7 + 1e-12, 0.7 - 3e-12, 0.7 + 1e-8]),
    np.array([2.0, -1.0, 0.5, 0.0, 1e-3]),
    np.array([700.0, -700.0, 3.0, 3.0 + 1e-12, -12.0, 0.0, 45.0, -30.0]),
]


def _simplex_rows(k, n, seed):
    x = np.random.default_rng(seed).dirichlet(np.full(k, 0.8), size=n)
    x[0] = 0.0
    x[0, -1] = 1.0
    return x


@pytest.mark.parametrize("eta", LOGIT_CASES, ids=lambda e: f"K{e.size}")
def test_logp_and_its_gradient_match_mpmath(eta):
    x = _simplex_rows(eta.size, 4, eta.size)
    value = pt.matrix("value")
    logits = pt.vector("logits")
    lp = pm.logp(ContinuousCategorical.dist(logits=logits, shape=x.shape), value)
    grad = pytensor.grad(lp.sum(), logits)
    fn = pytensor.function([value, logits], [lp, grad])
    got, got_grad = fn(x, eta)
    want = np.array([ref.logp(row, eta) for row in x])
    assert np.all(np.abs(got - want) <= 1e-10 * np.maximum(1.0, np.abs(want)))
    # d/d eta sum_r logp(x_r) = sum_r x_r - n E[x].
    want_grad = x.sum(axis=0) - len(x) * np.array(ref.mean(list(eta)))
    assert np.all(np.abs(got_grad - want_grad) <= 1e-10 * np.maximum(1.0, np.abs(want_grad)))


@pytest.mark.parametrize("eta", LOGIT_CASES, ids=lambda e: f"K{e.size}")
def test_functions_agree_on_numpy_and_pytensor(eta):
    x = _simplex_rows(eta.size, 3, 1)
    num = continuous_categorical_logp(x, eta)
    sym = continuous_categorical_logp(pt.as_tensor_variable(x), pt.as_tensor_variable(eta))
    np.testing.assert_allclose(sym.eval(), num, rtol=1e-13)
    mean_ref = np.array(ref.mean(list(eta)))
    np.testing.assert_allclose(continuous_categorical_mean(eta), mean_ref, rtol=0, atol=1e-10)
    sym_mean = continuous_categorical_mean(pt.as_tensor_variable(eta)).eval()
    np.testing.assert_allclose(sym_mean, mean_ref, rtol=0, atol=1e-10)


def test_p_parametrization_and_shift_invariance():
    p = np.array([0.2, 0.5, 0.3])
    x = np.array([[0.1, 0.6, 0.3], [0.0, 0.0, 1.0]])
    by_p = pm.logp(ContinuousCategorical.dist(p=p, shape=(2, 3)), x).eval()
    by_logits = pm.logp(ContinuousCategorical.dist(logits=np.log(p) + 40.0, shape=(2, 3)), x)
    np.testing.assert_allclose(by_p, by_logits.eval(), rtol=1e-12)
    want = [ref.logp(row, np.log(p)) for row in x]
    np.testing.assert_allclose(by_p, want, rtol=1e-12)


def test_two_classes_match_the_continuous_bernoulli():
    t = np.array([-30.0, -1.0, -1e-9, 0.0, 1e-12, 0.5, 700.0])
    y = np.array([0.0, 0.2, 0.5, 0.7, 1.0, 0.999, 0.3])
    logits = np.stack([np.full_like(t, -0.25), t - 0.25], axis=-1)
    got = pm.logp(ContinuousCategorical.dist(logits=logits), np.stack([1 - y, y], -1)).eval()
    want = cbm.cb_logp(y, t)
    assert np.all(np.abs(got - want) <= 1e-12 * np.maximum(1.0, np.abs(want)))


def test_support_and_parameter_checks():
    dist = ContinuousCategorical.dist(logits=np.zeros(3))
    off = np.array([[0.5, 0.6, 0.0], [-1e-9, 0.5, 0.5 + 1e-9], [0.2, 0.2, 0.5]])
    assert np.all(pm.logp(dist, off).eval() == -np.inf)
    assert np.isfinite(pm.logp(dist, np.array([0.0, 1.0, 0.0])).eval())
    with pytest.raises(ParameterValueError, match="finite"):
        pm.logp(ContinuousCategorical.dist(p=[0.0, 0.5, 0.5]), [0.2, 0.3, 0.5]).eval()
    with pytest.raises(ValueError, match="exactly one"):
        ContinuousCategorical.dist(p=[0.5, 0.5], logits=[0.0, 0.0])
    with pm.Model(), pytest.raises(ValueError, match="sum"):
        ContinuousCategorical("y", logits=np.zeros(3), observed=np.array([[0.5, 0.6, 0.0]]))


def test_float32_is_finite():
    with pytensor.config.change_flags(floatX="float32"):
        logits = pt.vector("logits", dtype="float32")
        value = pt.matrix("value", dtype="float32")
        lp = continuous_categorical_logp(value, logits)
        grad = pytensor.grad(lp.sum(), logits)
        fn = pytensor.function([value, logits], [lp, grad])
        x = np.array([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0]], dtype="float32")
        for eta in ([0.0, 1e-7, -1e-7], [80.0, -80.0, 0.0], [0.0, 0.0, 0.0]):
            out, g = fn(x, np.array(eta, dtype="float32"))
            assert out.dtype == np.float32 and np.all(np.isfinite(out)) and np.all(np.isfinite(g))


def test_second_derivative_raises_clearly():
    logits = pt.vector("logits")
    lp = continuous_categorical_logp(np.array([0.2, 0.3, 0.5]), logits)
    g = pytensor.grad(lp, logits)
    with pytest.raises(Exception, match="second derivatives"):
        pytensor.grad(g.sum(), logits)


@pytest.mark.parametrize(
    ("size", "logits"),
    [(None, np.array([0.5, -1.0, 2.0])), ((4,), np.array([0.5, -1.0, 2.0])),
     ((2, 3), np.zeros((3, 4)))],
)
def test_support_point_is_the_mean(size, logits):
    with pm.Model() as model:
        ContinuousCategorical("x", logits=logits, size=size)
    mean = continuous_categorical_mean(logits)
    shape = mean.shape if size is None else (*size, logits.shape[-1])
    assert_support_point_is_expected(model, np.broadcast_to(mean, shape))


class TestContinuousCategoricalRandom(BaseTestDistributionRandom):
    pymc_dist = ContinuousCategorical
    pymc_dist_params: ClassVar = {"logits": np.array([0.5, -1.0, 2.0])}
    expected_rv_op_params: ClassVar = {"logits": np.array([0.5, -1.0, 2.0])}
    sizes_to_check: ClassVar = [None, 1, (2, 4)]
    sizes_expected: ClassVar = [(3,), (1, 3), (2, 4, 3)]
    checks_to_run: ClassVar = ["check_pymc_params_match_rv_op", "check_rv_size"]


@pytest.mark.filterwarnings("error:Numba will use object mode:UserWarning")
def test_draws_through_pymc_and_the_function():
    # The draws have a numba core (no object-mode fallback, which would warn).
    logits = np.array([1.0, -2.0, 0.0, 0.5])
    x = pm.draw(ContinuousCategorical.dist(logits=logits, size=20_000), random_seed=3)
    assert x.shape == (20_000, 4) and np.all(x >= 0)
    np.testing.assert_allclose(x.sum(axis=1), 1.0, atol=1e-12)
    m = np.array(ref.mean(list(logits)))
    assert np.all(np.abs(x.mean(axis=0) - m) <= 5 * x.std(axis=0) / np.sqrt(len(x)))
    y = continuous_categorical_draws(np.random.default_rng(0), np.tile(logits, (5, 1)))
    assert y.shape == (5, 4)
    assert continuous_categorical.signature == "(k)->(k)"
    assert sb.ContinuousCategorical is ContinuousCategorical


@pytest.fixture(scope="module")
def simulated():
    rng = np.random.default_rng(2026)
    n = 400
    z = rng.normal(size=n)
    beta = np.array([0.0, 1.5, -1.0])  # class slopes; class 0 is the reference
    alpha = np.array([0.0, -0.5, 0.8])
    eta = alpha + z[:, None] * beta
    y = continuous_categorical_draws(rng, eta)
    return z, y, alpha, beta


def test_regression_recovers_parameters_with_nutpie(simulated):
    z, y, alpha, beta = simulated
    with pm.Model():
        a = pm.Normal("a", 0.0, 3.0, shape=2)
        b = pm.Normal("b", 0.0, 3.0, shape=2)
        eta = pt.concatenate([pt.zeros((len(z), 1)), a + z[:, None] * b], axis=1)
        ContinuousCategorical("y", logits=eta, observed=y)
        idata = pm.sample(draws=300, tune=300, chains=2, nuts_sampler="nutpie",
                          progressbar=False, random_seed=4)
    post = idata.posterior
    for name, true in (("a", alpha[1:]), ("b", beta[1:])):
        draws = post[name].values.reshape(-1, 2)
        assert np.all(np.abs(draws.mean(axis=0) - true) <= 4 * draws.std(axis=0))
