"""The continuous_categorical family against mpmath, quadrature and the Dirichlet's measure."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import integrate, stats
from scipy import special as sp

import softbayes as sb
from softbayes.terms.families import FAMILIES, get_family
from softbayes.terms.families.base import SIMPLEX_DENSITY_GROUP

FAM = get_family("continuous_categorical")


def _ref_logp(x, eta):
    """log density at 50 digits: eta . x - log of the divided difference of exp at the
    (distinct) logits, sum_k e^eta_k / prod_{j != k} (eta_k - eta_j)."""
    with mp.workdps(max(50, mp.mp.dps)):
        e = [mp.mpf(float(v)) for v in eta]
        inv_c = mp.fsum(mp.exp(ek) / mp.fprod(ek - ej for j, ej in enumerate(e) if j != k)
                        for k, ek in enumerate(e))
        return float(mp.fsum(ek * mp.mpf(float(xk)) for ek, xk in zip(e, x, strict=True))
                     - mp.log(inv_c))


def _quad_mean(eta):
    """E[x] for K = 3 by two-dimensional quadrature over the simplex (scipy)."""
    def dens(x2, x1):
        return math.exp(eta[0] * (1 - x1 - x2) + eta[1] * x1 + eta[2] * x2)

    opts = dict(epsabs=1e-14, epsrel=1e-12)
    z = integrate.dblquad(dens, 0, 1, 0, lambda x1: 1 - x1, **opts)[0]
    m1 = integrate.dblquad(lambda x2, x1: x1 * dens(x2, x1), 0, 1, 0, lambda x1: 1 - x1,
                           **opts)[0]
    m2 = integrate.dblquad(lambda x2, x1: x2 * dens(x2, x1), 0, 1, 0, lambda x1: 1 - x1,
                           **opts)[0]
    return np.array([1 - (m1 + m2) / z, m1 / z, m2 / z])


def test_registered_with_its_facts():
    assert FAMILIES["continuous_categorical"] is type(FAM)
    assert FAM.multiclass and FAM.parameters == ("eta",)
    assert not FAM.supports_weights and not FAM.calibratable and FAM.glm_kernel is None
    assert FAM.log_likelihood_kind == "density"
    assert FAM.comparison_group() == get_family("dirichlet", squeeze=True).comparison_group()
    assert FAM.comparison_group() == SIMPLEX_DENSITY_GROUP
    assert FAM.comparison_group() != get_family("soft_categorical").comparison_group()
    assert not FAM.transforms_labels() and FAM.label_log_jacobian(100, 3) == 0.0
    assert type(FAM).model_options() == ()


@pytest.mark.parametrize("eta", [(0.0, 1.3, -0.7), (0.0, 2.5, 2.4, -1.0), (0.0, -4.0)])
def test_logp_matches_mpmath(eta):
    eta = np.array(eta)
    x = np.random.default_rng(len(eta)).dirichlet(np.ones(len(eta)), size=5)
    x[0] = np.eye(len(eta))[1]  # a vertex: exact zeros are in the support
    ref = [_ref_logp(r, eta) for r in x]
    np.testing.assert_allclose(FAM.logp(x, eta=np.broadcast_to(eta, x.shape)), ref,
                               rtol=1e-12, atol=1e-12)
    sym = FAM.logp(pt.as_tensor(x), eta=pt.as_tensor(np.broadcast_to(eta, x.shape))).eval()
    np.testing.assert_allclose(sym, ref, rtol=1e-12, atol=1e-12)


def test_k2_is_the_continuous_bernoulli():
    # the CB density of y at natural parameter e: e y + log(e / (e^e - 1)), written here
    y = np.array([0.0, 0.2, 0.5, 0.9, 1.0])
    for e in (-3.0, 0.4, 7.0):
        ref = e * y + np.log(e / np.expm1(e))
        lab = np.column_stack([1 - y, y])
        eta = np.broadcast_to([0.0, e], lab.shape)
        np.testing.assert_allclose(FAM.logp(lab, eta=eta), ref, rtol=1e-13, atol=1e-13)
        cb_mean = 1 / (1 - np.exp(-e)) - 1 / e
        np.testing.assert_allclose(FAM.mean(eta=eta[:1])[0], [1 - cb_mean, cb_mean],
                                   rtol=1e-13)


def test_equal_logits_are_the_flat_dirichlet():
    # same base measure as the dirichlet family (the two share an ELPD group): with equal
    # logits both are the uniform density (K - 1)! on the simplex
    x = np.random.default_rng(2).dirichlet(np.ones(4), size=6)
    eta = np.full_like(x, 0.3)
    ref = [stats.dirichlet.logpdf(r, np.ones(4)) for r in x]
    np.testing.assert_allclose(FAM.logp(x, eta=eta), ref, rtol=1e-13)
    np.testing.assert_allclose(ref, np.log(6.0), rtol=1e-13)


@pytest.mark.parametrize("eta", [(0.0, 1.0, -0.5), (0.0, 3.0, 2.9), (0.0, 0.0, 0.0)])
def test_mean_is_the_quadrature_mean_not_softmax(eta):
    eta = np.array(eta)
    ref = _quad_mean(eta)
    got = FAM.mean(eta=eta[None])[0]
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-11)
    sym = FAM.mean(eta=pt.as_tensor(eta[None])).eval()[0]
    np.testing.assert_allclose(sym, ref, rtol=1e-9, atol=1e-11)
    if np.ptp(eta) > 0:
        assert np.abs(got - sp.softmax(eta)).max() > 0.05


def test_posterior_shaped_params_and_draws():
    x = np.random.default_rng(3).dirichlet(np.ones(3), size=4)
    eta = np.column_stack([np.zeros(4), np.random.default_rng(4).normal(size=(4, 2))])
    eta4 = np.broadcast_to(eta, (2, 3, 4, 3))
    lp = FAM.logp(x, eta=eta4)
    assert lp.shape == (2, 3, 4)
    np.testing.assert_allclose(lp[1, 2], [_ref_logp(r, e) for r, e in zip(x, eta, strict=True)],
                               rtol=1e-12)
    assert FAM.mean(eta=eta4).shape == (2, 3, 4, 3)
    n = 40_000
    d = FAM.draws(np.random.default_rng(5), eta=np.broadcast_to(eta[0], (n, 3)))
    assert d.shape == (n, 3) and (d >= 0).all()
    np.testing.assert_allclose(d.sum(axis=1), 1.0, atol=1e-12)
    ref = _quad_mean(eta[0])
    assert np.all(np.abs(d.mean(axis=0) - ref) < 5 * d.std(axis=0) / np.sqrt(n))


def test_graph_term_takes_exact_zeros():
    y = np.array([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
    eta = np.array([[0.0, 0.5, -1.0]] * 3)
    lab, info = FAM.prepare_labels(y)
    np.testing.assert_array_equal(lab, y)
    assert info == {}
    with pm.Model(coords={"obs": np.arange(3), "class": list("abc")}):
        rv = FAM.add_likelihood("lik", pm.Data("y", y, dims=("obs", "class")), dims="obs",
                                eta=pt.as_tensor(eta))
        lp = pm.logp(rv, y).eval()
    np.testing.assert_allclose(lp, [_ref_logp(r, e) for r, e in zip(y, eta, strict=True)],
                               rtol=1e-12)


def test_weights_are_refused_by_the_model():
    df = sb.load_dataset("raters")
    with pytest.raises(ValueError, match="weights= is supported by"):
        sb.Model("c(p_a, p_b, p_c) ~ x1", df, likelihood="continuous_categorical",
                 weights="n_raters")


# --------------------------------------------------------------------------- properties

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def cc_case(draw):
    """(label row on the simplex, zeros and vertices included; logits with a reference 0
    and gaps of at least 1e-3, where the mpmath reference's alternating sum is exact at
    the working precision)."""
    k = draw(st.integers(2, 5))
    raw = np.array(draw(st.lists(st.one_of(st.just(0.0), st.floats(0.0, 1.0)),
                                 min_size=k, max_size=k)))
    y = raw / raw.sum() if raw.sum() > 0 else np.eye(k)[0]
    eta = np.array([0.0, *draw(st.lists(st.floats(-60, 60), min_size=k - 1, max_size=k - 1))])
    assume(np.diff(np.sort(eta)).min() > 1e-3)
    return y, eta


@PROPS
@given(cc_case())
def test_logp_mean_draws_properties(case):
    y, eta = case
    with mp.workdps(60 + 20 * len(eta)):
        ref = _ref_logp(y, eta)
    scale = np.abs(eta).max() + abs(ref) + 1.0
    got = FAM.logp(y[None], eta=eta[None])[0]
    assert math.isfinite(got) and abs(got - ref) <= 1e-12 * scale, (got, ref)
    mean = FAM.mean(eta=eta[None])[0]
    assert (mean >= 0).all() and abs(mean.sum() - 1) < 1e-12
    d = FAM.draws(np.random.default_rng(0), eta=np.broadcast_to(eta, (16, len(eta))))
    assert (d >= 0).all() and np.allclose(d.sum(axis=1), 1.0, atol=1e-12)


def test_calibration_is_refused():
    df = sb.load_dataset("raters").iloc[:30]
    model = sb.Model("c(p_a, p_b, p_c) ~ x1", df, likelihood="continuous_categorical")
    with pytest.raises(ValueError, match="not the continuous_categorical family"):
        model.fit(calibrate="sandwich", draws=10, tune=10, chains=1)
