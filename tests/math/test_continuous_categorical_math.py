"""softbayes.math.continuous_categorical: normalizer, mean, density and draws.

References are independent of the code under test: mpmath at 60+ digits (the divided
difference of exp as a series in complete homogeneous polynomials, tests/cc_reference.py),
the continuous Bernoulli of softbayes.math.continuous_bernoulli (its own closed forms and
series), scipy quadrature and quasi-Monte Carlo integration, and statistical tests on draws.
"""

from __future__ import annotations

import functools
import itertools
import math

import cc_reference as ref
import numpy as np
import pytest
from scipy import integrate, stats
from scipy.stats import qmc

from softbayes.math import continuous_bernoulli as cbm
from softbayes.math import continuous_categorical as ccm
from softbayes.math import continuous_categorical_draws as ccd

KS = (2, 3, 4, 8, 20)
CASES = ("equal", "gap1e-3", "gap1e-8", "gap1e-12", "ties", "spread1", "spread30",
         "spread700", "clusters")


def make_logits(k, case):
    """Deterministic logits of one grid case (the spread cases include both extremes)."""
    rng = np.random.default_rng(1000 * k + CASES.index(case))
    if case == "equal":
        return np.full(k, 0.3)
    if case.startswith("gap"):
        return 0.7 + float(case[3:]) * rng.standard_normal(k)
    if case == "ties":  # exact duplicates (gaps of 0) next to distinct values
        return np.array([0.2 if i % 2 else -1.3 + 0.1 * (i // 4) for i in range(k)])
    if case == "clusters":  # gaps of 1e-12 and 1e-8 inside a spread of 60
        base = np.array([-30.0, 30.0, 4.0, -7.5])[np.arange(k) % 4]
        return base + np.array([0.0, 1e-12, 1e-8, 2e-12])[(np.arange(k) // 4) % 4]
    s = float(case[6:])
    eta = rng.uniform(-s, s, k)
    eta[0], eta[-1] = s, -s
    return eta


GRID = [(k, c) for k in KS for c in CASES]
# |error| <= TOL * max(1, |value|): 100 times tighter than the required 1e-10 (the observed
# worst cases are a few 1e-16 for log C and the mean, 2e-15 for logp).
TOL = 1e-12


@functools.cache
def _reference(k, case):
    eta = make_logits(k, case)
    z = eta - eta.max()
    return ref.log_normalizer(z), np.array(ref.mean(z))


def _rel(a, b):
    return abs(a - b) / max(1.0, abs(b))


@pytest.mark.parametrize(("k", "case"), GRID)
def test_log_normalizer_and_mean_match_mpmath(k, case):
    eta = make_logits(k, case)
    z = eta - eta.max()
    log_c_ref, mean_ref = _reference(k, case)
    log_c, mean = ccm.cc_log_normalizer_and_mean(z)
    assert _rel(float(log_c), log_c_ref) <= TOL
    assert np.all(np.abs(mean - mean_ref) <= TOL * np.maximum(1.0, np.abs(mean_ref)))
    # Unshifted logits: log C(eta) = log C(eta - max) - max.
    assert _rel(float(ccm.cc_log_normalizer(eta)), log_c_ref - eta.max()) <= TOL
    assert np.allclose(ccm.cc_mean(eta), mean_ref, rtol=0, atol=TOL)


@pytest.mark.parametrize(("k", "case"), [(k, c) for k in (3, 8, 20) for c in CASES[::2]])
def test_logp_matches_mpmath(k, case):
    eta = make_logits(k, case)
    rng = np.random.default_rng(k)
    x = rng.dirichlet(np.ones(k), size=3)
    x[0] = 0.0
    x[0, 1] = 1.0  # a vertex: exact zeros are in the support
    got = ccm.cc_logp(x, eta)
    for row, val in zip(x, got, strict=True):
        want = ref.logp(row, eta)
        assert _rel(float(val), want) <= TOL


@pytest.mark.parametrize("k", KS)
def test_equal_logits_give_log_factorial(k):
    eta = np.full((3, k), [[-4.0], [0.0], [12.5]])
    want = math.lgamma(k) - eta[:, 0]
    np.testing.assert_allclose(ccm.cc_log_normalizer(eta), want, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(ccm.cc_mean(eta), 1.0 / k, rtol=1e-14)


@pytest.mark.parametrize("t", [0.0, 1e-12, -1e-8, 1e-3, 0.5, -1.0, 3.0, -30.0, 700.0, -700.0])
def test_two_classes_are_the_continuous_bernoulli(t):
    eta = np.array([0.4, 0.4 + t])
    # log C_CC(eta) = -A_CB(eta_1 - eta_0) - eta_0, and the density of x_1 is the CB's.
    want = -float(cbm.cb_log_partition(np.float64(t))) - 0.4
    assert abs(float(ccm.cc_log_normalizer(eta)) - want) <= 1e-12 * max(1.0, abs(want))
    for y in (0.0, 0.25, 0.5, 0.999, 1.0):
        got = float(ccm.cc_logp(np.array([1.0 - y, y]), eta))
        assert abs(got - float(cbm.cb_logp(np.float64(y), np.float64(t)))) <= 1e-12 * max(
            1.0, abs(got)
        )
    assert abs(float(ccm.cc_mean(eta)[1]) - float(cbm.cb_mean(np.float64(t)))) <= 1e-12


def test_batches_shift_invariance_and_bad_input():
    rng = np.random.default_rng(3)
    eta = rng.normal(size=(2, 3, 5))
    log_c, mean = ccm.cc_log_normalizer_and_mean(eta)
    assert log_c.shape == (2, 3) and mean.shape == (2, 3, 5)
    np.testing.assert_allclose(mean.sum(axis=-1), 1.0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(ccm.cc_log_normalizer(eta + 2.5), log_c - 2.5, rtol=1e-14)
    x = rng.dirichlet(np.ones(5), size=(2, 3))
    np.testing.assert_allclose(ccm.cc_logp(x, eta + 100.0), ccm.cc_logp(x, eta), rtol=1e-12)
    bad = np.array([[0.0, np.nan, 1.0], [0.0, -np.inf, 1.0], [0.0, 1e30, 1.0]])
    assert np.all(np.isnan(ccm.cc_log_normalizer(bad)))
    assert np.all(np.isnan(ccm.cc_mean(bad)))
    off = np.array([[0.5, 0.6, 0.0], [-0.1, 0.6, 0.5], [0.2, 0.3, 0.5 + 1e-3]])
    assert np.all(ccm.cc_logp(off, np.zeros(3)) == -np.inf)
    with pytest.raises(ValueError, match="last axis"):
        ccm.cc_log_normalizer(1.0)


def test_float32_logits_give_finite_results():
    eta = np.array([[0.0, 1e-7, -3.0, 80.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    log_c, mean = ccm.cc_log_normalizer_and_mean(eta)
    assert np.all(np.isfinite(log_c)) and np.all(np.isfinite(mean))
    np.testing.assert_allclose(log_c[1], math.log(6.0), rtol=1e-6)


def test_density_integrates_to_one_k3():
    eta = np.array([1.3, -0.4, 2.2])

    def f(x1, x0):
        return math.exp(float(ccm.cc_logp(np.array([x0, x1, 1.0 - x0 - x1]), eta)))

    # cc_logp on the quadrature nodes would be slow; the same density in closed form.
    log_c = float(ccm.cc_log_normalizer(eta))

    def g(x1, x0):
        return math.exp(eta[0] * x0 + eta[1] * x1 + eta[2] * (1.0 - x0 - x1) + log_c)

    assert abs(f(0.2, 0.3) - g(0.2, 0.3)) <= 1e-13
    val, err = integrate.dblquad(g, 0.0, 1.0, 0.0, lambda x0: 1.0 - x0, epsabs=1e-13,
                                 epsrel=1e-13)
    assert abs(val - 1.0) <= max(10 * err, 1e-12)


def test_density_integrates_to_one_k4_qmc():
    eta = np.array([0.5, -2.0, 1.0, 3.0])
    estimates = []
    for seed in range(8):
        u = qmc.Sobol(4, scramble=True, seed=seed).random(2**14)
        x = -np.log(u)
        x /= x.sum(axis=1, keepdims=True)  # uniform on the simplex (Dirichlet(1, 1, 1, 1))
        # The simplex has volume 1/3! in the first three coordinates.
        estimates.append(np.mean(np.exp(ccm.cc_logp(x, eta))) / 6.0)
    est, se = np.mean(estimates), np.std(estimates, ddof=1) / np.sqrt(len(estimates))
    assert abs(est - 1.0) <= 5 * se + 1e-6


# --------------------------------------------------------------------------- draws


@pytest.mark.parametrize(
    "eta",
    [np.array([0.0, 0.0, 0.0]), np.array([1.5, -0.5, 0.2]), np.array([0.0, -40.0, -3.0, -3.0])],
)
def test_draws_mean_and_covariance(eta):
    rng = np.random.default_rng(7)
    n = 100_000
    x = ccd.cc_draws(rng, eta, size=(n,))
    assert x.shape == (n, eta.size)
    assert np.all(x >= 0.0)
    np.testing.assert_allclose(x.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    m = np.array(ref.mean(list(eta)))
    cov = np.array(ref.second_moments(list(eta))) - np.outer(m, m)
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(axis=0) - m) <= 5 * se_mean + 1e-12)
    # Standard errors of the sample covariances from the sample's fourth moments.
    c = x - m
    prods = c[:, :, None] * c[:, None, :]
    se_cov = prods.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(np.cov(x, rowvar=False) - cov) <= 5 * se_cov + 1e-9)


def _margin_cdf(eta, i, grid):
    """CDF of x_i on ``grid`` for K = 3, by nested scipy quadrature of the density."""
    j, k = (c for c in range(3) if c != i)
    log_c = float(ccm.cc_log_normalizer(eta))

    def density(t):
        # Integrate x_j over the slice x_i = t (x_k = 1 - t - x_j).
        def on_slice(u):
            return math.exp(eta[i] * t + eta[j] * u + eta[k] * (1.0 - t - u) + log_c)

        return integrate.quad(on_slice, 0.0, 1.0 - t, epsabs=1e-13)[0]

    pieces = [integrate.quad(density, lo, hi, epsabs=1e-13)[0]
              for lo, hi in itertools.pairwise(grid)]
    return np.concatenate([[0.0], np.cumsum(pieces)])


def test_draws_margins_ks_k3():
    eta = np.array([2.0, -1.0, 0.5])
    x = ccd.cc_draws(np.random.default_rng(11), eta, size=(100_000,))
    grid = np.linspace(0.0, 1.0, 401)
    for i in range(3):
        cdf_vals = _margin_cdf(eta, i, grid)
        assert abs(cdf_vals[-1] - 1.0) < 1e-8
        pvalue = stats.kstest(x[:, i], lambda t, c=cdf_vals: np.interp(t, grid, c)).pvalue
        assert pvalue > 1e-3


@pytest.mark.parametrize(
    "eta",
    [np.zeros(20), np.r_[np.zeros(10), np.full(10, -50.0)], -np.linspace(0.0, 30.0, 20),
     -(2.0 ** np.arange(12)), np.array([0.0, -1e-12, -700.0])],
)
def test_hard_cases_keep_a_usable_acceptance_and_exact_draws(eta):
    # Equal logits are accepted at the first proposal; the other rows are among the worst
    # found for K <= 20 (evenly spread logits), where the acceptance stays above 0.1.
    a = float(ccd.cc_acceptance(eta))
    assert 0.1 <= a <= 1.0 + 1e-12
    if np.all(eta == 0.0):
        assert a == pytest.approx(1.0, abs=1e-12)
    n = 20_000
    x = ccd.cc_draws(np.random.default_rng(5), eta, size=(n,))
    m = np.array(ref.mean(list(eta)))
    se = x.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(x.mean(axis=0) - m) <= 5 * se + 1e-12)


def test_draws_reject_bad_logits_and_broadcast_size():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="finite"):
        ccd.cc_draws(rng, np.array([0.0, np.inf]))
    x = ccd.cc_draws(rng, np.zeros((4, 3)), size=(2, 4))
    assert x.shape == (2, 4, 3)


def test_draws_give_up_with_a_clear_error():
    # Hundreds of evenly spread logits: an acceptance probability far below 1e-4, so the capped
    # loop of proposals ends and names it.
    eta = -np.linspace(0.0, 600.0, 300)
    assert float(ccd.cc_acceptance(eta)) < 1e-6
    with pytest.raises(RuntimeError, match="acceptance probability"):
        ccd.cc_draws(np.random.default_rng(0), eta)
