"""The count families (beta_binomial, binomial) against independent references: scipy.stats'
pmfs, mpmath log-gammas and their derivatives, brute-force sums, and properties."""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import special, stats

from softbayes.math.counts import log_rising_factorial
from softbayes.terms.families import get_family

BB = get_family("beta_binomial")
BIN = get_family("binomial")

# (k, m, eta, phi): small and large m, both edges, extreme means and precisions
POINTS = [
    (0, 1, 0.0, 1.0), (1, 1, 0.3, 2.0), (3, 5, 0.2, 5.0), (0, 20, -1.5, 8.0),
    (20, 20, 2.0, 0.5), (7, 20, -0.4, 300.0), (12, 37, 0.9, 0.05), (1, 3, -12.0, 40.0),
    (3, 3, 15.0, 3.0), (250, 1000, -1.1, 1e4), (0, 1000, -6.0, 20.0),
]


def _graph_fn(family):
    """logp of the graph term and its gradient in (eta, phi), compiled once."""
    k, m, e, p = pt.dvector("k"), pt.dvector("m"), pt.dvector("e"), pt.dvector("p")
    kw = {"eta": e, "trials": m} | ({"phi": p} if "phi" in family.parameters else {})
    lp = family.logp(k, **kw)
    grads = pt.grad(lp.sum(), [e, p] if "phi" in family.parameters else [e])
    return pytensor.function([k, m, e, p], [lp, *grads], on_unused_input="ignore")


@pytest.fixture(scope="module")
def graph_fns():
    return {fam.name: _graph_fn(fam) for fam in (BB, BIN)}


def _cols(points):
    return [np.array(c, dtype=float) for c in zip(*points, strict=True)]


def test_logp_matches_scipy(graph_fns):
    k, m, e, phi = _cols(POINTS)
    mu = special.expit(e)
    ref_bb = stats.betabinom.logpmf(k, m, mu * phi, special.expit(-e) * phi)
    ref_bin = stats.binom.logpmf(k, m, mu)
    np.testing.assert_allclose(BB.logp(k, trials=m, eta=e, phi=phi), ref_bb, rtol=1e-9,
                               atol=1e-9)
    np.testing.assert_allclose(BIN.logp(k, trials=m, eta=e), ref_bin, rtol=1e-11, atol=1e-11)
    # the graph term is the same math on PyTensor
    np.testing.assert_allclose(graph_fns["beta_binomial"](k, m, e, phi)[0], ref_bb, rtol=1e-9,
                               atol=1e-9)
    np.testing.assert_allclose(graph_fns["binomial"](k, m, e, phi)[0], ref_bin, rtol=1e-11,
                               atol=1e-11)


def _mp_bb(k, m, eta, phi):
    """log BetaBinomial from the definition, in mpmath (its own log-gamma)."""
    mu = 1 / (1 + mp.exp(-eta))
    a, b = mu * phi, (1 - mu) * phi
    lg = mp.loggamma
    return (lg(m + 1) - lg(k + 1) - lg(m - k + 1) + lg(k + a) + lg(m - k + b) - lg(m + phi)
            - lg(a) - lg(b) + lg(phi))


def _mp_bin(k, m, eta):
    mu = 1 / (1 + mp.exp(-eta))
    return mp.log(mp.binomial(m, k)) + k * mp.log(mu) + (m - k) * mp.log(1 - mu)


def test_gradients_match_mpmath_derivatives(graph_fns):
    # mpmath.diff at 40 digits is the reference derivative; the tolerance covers the graph's
    # float64 digammas: a few ulps of the largest term, psi(m + phi) ~ log(m + phi)
    k, m, e, phi = _cols(POINTS)
    _, g_eta, g_phi = graph_fns["beta_binomial"](k, m, e, phi)
    _, b_eta = graph_fns["binomial"](k, m, e, phi)
    with mp.workdps(40):
        for i, (ki, mi, ei, pi) in enumerate(POINTS):
            d_eta = mp.diff(lambda t, ki=ki, mi=mi, pi=pi: _mp_bb(ki, mi, t, pi), mp.mpf(ei))
            d_phi = mp.diff(lambda t, ki=ki, mi=mi, ei=ei: _mp_bb(ki, mi, ei, t), mp.mpf(pi))
            d_bin = mp.diff(lambda t, ki=ki, mi=mi: _mp_bin(ki, mi, t), mp.mpf(ei))
            scale = 1e-12 * (mi + pi + 1)
            assert abs(g_eta[i] - float(d_eta)) <= scale * (1 + abs(float(d_eta))), i
            assert abs(g_phi[i] - float(d_phi)) <= scale * (1 + abs(float(d_phi))), i
            assert abs(b_eta[i] - float(d_bin)) <= 1e-12 * mi, i


def test_binomial_is_the_limit_of_large_precision():
    k, m = np.arange(0.0, 21.0), np.full(21, 20.0)
    e = np.full(21, 0.7)
    binom = BIN.logp(k, trials=m, eta=e)
    for phi in (1e4, 1e6, 1e8):
        # the log-ratio is O(m^2 / phi) (the overdispersion (phi + m) / (phi + 1))
        gap = np.abs(BB.logp(k, trials=m, eta=e, phi=phi) - binom)
        assert gap.max() <= 20.0**2 / phi


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 60), eta=st.floats(-8, 8), log_phi=st.floats(-3, 9))
def test_count_family_properties(m, eta, log_phi):
    """Each family's pmf sums to 1 over k = 0..m, its mean lies in [0, 1] and is the mean of
    the pmf over k / m, and its draws are proportions k / m of whole k in [0, m]."""
    phi = float(np.exp(log_phi))
    k = np.arange(m + 1.0)
    trials = np.full_like(k, m)
    for fam, kw in ((BB, {"phi": phi}), (BIN, {})):
        lp = fam.logp(k, trials=trials, eta=np.full_like(k, eta), **kw)
        assert np.all(lp <= 1e-12)
        p = np.exp(lp)
        assert abs(special.logsumexp(lp)) < 1e-9
        mean = float(fam.mean(eta=np.array(eta), trials=np.array(float(m)), **kw))
        assert 0.0 <= mean <= 1.0
        assert abs(float(p @ (k / m)) - mean) < 1e-8
        draws = fam.draws(np.random.default_rng(0), eta=np.full(50, eta),
                          trials=np.full(50, float(m)), **kw)
        counts = draws * m
        assert np.all((draws >= 0) & (draws <= 1))
        np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)


def test_draws_follow_the_pmf():
    # chi-square test of 20 000 draws at one point against scipy's pmf (fixed seed)
    m, eta, phi = 8, 0.4, 3.0
    rng = np.random.default_rng(5)
    for fam, kw, ref in (
        (BB, {"phi": phi}, stats.betabinom(m, special.expit(eta) * phi,
                                           special.expit(-eta) * phi)),
        (BIN, {}, stats.binom(m, special.expit(eta))),
    ):
        d = fam.draws(rng, eta=np.full(20_000, eta), trials=np.full(20_000, float(m)), **kw)
        counts = np.bincount(np.rint(d * m).astype(int), minlength=m + 1)
        expected = 20_000 * ref.pmf(np.arange(m + 1))
        assert stats.chisquare(counts, expected).pvalue > 1e-3


def test_labels_are_counts_of_the_proportions():
    lab, info = BB.prepare_labels(np.array([0.0, 0.4, 1.0]), trials=np.array([3.0, 5.0, 2.0]))
    np.testing.assert_array_equal(lab, [0.0, 2.0, 2.0])
    assert info == {} and BB.transforms_labels() and BIN.takes_trials
    with pytest.raises(ValueError, match="need the trials m"):
        BIN.prepare_labels(np.array([0.5]))
    with pytest.raises(ValueError, match="need the trials m"):
        BB.draws(np.random.default_rng(0), eta=np.zeros(2), phi=1.0)
    assert BB.elpd_group == BIN.elpd_group == "counts"
    assert BB.comparison_group() == BIN.comparison_group()


def test_large_precision_stays_accurate(graph_fns):
    # a difference of log-gammas loses every digit at phi = 1e22 (both terms ~ 5e23); the
    # rising-factorial form must keep the logp and its gradient exact (mpmath, 60 digits)
    pts = [(k, m, e, p) for p in (29.0, 31.0, 1e3, 1e6, 1e12, 1e22)
           for (k, m, e) in ((0, 7, -0.3), (5, 20, 0.3), (300, 1000, 1.2))]
    k, m, e, phi = _cols(pts)
    lp, g_eta, g_phi = graph_fns["beta_binomial"](k, m, e, phi)
    np.testing.assert_allclose(BB.logp(k, trials=m, eta=e, phi=phi), lp, rtol=1e-12)
    with mp.workdps(60):
        for i, (ki, mi, ei, pi) in enumerate(pts):
            ref = _mp_bb(ki, mi, mp.mpf(ei), mp.mpf(pi))
            d_eta = mp.diff(lambda t, ki=ki, mi=mi, pi=pi: _mp_bb(ki, mi, t, mp.mpf(pi)),
                            mp.mpf(ei))
            d_lphi = mp.diff(lambda t, ki=ki, mi=mi, ei=ei: _mp_bb(ki, mi, mp.mpf(ei),
                                                                     mp.exp(t)),
                             mp.log(pi))
            assert abs(lp[i] - float(ref)) <= 1e-13 * (1 + abs(float(ref))), (pts[i], lp[i])
            assert abs(g_eta[i] - float(d_eta)) <= 1e-11 * (1 + abs(float(d_eta))), pts[i]
            # d logp / d log phi (what the sampler sees) is O(m^2 / phi) for large phi
            assert abs(g_phi[i] * pi - float(d_lphi)) <= 1e-10 * (1 + abs(float(d_lphi))), \
                (pts[i], g_phi[i] * pi, float(d_lphi))


def test_log_rising_factorial_matches_mpmath():
    x = np.array([1e-3, 0.5, 29.9, 30.0, 31.0, 100.0, 1e5, 1e12, 1e22])[:, None]
    k = np.array([0.0, 1.0, 7.0, 1000.0])[None, :]
    got = log_rising_factorial(x, k)
    with mp.workdps(60):
        for i, j in np.ndindex(got.shape):
            ref = mp.loggamma(mp.mpf(x[i, 0]) + k[0, j]) - mp.loggamma(mp.mpf(x[i, 0]))
            assert abs(got[i, j] - float(ref)) <= 4e-15 * max(1.0, abs(float(ref)))
