"""The ordered beta family against independent references: mpmath densities and derivatives,
scipy quadrature, exact moments, and properties over wide parameter ranges."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate

from softbayes.terms.families import get_family

FAM = get_family("ordered_beta")
EPS = float(np.finfo(np.float64).eps)
NAMES = ("eta", "phi", "cutzero", "cutone")

# (y, eta, phi, cutzero, cutone): interior points, the two boundaries, near-boundary labels,
# extreme cut-points (a tiny or a huge interior mass) and extreme means
POINTS = [
    (0.3, 0.2, 5.0, -1.0, 1.0),
    (0.0, 0.2, 5.0, -1.0, 1.0),
    (1.0, 0.2, 5.0, -1.0, 1.0),
    (0.97, 2.5, 40.0, -2.0, 1.6),
    (1e-6, -3.0, 2.0, -0.5, 0.5),
    (1 - 1e-9, 4.0, 0.5, -3.0, 2.0),
    (0.5, 0.0, 1.0, 0.0, -8.0),   # k2 - k1 = e^-8: almost no interior mass
    (0.0, 0.0, 1.0, 0.0, -8.0),
    (1.0, 0.0, 1.0, 0.0, -8.0),
    (0.42, -1.0, 300.0, -25.0, 3.9),  # k1 = -25, k2 = 24.4: almost no mass at 0 or 1
    (0.0, -1.0, 300.0, -25.0, 3.9),
    (1.0, -1.0, 300.0, -25.0, 3.9),
    (0.01, -20.0, 50.0, -2.0, 1.0),
    (0.0, -20.0, 50.0, -2.0, 1.0),
    (0.999, 20.0, 50.0, -2.0, 1.0),
    (1.0, 20.0, 50.0, -2.0, 1.0),
]


def ref_sigmoid(t):
    return 1 / (1 + mp.exp(-t))


def ref_category_probs(eta, cutzero, cutone):
    """(P(y = 0), P(0 < y < 1), P(y = 1)) from the definition (Kubinec 2022)."""
    k1 = cutzero
    k2 = cutzero + mp.exp(cutone)
    p0 = 1 - ref_sigmoid(eta - k1)
    p1 = ref_sigmoid(eta - k2)
    return p0, ref_sigmoid(eta - k1) - ref_sigmoid(eta - k2), p1


def ref_logp(y, eta, phi, cutzero, cutone):
    """The log density w.r.t. Lebesgue measure on (0, 1) plus counting measure at {0, 1}."""
    p0, pmid, p1 = ref_category_probs(eta, cutzero, cutone)
    if y == 0:
        return mp.log(p0)
    if y == 1:
        return mp.log(p1)
    mu = ref_sigmoid(eta)
    a, b = mu * phi, (1 - mu) * phi
    return (mp.log(pmid) + mp.loggamma(phi) - mp.loggamma(a) - mp.loggamma(b)
            + (a - 1) * mp.log(y) + (b - 1) * mp.log(1 - y))


def _mp_args(point):
    return [mp.mpf(v) for v in point]


@pytest.fixture(scope="module")
def graph_fns():
    """logp, its gradient w.r.t. the four parameters, and the mean, compiled once."""
    y, eta, phi, c0, c1 = (pt.dvector(n) for n in ("y", *NAMES))
    lp = FAM.logp(y, eta=eta, phi=phi, cutzero=c0, cutone=c1)
    grads = pt.grad(lp.sum(), [eta, phi, c0, c1])
    mean = FAM.mean(eta=eta, phi=phi, cutzero=c0, cutone=c1)
    return pytensor.function([y, eta, phi, c0, c1], [lp, *grads, mean])


def _columns(points):
    return [np.array(col, dtype=float) for col in zip(*points, strict=True)]


def test_logp_matches_mpmath_numpy_and_pytensor(graph_fns):
    y, *params = _columns(POINTS)
    kw = dict(zip(NAMES, params, strict=True))
    lp_np = FAM.logp(y, **kw)
    lp_pt = graph_fns(y, *params)[0]
    worst = 0.0
    with mp.workdps(50):
        for i, point in enumerate(POINTS):
            ref = ref_logp(*_mp_args(point))
            scale = max(1.0, abs(float(ref)))
            for got in (lp_np[i], lp_pt[i]):
                err = abs(float(got) - float(ref)) / scale
                worst = max(worst, err)
                assert err <= 1e-12, (point, float(got), float(ref))
    print(f"ordered_beta logp vs mpmath (50 digits): max relative error {worst:.2e}")


def test_gradients_match_high_precision_differences(graph_fns):
    y, *params = _columns(POINTS)
    grads = graph_fns(y, *params)[1:5]
    worst = 0.0
    with mp.workdps(50):
        for i, point in enumerate(POINTS):
            args = _mp_args(point)
            for j in range(4):
                def f(t, j=j, args=args):
                    a = list(args)
                    a[j + 1] = t
                    return ref_logp(*a)

                ref = mp.diff(f, args[j + 1])
                scale = max(1.0, abs(float(ref)))
                err = abs(float(grads[j][i]) - float(ref)) / scale
                worst = max(worst, err)
                assert err <= 1e-9, (point, NAMES[j], float(grads[j][i]), float(ref))
    print(f"ordered_beta gradients vs mpmath differences: max relative error {worst:.2e}")


@pytest.mark.parametrize("point", [(0.2, 5.0, -1.0, 1.0), (2.5, 40.0, -2.0, 1.6),
                                   (-1.0, 0.7, -0.3, 0.2), (0.0, 300.0, -25.0, 3.9)])
def test_masses_and_density_sum_to_one(point):
    eta, phi, c0, c1 = point

    def density(y):
        return math.exp(FAM.logp(np.array([y]), eta=eta, phi=phi, cutzero=c0, cutone=c1)[0])

    # the Beta part may have integrable singularities at the ends (shape < 1): quad's
    # endpoint-avoiding rule handles them, split at 1/2 for accuracy
    inside = sum(integrate.quad(density, lo, hi, limit=400, epsabs=1e-13, epsrel=1e-11)[0]
                 for lo, hi in ((0.0, 0.5), (0.5, 1.0)))
    ends = np.exp(FAM.logp(np.array([0.0, 1.0]), eta=eta, phi=phi, cutzero=c0, cutone=c1))
    assert abs(inside + ends.sum() - 1.0) < 1e-8, (inside, ends)
    with mp.workdps(50):
        p0, pmid, p1 = ref_category_probs(*_mp_args((eta, c0, c1)))
    assert abs(inside - float(pmid)) < 1e-8
    assert ends == pytest.approx([float(p0), float(p1)], rel=1e-13)


def _exact_moments(eta, phi, c0, c1):
    """Mean, variance, P(0), P(1) from the mixture (mpmath)."""
    with mp.workdps(50):
        p0, pmid, p1 = ref_category_probs(*_mp_args((eta, c0, c1)))
        mu = ref_sigmoid(mp.mpf(eta))
        second = mu * (mu * phi + 1) / (phi + 1)  # E[B^2] of Beta(mu phi, (1 - mu) phi)
        mean = p1 + pmid * mu
        var = p1 + pmid * second - mean**2
        return float(mean), float(var), float(p0), float(p1)


@pytest.mark.parametrize("point", [(0.2, 5.0, -1.0, 1.0), (-1.5, 20.0, -2.5, 1.2),
                                   (1.0, 0.8, 0.5, -1.0)])
def test_draws_moments_and_mean_match_exact(graph_fns, point):
    eta, phi, c0, c1 = point
    n = 400_000
    draws = FAM.draws(np.random.default_rng(5), eta=np.full(n, eta), phi=phi, cutzero=c0,
                      cutone=c1)
    mean, var, p0, p1 = _exact_moments(eta, phi, c0, c1)
    assert ((draws >= 0) & (draws <= 1)).all()
    se_mean = math.sqrt(var / n)
    assert abs(draws.mean() - mean) < 5 * se_mean
    # sd of a sample variance: sqrt((m4 - var^2) / n) <= sqrt(var / n) for labels in [0, 1]
    assert abs(draws.var() - var) < 5 * math.sqrt(var / n)
    for got, p in (((draws == 0).mean(), p0), ((draws == 1).mean(), p1)):
        assert abs(got - p) < 5 * math.sqrt(p * (1 - p) / n)
    got_np = FAM.mean(eta=np.array([eta]), cutzero=c0, cutone=c1)[0]
    got_pt = graph_fns(*(np.array([v]) for v in (0.5, eta, phi, c0, c1)))[5][0]
    assert got_np == pytest.approx(mean, rel=1e-13)
    assert got_pt == pytest.approx(mean, rel=1e-13)


def test_labels_check_and_warning():
    _, info = FAM.prepare_labels(np.array([0.2, 0.5, 1.0]))
    assert "no label is exactly 0" in info["warning"]
    _, info = FAM.prepare_labels(np.array([0.0, 0.5, 1.0]))
    assert "warning" not in info
    with pytest.raises(ValueError, match="label"):
        FAM.prepare_labels(np.array([0.2, 1.5]))


def test_elpd_group_is_its_own():
    """Mixed densities are not the same kind of number as densities on [0, 1]."""
    assert FAM.comparison_group() == "mixed_density"
    for other in ("beta", "continuous_bernoulli", "weighted_bernoulli"):
        assert get_family(other).comparison_group() != FAM.comparison_group()


# --------------------------------------------------------------------------- properties

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LABEL = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(1e-8, 1 - 1e-8))


@PROPS
@given(LABEL, st.floats(-30, 30), st.floats(0.05, 1e4), st.floats(-30, 30), st.floats(-6, 4))
def test_logp_mean_draws_properties(y, eta, phi, c0, c1):
    lp = FAM.logp(np.array([y]), eta=eta, phi=phi, cutzero=c0, cutone=c1)[0]
    with mp.workdps(50):
        ref = ref_logp(*_mp_args((y, eta, phi, c0, c1)))
    assert math.isfinite(lp)
    # rounding: a few eps of each term of the sum (the Beta part's log-gammas grow like
    # phi log phi and cancel), and of the log-probabilities of the three categories
    with mp.workdps(50):
        terms = abs(ref)
        if 0 < y < 1:
            mu = ref_sigmoid(mp.mpf(eta))
            a, b = mu * phi, (1 - mu) * phi
            terms += (abs(mp.loggamma(phi)) + abs(mp.loggamma(a)) + abs(mp.loggamma(b))
                      + abs((a - 1) * mp.log(y)) + abs((b - 1) * mp.log1p(-y)))
    tol = 64 * EPS * float(terms) + 64 * EPS * (abs(eta) + abs(c0) + math.exp(c1)) + 1e-300
    assert abs(lp - float(ref)) <= tol, (lp, float(ref), tol)
    mean = FAM.mean(eta=np.array([eta]), cutzero=c0, cutone=c1)[0]
    assert 0.0 <= mean <= 1.0
    d = FAM.draws(np.random.default_rng(0), eta=np.full(16, eta), phi=phi, cutzero=c0,
                  cutone=c1)
    assert ((d >= 0) & (d <= 1)).all()
