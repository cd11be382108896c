"""Property-based tests (hypothesis) of every distribution and likelihood family.

For any finite parameter and any value in range:

* log-densities and their gradients are finite and equal an independent reference, mpmath at
  50 significant digits (more where the argument is tiny, so that the reference itself does
  not cancel), written from the textbook formulas, never from the code under test;
* CDFs are monotone and lie in [0, 1]; ``icdf(cdf(x)) == x`` within the conditioning of the
  quantile function;
* draws lie in the support;
* the weighted-Bernoulli likelihood of soft labels equals the weighted likelihood of the
  duplicated data set (:func:`softbayes.expand_soft_labels`), pointwise and summed;
* every family's mean lies in [0, 1] (on the simplex for ``soft_categorical``).

Each example is a small batch of values, so one example checks several points. Both paths
of the math are exercised: the NumPy path (posterior draws, predictions) directly, the
PyTensor path (model graphs, gradients) through a few functions compiled once per module
(``pm.logp`` / ``pm.logcdf`` / ``pm.icdf`` of the distributions themselves). The number of
examples run per property is recorded through the ``reliability`` fixture (tests/conftest.py)
in ``test-artifacts/reliability-figures.json``. ``SOFTBAYES_PROPERTY_EXAMPLES`` overrides the
number of examples per property (default 150).
"""

from __future__ import annotations

import math
import os
import warnings

import mpmath as mp
import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import softbayes as sb
from softbayes.distributions.continuous_bernoulli import ContinuousBernoulliRV
from softbayes.distributions.potentials import weighted_terms
from softbayes.math.continuous_bernoulli import (
    cb_icdf,
    cb_logcdf,
    cb_logp,
    cb_mean,
    cb_variance,
)
from softbayes.math.soft_labels import (
    soft_bernoulli_logp,
    soft_bernoulli_logp_p,
    soft_categorical_logp,
)
from softbayes.terms.families import FAMILIES, get_family

EPS = float(np.finfo(np.float64).eps)
DBL_MAX = float(np.finfo(np.float64).max)
DBL_MIN = float(np.finfo(np.float64).tiny)  # smallest normal
TINY = 2.0**-1074  # smallest subnormal
N_EXAMPLES = int(os.environ.get("SOFTBAYES_PROPERTY_EXAMPLES", "150"))
PROPS = settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: fewer examples where each one builds a model graph
GRAPH_PROPS = settings(PROPS, max_examples=max(10, N_EXAMPLES // 4))
MODE = "FAST_RUN"

# --------------------------------------------------------------------------- strategies

finite = st.floats(allow_nan=False, allow_infinity=False)
moderate = st.floats(-60.0, 60.0)
#: the natural parameter: any finite double, with half of the examples in [-60, 60]
eta_st = st.one_of(moderate, finite)
unit = st.floats(0.0, 1.0)
open_unit = st.floats(0.0, 1.0, exclude_min=True, exclude_max=True)
#: row weights: 0 or normal doubles (a subnormal weight times a term is all rounding error)
def weight_st(hi):
    return st.floats(0.0, hi, allow_subnormal=False)


def batch(*elements, max_size=6):
    """1..max_size tuples of the given elements, as columns of float64 arrays."""
    return st.lists(st.tuples(*elements), min_size=1, max_size=max_size).map(
        lambda rows: tuple(np.array(col, dtype=np.float64) for col in zip(*rows, strict=True))
    )


@st.composite
def simplex_rows(draw, n_min=1, n_max=5, k_min=2, k_max=5):
    """(labels (n, K) on the simplex, logits (n, K) finite)."""
    n = draw(st.integers(n_min, n_max))
    k = draw(st.integers(k_min, k_max))
    raw = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n * k, max_size=n * k)))
    raw = raw.reshape(n, k)
    sums = raw.sum(axis=1, keepdims=True)
    onehot = np.eye(k)[np.zeros(n, dtype=int)]
    labels = np.where(sums > 0, raw / np.where(sums > 0, sums, 1.0), onehot)
    logits = np.array(draw(st.lists(st.one_of(moderate, st.floats(-1e300, 1e300)),
                                    min_size=n * k, max_size=n * k))).reshape(n, k)
    return labels, logits


# --------------------------------------------------------------------------- mpmath references


def _dps(*values) -> int:
    """50 digits, plus as many as the smallest nonzero |value| has leading zeros, plus as
    many as the largest |value| has digits before the point."""
    finite = [abs(v) for v in values if v != 0 and math.isfinite(v)]
    m = min(finite, default=1.0)
    big = max(finite, default=1.0)
    # twice the leading zeros: references such as 1/e^2 - 1/(4 sinh(e/2)^2) cancel in e^2;
    # the digits of a large |e|: e x - A(e) cancels e against e - log e
    return (50 + (2 * max(0, -math.floor(math.log10(m))) + 5 if m < 1 else 0)
            + (math.ceil(math.log10(big)) + 5 if big > 1 else 0))


def M(v):
    return mp.mpf(float(v))


def ref_A(e):
    """Log-partition of the continuous Bernoulli, log(expm1(e) / e)."""
    if e == 0:
        return mp.mpf(0)
    if e > 0:
        return e + mp.log(-mp.expm1(-e)) - mp.log(e)
    return mp.log(-mp.expm1(e)) - mp.log(-e)


def ref_cb_logp(x, e):
    return e * x - ref_A(e)


def ref_cb_mean(e):
    if e == 0:
        return mp.mpf(1) / 2
    if e > 0:
        return 1 / (-mp.expm1(-e)) - 1 / e
    return mp.exp(e) / mp.expm1(e) - 1 / e


def ref_cb_variance(e):
    if e == 0:
        return mp.mpf(1) / 12
    return 1 / e**2 - 1 / (4 * mp.sinh(e / 2) ** 2)


def ref_cb_logcdf(x, e):
    if x == 0:
        return mp.ninf
    if x == 1:
        return mp.mpf(0)
    if e == 0:
        return mp.log(x)
    if e > 0:
        return e * (x - 1) + mp.log(-mp.expm1(-e * x)) - mp.log(-mp.expm1(-e))
    return mp.log(-mp.expm1(e * x)) - mp.log(-mp.expm1(e))


def ref_log_sigmoid(e):
    """log(1 / (1 + exp(-e))) without huge exponentials."""
    if e >= 0:
        return -mp.log1p(mp.exp(-e))
    return e - mp.log1p(mp.exp(e))


def ref_sigmoid(e):
    return mp.exp(ref_log_sigmoid(e))


def ref_soft_bernoulli(l, e):
    return l * ref_log_sigmoid(e) + (1 - l) * ref_log_sigmoid(-e)


def ref_log_softmax(row):
    # (v - max) first: adding log(sum) to a large logit would round it at the working precision
    m = max(row)
    shifted = [v - m for v in row]
    log_sum = mp.log(mp.fsum(mp.exp(v) for v in shifted))
    return [v - log_sum for v in shifted]


def ref_beta_logp(y, e, phi):
    mu = ref_sigmoid(e)
    one_minus = ref_sigmoid(-e)
    a, b = mu * phi, one_minus * phi
    return (mp.loggamma(phi) - mp.loggamma(a) - mp.loggamma(b)
            + (a - 1) * mp.log(y) + (b - 1) * mp.log1p(-y))


def ref_beta_grad(y, e, phi):
    mu, one_minus = ref_sigmoid(e), ref_sigmoid(-e)
    a, b = mu * phi, one_minus * phi
    ly, l1y = mp.log(y), mp.log1p(-y)
    d_eta = mu * one_minus * phi * (mp.digamma(b) - mp.digamma(a) + ly - l1y)
    d_phi = (mp.digamma(phi) - mu * mp.digamma(a) - one_minus * mp.digamma(b)
             + mu * ly + one_minus * l1y)
    return d_eta, d_phi


def check_close(got, ref, tol, what):
    """``|got - ref| <= tol`` with ``got`` finite (or equal infinities)."""
    if mp.isinf(ref):
        assert got == float(ref), f"{what}: got {got!r}, reference {mp.nstr(ref, 20)}"
        return
    if not math.isfinite(got) and abs(ref) >= DBL_MAX * (1 - 1e-12):
        # the exact value is at or beyond the largest double: overflow is the right answer
        assert got == math.copysign(math.inf, float(mp.sign(ref))), f"{what}: got {got!r}"
        return
    assert math.isfinite(got), f"{what}: got {got!r}, reference {mp.nstr(ref, 20)}"
    err = abs(M(got) - ref)
    assert err <= tol, (
        f"{what}: got {got!r}, reference {mp.nstr(ref, 20)}, error {mp.nstr(err, 3)} > "
        f"tolerance {mp.nstr(mp.mpf(tol), 3)}"
    )


# --------------------------------------------------------------------------- compiled functions


def _compile(inputs, outputs, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pm.pytensorf.compile(inputs, outputs, mode=MODE, **kw)


@pytest.fixture(scope="module")
def cb_fn():
    """pm.logp / dlogp / pm.logcdf / pm.icdf / mean of ContinuousBernoulli, compiled once."""
    x, e, u = pt.dvector("x"), pt.dvector("e"), pt.dvector("u")
    rv = sb.ContinuousBernoulli.dist(logit_p=e)
    lp = pm.logp(rv, x)
    g_e, g_x = pt.grad(lp.sum(), [e, x])
    return _compile([x, e, u], [lp, g_e, g_x, pm.logcdf(rv, x), pm.icdf(rv, u), cb_mean(e)])


@pytest.fixture(scope="module")
def soft_fn():
    """SoftBernoulli (logit and p forms) and SoftCategorical logp and gradients."""
    l, e, p, w = pt.dvector("l"), pt.dvector("e"), pt.dvector("p"), pt.dvector("w")
    L, E = pt.dmatrix("L"), pt.dmatrix("E")
    lp_logit = pm.logp(sb.SoftBernoulli.dist(logit_p=e, weights=w), l)
    lp_p = pm.logp(sb.SoftBernoulli.dist(p=p, weights=w), l)
    lp_cat = pm.logp(sb.SoftCategorical.dist(logits=E), L)
    return _compile(
        [l, e, p, w, L, E],
        [lp_logit, pt.grad(lp_logit.sum(), e), lp_p, pt.grad(lp_p.sum(), p),
         lp_cat, pt.grad(lp_cat.sum(), E)],
        on_unused_input="ignore",
    )


@pytest.fixture(scope="module")
def family_fn():
    """logp, gradient and mean of every family of softbayes.Model, compiled once."""
    y, e, phi, w = pt.dvector("y"), pt.dvector("e"), pt.dvector("phi"), pt.dvector("w")
    L, E = pt.dmatrix("L"), pt.dmatrix("E")
    out = {}
    for name in ("weighted_bernoulli", "continuous_bernoulli", "bernoulli"):
        fam = get_family(name)
        kw = {"weights": w} if fam.supports_weights else {}
        lp = fam.logp(y, eta=e, **kw)
        out[name] = [lp, pt.grad(lp.sum(), e), fam.mean(eta=e)]
    beta = get_family("beta")
    lp = beta.logp(y, eta=e, phi=phi)
    out["beta"] = [lp, *pt.grad(lp.sum(), [e, phi]), beta.mean(eta=e, phi=phi)]
    cat = get_family("soft_categorical")
    lp = cat.logp(L, eta=E, weights=w)
    out["soft_categorical"] = [lp, pt.grad(lp.sum(), E), cat.mean(eta=E)]
    names = list(out)
    flat = [o for n in names for o in out[n]]
    fn = _compile([y, e, phi, w, L, E], flat, on_unused_input="ignore")
    sizes = [len(out[n]) for n in names]

    def call(**kwargs):
        # one function for all families: shapes must agree (w goes with y or with L)
        n = len(kwargs["y"]) if "y" in kwargs else len(kwargs["L"])
        args = {"y": np.zeros(n), "e": np.zeros(n), "phi": np.ones(n), "w": np.ones(n),
                "L": np.full((n, 2), 0.5), "E": np.zeros((n, 2))}
        args.update(kwargs)
        res = fn(args["y"], args["e"], args["phi"], args["w"], args["L"], args["E"])
        outd, i = {}, 0
        for n, s in zip(names, sizes, strict=True):
            outd[n] = res[i:i + s]
            i += s
        return outd

    return call


@pytest.fixture(scope="module")
def draw_fn():
    """Draws of ContinuousBernoulli, SoftBernoulli and SoftCategorical (RNG updates on)."""
    e, E = pt.dvector("e"), pt.dmatrix("E")
    cb = sb.ContinuousBernoulli.dist(logit_p=e, size=(16, e.shape[0]))
    sbern = sb.SoftBernoulli.dist(logit_p=e, size=(16, e.shape[0]))
    scat = sb.SoftCategorical.dist(logits=E, size=(16, E.shape[0]))
    return _compile([e, E], [cb, sbern, scat])


# --------------------------------------------------------------------------- Continuous Bernoulli


def _cb_logp_tol(x, e):
    # Error of the stable form: a few ulps of |eta| (1 - x) (eta > 0) or |eta| x (eta < 0),
    # of log|eta| and of O(1) terms; relative 1e-14 on top.
    dist = (1.0 - x) if e > 0 else x
    return 16 * EPS * (abs(e) * dist + abs(math.log(abs(e))) if e else 0.0) + 16 * EPS


@PROPS
@given(batch(unit, eta_st))
def test_cb_logp_and_gradient_match_mpmath(reliability, cb_fn, xe):
    x, e = xe
    reliability.add("properties", "continuous_bernoulli_logp_grad")
    lp_np = cb_logp(x, e)
    lp, g_e, g_x, *_ = cb_fn(x, e, np.full_like(x, 0.5))
    for i in range(len(x)):
        xi, ei = float(x[i]), float(e[i])
        with mp.workdps(_dps(xi, ei, 1 - xi)):
            X, E = M(xi), M(ei)
            ref = ref_cb_logp(X, E)
            tol = _cb_logp_tol(xi, ei) + 1e-13 * abs(ref)
            check_close(float(lp_np[i]), ref, tol, f"numpy cb_logp({xi!r}, {ei!r})")
            check_close(float(lp[i]), ref, tol, f"pm.logp(CB(logit_p={ei!r}), {xi!r})")
            mean = ref_cb_mean(E)
            check_close(float(g_e[i]), X - mean, 64 * EPS * (abs(X) + abs(mean)) + 1e-300,
                        f"d logp / d logit_p at x={xi!r}, logit_p={ei!r}")
            check_close(float(g_x[i]), E, 4 * EPS * abs(E), f"d logp / dx at ({xi!r}, {ei!r})")


@PROPS
@given(batch(unit, eta_st))
def test_cb_logcdf_matches_mpmath_and_cdf_in_unit_interval(reliability, cb_fn, xe):
    x, e = xe
    reliability.add("properties", "continuous_bernoulli_logcdf")
    lc_np = cb_logcdf(x, e)
    _, _, _, lc, _, _ = cb_fn(x, e, np.full_like(x, 0.5))
    for got in (lc_np, lc):
        assert not np.isnan(got).any()
        assert (got <= 0.0).all()  # CDF <= 1
        cdf = np.exp(got)
        assert ((cdf >= 0.0) & (cdf <= 1.0)).all()
    for i in range(len(x)):
        xi, ei = float(x[i]), float(e[i])
        with mp.workdps(_dps(xi, ei, 1 - xi)):
            ref = ref_cb_logcdf(M(xi), M(ei))
            # relative to the value (both tails are accurate) + the rounding of eta * x
            tol = 1e-13 * abs(ref) + 8 * EPS * abs(ei) * min(xi, 1 - xi) * (1 + abs(ref)) + 1e-300
            if 0 < xi < DBL_MIN:
                # a subnormal x: the product |eta| x is rounded to an ulp of 2^-1074, a
                # relative error of up to 2^-1074 / (|eta| x) in F (documented limit)
                tol += 2 * TINY / (xi * max(abs(ei), 1.0))
            check_close(float(lc_np[i]), ref, tol, f"numpy cb_logcdf({xi!r}, {ei!r})")
            check_close(float(lc[i]), ref, tol, f"pm.logcdf(CB(logit_p={ei!r}), {xi!r})")


@PROPS
@given(unit, unit, eta_st)
def test_cb_cdf_is_monotone(reliability, a, b, e):
    reliability.add("properties", "continuous_bernoulli_cdf_monotone")
    lo, hi = min(a, b), max(a, b)
    l_lo, l_hi = cb_logcdf(np.array([lo, hi]), e)
    assert l_lo <= l_hi, f"logcdf({lo!r}) = {l_lo!r} > logcdf({hi!r}) = {l_hi!r}, eta={e!r}"
    grid = np.linspace(lo, hi, 33)
    vals = cb_logcdf(grid, e)
    assert (vals[1:] >= vals[:-1]).all(), f"not monotone on [{lo!r}, {hi!r}], eta={e!r}"


@PROPS
@given(batch(unit, eta_st))
def test_cb_icdf_inverts_cdf(reliability, cb_fn, xe):
    x, e = xe
    reliability.add("properties", "continuous_bernoulli_icdf_roundtrip")
    lc = cb_logcdf(x, e)
    u = np.exp(lc)
    back_np = cb_icdf(u, e)
    _, _, _, _, back, _ = cb_fn(x, e, u)
    lp = cb_logp(x, e)
    for got in (back_np, back):
        assert ((got >= 0.0) & (got <= 1.0)).all()
        # Conditioning of the quantile at u: dx = du / pdf(x), du = a few ulps of u (an ulp
        # of a subnormal u is 2^-1074, a large relative error).
        with np.errstate(over="ignore", divide="ignore"):
            du = np.maximum(EPS * u, TINY)
            cond = np.exp(np.log(du) - lp)
        tol = 1e-12 + 32 * (EPS * x + cond)
        bad = ~(np.abs(got - x) <= tol)
        assert not bad.any(), (
            f"icdf(cdf(x)) != x: x={x[bad]}, eta={e[bad]}, got {got[bad]}, tol {tol[bad]}"
        )


@PROPS
@given(batch(eta_st, max_size=8))
def test_cb_mean_variance_and_draws_in_support(reliability, cb_fn, draw_fn, e_tuple):
    (e,) = e_tuple
    reliability.add("properties", "continuous_bernoulli_mean_draws")
    mean_np, var_np = cb_mean(e), cb_variance(e)
    mean_pt = cb_fn(np.full_like(e, 0.5), e, np.full_like(e, 0.5))[5]
    for i, ei in enumerate(map(float, e)):
        with mp.workdps(_dps(ei)):
            ref_m, ref_v = ref_cb_mean(M(ei)), ref_cb_variance(M(ei))
            check_close(float(mean_np[i]), ref_m, 32 * EPS * ref_m + 1e-300, f"cb_mean({ei!r})")
            check_close(float(mean_pt[i]), ref_m, 32 * EPS * ref_m + 1e-300, f"mean pt ({ei!r})")
            check_close(float(var_np[i]), ref_v, 1e-12 * ref_v + 1e-300, f"cb_variance({ei!r})")
    assert ((mean_np >= 0) & (mean_np <= 1)).all()
    assert ((var_np >= 0) & (var_np <= 1 / 12 + EPS)).all()
    draws, _, _ = draw_fn(e, np.zeros((1, 2)))
    assert draws.shape == (16, len(e))
    assert ((draws >= 0.0) & (draws <= 1.0)).all(), f"draws outside [0, 1] for eta={e}"
    direct = pm.draw(ContinuousBernoulliRV.rv_op(e, size=(4, len(e))), random_seed=0)
    assert ((direct >= 0.0) & (direct <= 1.0)).all()


# --------------------------------------------------------------------------- soft labels


@PROPS
@given(batch(unit, eta_st, weight_st(1e6)))
def test_soft_bernoulli_logit_logp_and_gradient(reliability, soft_fn, lew):
    l, e, w = lew
    reliability.add("properties", "soft_bernoulli_logit")
    lp_np = w * soft_bernoulli_logp(l, e)
    lp, g, *_ = soft_fn(l, e, np.full_like(l, 0.5), w, np.full((1, 2), 0.5), np.zeros((1, 2)))
    for i in range(len(l)):
        li, ei, wi = float(l[i]), float(e[i]), float(w[i])
        with mp.workdps(_dps(li, ei, wi, 1 - li)):
            L, E, W = M(li), M(ei), M(wi)
            ref = W * ref_soft_bernoulli(L, E)
            tol = 8 * EPS * abs(ref) + 1e-300
            check_close(float(lp_np[i]), ref, tol, f"numpy soft_bernoulli_logp({li!r}, {ei!r})")
            check_close(float(lp[i]), ref, tol, f"pm.logp(SoftBernoulli({ei!r}, w={wi!r}), {li!r})")
            gref = W * (L - ref_sigmoid(E))
            check_close(float(g[i]), gref, 16 * EPS * W * (L + ref_sigmoid(E)) + 1e-300,
                        f"d/d logit_p at l={li!r}, logit_p={ei!r}, w={wi!r}")


@PROPS
@given(batch(unit, open_unit, weight_st(1e6)))
def test_soft_bernoulli_p_logp_and_gradient(reliability, soft_fn, lpw):
    l, p, w = lpw
    reliability.add("properties", "soft_bernoulli_p")
    lp_np = w * soft_bernoulli_logp_p(l, p)
    _, _, lp, g, *_ = soft_fn(l, np.zeros_like(l), p, w, np.full((1, 2), 0.5), np.zeros((1, 2)))
    for i in range(len(l)):
        li, pi, wi = float(l[i]), float(p[i]), float(w[i])
        with mp.workdps(_dps(li, pi, wi, 1 - li, 1 - pi)):
            L, P, W = M(li), M(pi), M(wi)
            ref = W * (L * mp.log(P) + (1 - L) * mp.log1p(-P))
            tol = 8 * EPS * abs(ref) + 1e-300
            check_close(float(lp_np[i]), ref, tol, f"numpy soft_bernoulli_logp_p({li!r}, {pi!r})")
            check_close(float(lp[i]), ref, tol, f"pm.logp(SoftBernoulli(p={pi!r}), {li!r})")
            gref = W * (L / P - (1 - L) / (1 - P))
            gtol = 16 * EPS * W * (L / P + (1 - L) / (1 - P)) + 1e-300
            # w * l (or w * (1 - l)) below the normal range is lost before the division
            gtol += W * L / P if W * L < DBL_MIN else 0
            gtol += W * (1 - L) / (1 - P) if W * (1 - L) < DBL_MIN else 0
            check_close(float(g[i]), gref, gtol, f"d/dp at l={li!r}, p={pi!r}, w={wi!r}")


@PROPS
@given(simplex_rows())
def test_soft_categorical_logp_and_gradient(reliability, soft_fn, LE):
    Lab, E = LE
    reliability.add("properties", "soft_categorical")
    n = Lab.shape[0]
    lp_np = soft_categorical_logp(Lab, E)
    *_, lp, g = soft_fn(np.full(n, 0.5), np.zeros(n), np.full(n, 0.5), np.ones(n), Lab, E)
    for i in range(n):
        with mp.workdps(60):
            row = [M(v) for v in E[i]]
            lsm = ref_log_softmax(row)
            labs = [M(v) for v in Lab[i]]
            terms = [lab * t for lab, t in zip(labs, lsm, strict=True) if lab != 0]
            ref = mp.fsum(terms)
            scale = mp.fsum(abs(t) for t in terms) + max(abs(v) for v in row) * mp.fsum(labs)
            tol = 16 * EPS * scale + 1e-300
            check_close(float(lp_np[i]), ref, tol, f"numpy soft_categorical_logp {Lab[i]}, {E[i]}")
            check_close(float(lp[i]), ref, tol, f"pm.logp(SoftCategorical) row {Lab[i]}, {E[i]}")
            sm = [mp.exp(v) for v in lsm]
            for k in range(Lab.shape[1]):
                gref = labs[k] - sm[k] * mp.fsum(labs)
                check_close(float(g[i, k]), gref, 16 * EPS + 1e-300,
                            f"d/d logits[{k}] row {Lab[i]}, {E[i]}")


@PROPS
@given(batch(eta_st, max_size=8), simplex_rows())
def test_soft_draws_are_hard_labels(reliability, draw_fn, e_tuple, LE):
    (e,) = e_tuple
    _, E = LE
    reliability.add("properties", "soft_draws")
    _, bern, cat = draw_fn(e, E)
    assert set(np.unique(bern)) <= {0.0, 1.0}
    assert cat.shape == (16, *E.shape)
    assert set(np.unique(cat)) <= {0.0, 1.0}
    np.testing.assert_array_equal(cat.sum(axis=-1), 1.0)


# --------------------------------------------------------------------------- eq. 4-7 identity


@st.composite
def soft_data(draw, multiclass=False):
    n = draw(st.integers(1, 12))
    d = draw(st.integers(1, 3))
    X = np.array(draw(st.lists(st.floats(-10, 10), min_size=n * d, max_size=n * d))).reshape(n, d)
    beta = np.array(draw(st.lists(st.floats(-5, 5), min_size=d, max_size=d)))
    if multiclass:
        k = draw(st.integers(2, 4))
        labels, _ = draw(simplex_rows(n, n, k, k))
        beta = np.array(draw(st.lists(st.floats(-5, 5), min_size=d * k, max_size=d * k)))
        beta = beta.reshape(d, k)
    else:
        labels = np.array(draw(st.lists(unit, min_size=n, max_size=n)))
    weights = draw(st.one_of(st.none(), st.lists(weight_st(100.0), min_size=n, max_size=n)))
    if weights is not None:
        weights = np.array(weights)
        if not (weights > 0).any():
            weights[0] = 1.0
    return X, labels, weights, beta


@PROPS
@given(soft_data())
def test_weighted_bernoulli_equals_duplicated_data(reliability, soft_fn, data):
    X, lab, w, beta = data
    reliability.add("properties", "weighted_bernoulli_duplication_identity")
    n = len(lab)
    w_eff = np.ones(n) if w is None else w
    eta = X @ beta
    X_dup, y_dup, w_dup, obs = sb.expand_soft_labels(X, lab, w)
    assert X_dup.shape == (2 * n, X.shape[1])
    np.testing.assert_array_equal(X_dup, np.vstack([X, X]))
    eta_dup = X_dup @ beta
    direct = w_eff * soft_bernoulli_logp(lab, eta)
    dup_rows = w_dup * soft_bernoulli_logp(y_dup.astype(float), eta_dup)
    dup = np.bincount(obs, weights=dup_rows, minlength=n)
    scale = w_eff * (np.abs(eta) + 1.0)
    # relative to the terms' magnitude; a few subnormal ulps when weights are subnormal
    assert np.all(np.abs(dup - direct) <= 8 * EPS * scale + 4 * TINY), (dup, direct)
    assert abs(dup_rows.sum() - direct.sum()) <= 8 * EPS * scale.sum() * n + 4 * n * TINY
    # compiled path: SoftBernoulli logp on the soft labels and on the duplicated hard labels
    pt_direct = soft_fn(lab, eta, np.full(n, 0.5), w_eff, np.full((1, 2), 0.5),
                        np.zeros((1, 2)))[0]
    pt_dup = soft_fn(y_dup.astype(float), eta_dup, np.full(2 * n, 0.5), w_dup,
                     np.full((1, 2), 0.5), np.zeros((1, 2)))[0]
    assert np.all(np.abs(np.bincount(obs, weights=pt_dup, minlength=n) - pt_direct)
                  <= 8 * EPS * scale + 4 * TINY)


@GRAPH_PROPS
@given(soft_data())
def test_weighted_bernoulli_potential_equals_duplicated_potential(reliability, data):
    """The pm.Potential itself (graph built per example; evaluated without C compilation)."""
    X, lab, w, beta = data
    reliability.add("properties", "weighted_bernoulli_potential_identity")
    _, y_dup, w_dup, obs = sb.expand_soft_labels(X, lab, w)
    eta = pt.dvector("eta")
    with pm.Model() as m:
        soft = sb.WeightedBernoulli("soft", labels=lab, logit_p=eta, weights=w)
        dup = sb.WeightedBernoulli("dup", labels=y_dup, logit_p=pt.concatenate([eta, eta]),
                                   weights=w_dup, obs_index=obs)
    assert set(weighted_terms(m)) == {"soft", "dup"}
    f = pytensor.function([eta], [soft, dup], mode="FAST_COMPILE")
    v_soft, v_dup = f(X @ beta)
    w_eff = np.ones(len(lab)) if w is None else w
    scale = float(np.sum(w_eff * (np.abs(X @ beta) + 1.0)))
    assert math.isfinite(v_soft) and math.isfinite(v_dup)
    assert abs(v_soft - v_dup) <= 16 * EPS * scale * len(lab) + 8 * len(lab) * TINY


@PROPS
@given(soft_data(multiclass=True))
def test_weighted_categorical_equals_duplicated_data(reliability, data):
    X, lab, w, beta = data
    reliability.add("properties", "weighted_categorical_duplication_identity")
    n, k = lab.shape
    w_eff = np.ones(n) if w is None else w
    E = X @ beta
    X_dup, y_dup, w_dup, obs = sb.expand_soft_labels(X, lab, w)
    assert X_dup.shape == (k * n, X.shape[1])
    E_dup = X_dup @ beta
    onehot = np.eye(k)[y_dup]
    dup_rows = w_dup * soft_categorical_logp(onehot, E_dup)
    dup = np.bincount(obs, weights=dup_rows, minlength=n)
    direct = w_eff * soft_categorical_logp(lab, E)
    scale = w_eff * (np.abs(E).max(axis=1) * 2 + 1.0)
    assert np.all(np.abs(dup - direct) <= 16 * EPS * scale * k + 4 * k * TINY), (dup, direct)


# --------------------------------------------------------------------------- families

BINARY = ("weighted_bernoulli", "continuous_bernoulli", "bernoulli")


def test_every_family_is_covered():
    # ordered_beta: tests/terms/test_family_ordered_beta.py::test_logp_mean_draws_properties
    # beta_binomial, binomial: tests/terms/test_family_counts.py::test_count_family_properties
    # dirichlet, continuous_categorical: test_logp_mean_draws_properties in
    # tests/terms/test_family_dirichlet.py and tests/terms/test_family_continuous_categorical.py
    assert set(FAMILIES) == {*BINARY, "beta", "soft_categorical", "ordered_beta",
                             "beta_binomial", "binomial", "dirichlet",
                             "continuous_categorical"}


@pytest.mark.parametrize("name", BINARY)
@PROPS
@given(batch(unit, eta_st, weight_st(1e3)))
def test_binary_families_logp_gradient_mean_draws(reliability, family_fn, name, lew):
    l, e, w = lew
    reliability.add("properties", f"family_{name}")
    fam = get_family(name)
    if name == "bernoulli":
        l = (l >= 0.5).astype(float)
    if not fam.supports_weights:
        w = np.ones_like(w)
    kw = {"weights": w} if fam.supports_weights else {}
    lp_np = fam.logp(l, eta=e, **kw)
    lp, g, mean = family_fn(y=l, e=e, w=w)[name]
    mean_np = fam.mean(eta=e)
    for i in range(len(l)):
        li, ei, wi = float(l[i]), float(e[i]), float(w[i])
        with mp.workdps(_dps(li, ei, wi, 1 - li)):
            L, E, W = M(li), M(ei), M(wi)
            if name == "continuous_bernoulli":
                ref, gref = ref_cb_logp(L, E), L - ref_cb_mean(E)
                tol = _cb_logp_tol(li, ei) + 1e-14 * abs(ref)
                mref = ref_cb_mean(E)
                gtol = 64 * EPS * (abs(L) + abs(mref)) + 1e-300
            else:
                ref, gref = W * ref_soft_bernoulli(L, E), W * (L - ref_sigmoid(E))
                tol = 8 * EPS * abs(ref) + 1e-300
                mref = ref_sigmoid(E)
                gtol = 16 * EPS * W * (L + mref) + 1e-300
            for got, what in ((lp_np[i], "numpy"), (lp[i], "pytensor")):
                check_close(float(got), ref, tol, f"{name} {what} logp(l={li!r}, eta={ei!r})")
            check_close(float(g[i]), gref, gtol, f"{name} d logp/d eta (l={li!r}, eta={ei!r})")
            for got in (mean_np[i], mean[i]):
                check_close(float(got), mref, 32 * EPS * mref + 1e-300, f"{name} mean({ei!r})")
    for m in (mean_np, mean):
        assert ((m >= 0) & (m <= 1)).all()
    draws = fam.draws(np.random.default_rng(1), eta=np.broadcast_to(e, (8, len(e))))
    assert ((draws >= 0) & (draws <= 1)).all()
    if name != "continuous_bernoulli":
        assert set(np.unique(draws)) <= {0.0, 1.0}


#: Beta: |eta| up to 700 (beyond, phi * sigmoid(-|eta|) underflows to 0 and the density is
#: -inf in float64), phi from 0.01 to 1e6, any y strictly inside (0, 1).
BETA_ETA = st.one_of(st.floats(-40.0, 40.0), st.floats(-700.0, 700.0))
BETA_PHI = st.floats(1e-2, 1e6)
BETA_Y = open_unit


@PROPS
@given(batch(BETA_Y, BETA_ETA, BETA_PHI))
def test_beta_family_logp_gradient_mean_draws(reliability, family_fn, yep):
    y, e, phi = yep
    reliability.add("properties", "family_beta")
    fam = get_family("beta")
    lp_np = fam.logp(y, eta=e, phi=phi)
    lp, g_e, g_phi, mean = family_fn(y=y, e=e, phi=phi)["beta"]
    for i in range(len(y)):
        yi, ei, pi = float(y[i]), float(e[i]), float(phi[i])
        with mp.workdps(60):
            Y, E, PHI = M(yi), M(ei), M(pi)
            ref = ref_beta_logp(Y, E, PHI)
            mu, om = ref_sigmoid(E), ref_sigmoid(-E)
            a, b = mu * PHI, om * PHI
            rel_b = 4 * EPS  # a and b = phi * sigmoid(+-eta) are accurate to a few ulps
            scale = (abs(mp.loggamma(PHI)) + abs(mp.loggamma(a)) + abs(mp.loggamma(b))
                     + abs((a - 1) * mp.log(Y)) + abs((b - 1) * mp.log1p(-Y)))
            sens = abs(b * (mp.digamma(b) - mp.log1p(-Y))) + abs(a * (mp.digamma(a) - mp.log(Y)))
            tol = 64 * EPS * scale + 4 * rel_b * sens
            for got, what in ((lp_np[i], "numpy"), (lp[i], "pytensor")):
                check_close(float(got), ref, tol, f"beta {what} logp(y={yi!r}, eta={ei!r}, "
                                                  f"phi={pi!r})")
            d_eta, d_phi = ref_beta_grad(Y, E, PHI)
            gscale = (PHI * mu * om * (abs(mp.digamma(a)) + abs(mp.digamma(b)) + abs(mp.log(Y))
                                       + abs(mp.log1p(-Y)) + 1 / b + 1 / a))
            # PyTensor differentiates sigmoid(eta) as sigmoid(eta) (1 - sigmoid(eta)): relative
            # error min(1, eps e^|eta|) on the side of a (eta > 0) or b (eta < 0)
            r = min(1.0, EPS * math.exp(min(abs(ei), 700.0)))
            side = (abs(mp.digamma(a)) + abs(mp.log(Y))) if ei > 0 else (
                abs(mp.digamma(b)) + abs(mp.log1p(-Y)))
            gtol = 1e3 * rel_b * gscale + 4 * r * PHI * mu * om * side + 1e-300
            check_close(float(g_e[i]), d_eta, gtol,
                        f"beta d/d eta (y={yi!r}, eta={ei!r}, phi={pi!r})")
            pscale = (abs(mp.digamma(PHI)) + mu * abs(mp.digamma(a)) + om * abs(mp.digamma(b))
                      + abs(mp.log(Y)) + abs(mp.log1p(-Y)) + 1 / PHI)
            check_close(float(g_phi[i]), d_phi, 1e3 * rel_b * pscale + 1e-300,
                        f"beta d/d phi (y={yi!r}, eta={ei!r}, phi={pi!r})")
            check_close(float(mean[i]), mu, 8 * EPS * mu, f"beta mean({ei!r})")
    draws = fam.draws(np.random.default_rng(2), eta=e, phi=phi)
    assert ((draws >= 0) & (draws <= 1)).all()


@PROPS
@given(simplex_rows(), weight_st(1e3))
def test_soft_categorical_family_logp_gradient_mean_draws(reliability, family_fn, LE, w0):
    Lab, E = LE
    reliability.add("properties", "family_soft_categorical")
    fam = get_family("soft_categorical")
    n = Lab.shape[0]
    w = np.full(n, w0)
    lp_np = fam.logp(Lab, eta=E, weights=w)
    lp, g, mean = family_fn(L=Lab, E=E, w=w)["soft_categorical"]
    mean_np = fam.mean(eta=E)
    # softmax as exp(eta - max) / sum: on the simplex to a few eps at any magnitude (it was
    # exp(log_softmax(eta)), off by an ulp of the largest logit: 1e-6 at logits of 1e10)
    sum_tol = 8 * EPS * Lab.shape[1]
    for m in (mean_np, mean):
        assert ((m >= 0) & (m <= 1)).all()
        assert (np.abs(m.sum(axis=1) - 1.0) <= sum_tol).all(), (m.sum(axis=1), E)
    for i in range(n):
        with mp.workdps(60):
            row = [M(v) for v in E[i]]
            lsm = ref_log_softmax(row)
            labs = [M(v) for v in Lab[i]]
            terms = [lab * t for lab, t in zip(labs, lsm, strict=True) if lab != 0]
            ref = M(w0) * mp.fsum(terms)
            scale = M(w0) * (mp.fsum(abs(t) for t in terms) + max(abs(v) for v in row))
            for got, what in ((lp_np[i], "numpy"), (lp[i], "pytensor")):
                check_close(float(got), ref, 16 * EPS * scale + 1e-300,
                            f"soft_categorical {what} logp row {Lab[i]}, {E[i]}, w={w0!r}")
            for k in range(Lab.shape[1]):
                gref = M(w0) * (labs[k] - mp.exp(lsm[k]) * mp.fsum(labs))
                check_close(float(g[i, k]), gref, 16 * EPS * M(w0) + 1e-300,
                            f"soft_categorical gradient row {i}, class {k}")
                for m in (mean_np, mean):
                    # relative: the rounding of eta_k - max(eta), amplified by exp
                    ptol = 16 * EPS * mp.exp(lsm[k]) * (1 + 2 * max(abs(v) for v in row))
                    check_close(float(m[i, k]), mp.exp(lsm[k]), ptol + 1e-300,
                                f"softmax mean row {E[i]}, class {k}")
    draws = fam.draws(np.random.default_rng(3), eta=E)
    assert set(np.unique(draws)) <= {0.0, 1.0}
    np.testing.assert_array_equal(draws.sum(axis=-1), 1.0)
    note(f"{n} rows, K={Lab.shape[1]}")
