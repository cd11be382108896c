"""The dirichlet family against scipy.stats and brute force: logp, mean, draws, squeeze."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate, stats
from scipy import special as sp

import softbayes as sb
from softbayes.terms.families import FAMILIES, get_family
from softbayes.terms.families.base import SIMPLEX_DENSITY_GROUP

RNG = np.random.default_rng(20261130)


def _case(n, k, phi_scale=5.0):
    eta = np.column_stack([np.zeros(n), RNG.normal(0.0, 1.5, (n, k - 1))])
    phi = np.exp(RNG.normal(np.log(phi_scale), 1.0, n))
    mu = sp.softmax(eta, axis=1)
    y = np.array([RNG.dirichlet(m * p) for m, p in zip(mu, phi, strict=True)])
    y = np.clip(y, 1e-300, None)
    return y / y.sum(axis=1, keepdims=True), eta, phi


def _scipy_logp(y, eta, phi):
    alpha = sp.softmax(eta, axis=-1) * phi[:, None]
    return np.array([stats.dirichlet.logpdf(r, a) for r, a in zip(y, alpha, strict=True)])


@pytest.fixture(scope="module")
def graph_fn():
    """The family's logp (PyTensor path) and its gradients, compiled once."""
    Y, E, phi = pt.dmatrix("Y"), pt.dmatrix("E"), pt.dvector("phi")
    lp = get_family("dirichlet").logp(Y, eta=E, phi=phi)
    return pytensor.function([Y, E, phi], [lp, *pt.grad(lp.sum(), [E, phi])])


def test_registered_with_its_facts():
    fam = get_family("dirichlet")
    assert FAMILIES["dirichlet"] is type(fam)
    assert fam.multiclass and fam.parameters == ("eta", "phi")
    assert not fam.supports_weights and not fam.calibratable and fam.glm_kernel is None
    assert fam.log_likelihood_kind == "density"
    assert fam.comparison_group() == SIMPLEX_DENSITY_GROUP
    assert FAMILIES["soft_categorical"].elpd_group != SIMPLEX_DENSITY_GROUP
    assert type(fam).model_options() == ("squeeze", "phi_formula")


@pytest.mark.parametrize("k", [2, 3, 5])
def test_logp_matches_scipy(graph_fn, k):
    y, eta, phi = _case(40, k)
    ref = _scipy_logp(y, eta, phi)
    fam = get_family("dirichlet")
    np.testing.assert_allclose(fam.logp(y, eta=eta, phi=phi), ref, rtol=1e-12, atol=1e-11)
    lp, g_eta, g_phi = graph_fn(y, eta, phi)
    np.testing.assert_allclose(lp, ref, rtol=1e-12, atol=1e-11)
    # gradient against central differences of scipy's logpdf
    h = 1e-6
    for i in range(3):
        for j in range(k):
            up, dn = eta[i].copy(), eta[i].copy()
            up[j] += h
            dn[j] -= h
            fd = (_scipy_logp(y[i:i + 1], up[None], phi[i:i + 1])
                  - _scipy_logp(y[i:i + 1], dn[None], phi[i:i + 1]))[0] / (2 * h)
            np.testing.assert_allclose(g_eta[i, j], fd, rtol=1e-6, atol=1e-6)
        fd = (_scipy_logp(y[i:i + 1], eta[i:i + 1], phi[i:i + 1] + h)
              - _scipy_logp(y[i:i + 1], eta[i:i + 1], phi[i:i + 1] - h))[0] / (2 * h)
        np.testing.assert_allclose(g_phi[i], fd, rtol=1e-6, atol=1e-6)


def test_k2_is_the_beta_density():
    y, eta, phi = _case(30, 2)
    ref = stats.beta.logpdf(y[:, 1], sp.expit(eta[:, 1]) * phi, sp.expit(-eta[:, 1]) * phi)
    np.testing.assert_allclose(get_family("dirichlet").logp(y, eta=eta, phi=phi), ref,
                               rtol=1e-12, atol=1e-11)


def test_posterior_shaped_params_broadcast():
    # draws: eta (chain, draw, n, K), phi (chain, draw, 1) constant or (chain, draw, n)
    y, eta, phi = _case(6, 3)
    fam = get_family("dirichlet")
    eta4 = np.broadcast_to(eta, (2, 3, *eta.shape))
    out = fam.logp(y, eta=eta4, phi=np.full((2, 3, 1), 7.0))
    assert out.shape == (2, 3, 6)
    np.testing.assert_allclose(out[1, 2], _scipy_logp(y, eta, np.full(6, 7.0)), rtol=1e-12)
    out = fam.logp(y, eta=eta4, phi=np.broadcast_to(phi, (2, 3, 6)))
    np.testing.assert_allclose(out[0, 1], _scipy_logp(y, eta, phi), rtol=1e-12)
    assert fam.mean(eta=eta4).shape == eta4.shape
    np.testing.assert_allclose(fam.mean(eta=eta4)[0, 0], sp.softmax(eta, axis=1), rtol=1e-14)


def test_draws_match_dirichlet_moments_and_margins():
    eta = np.array([[0.0, 0.7, -0.4]])
    phi = np.array([6.0])
    fam = get_family("dirichlet")
    n = 100_000
    d = fam.draws(np.random.default_rng(5), eta=np.broadcast_to(eta, (n, 3)),
                  phi=np.broadcast_to(phi, (n,)))
    alpha = sp.softmax(eta[0]) * phi[0]
    mu = alpha / alpha.sum()
    cov = (np.diag(mu) - np.outer(mu, mu)) / (phi[0] + 1.0)
    np.testing.assert_allclose(d.sum(axis=1), 1.0, atol=1e-12)
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(d.mean(axis=0) - mu) < 5 * se)
    np.testing.assert_allclose(np.cov(d.T), cov, atol=5e-4)
    for j in range(3):  # each margin is Beta(alpha_j, phi - alpha_j)
        p = stats.kstest(d[:, j], stats.beta(alpha[j], phi[0] - alpha[j]).cdf).pvalue
        assert p > 1e-3, (j, p)


def test_draws_with_tiny_concentrations_stay_on_the_simplex():
    eta = np.array([[0.0, 3.0, -3.0]] * 2000)
    d = get_family("dirichlet").draws(np.random.default_rng(1), eta=eta, phi=np.full(2000, 1e-3))
    assert np.isfinite(d).all() and (d >= 0).all()
    np.testing.assert_allclose(d.sum(axis=1), 1.0, atol=1e-12)
    # mass concentrates on the vertices, vertex j with probability mu_j
    mu = sp.softmax(eta[0])
    vertex = np.bincount(d.argmax(axis=1), minlength=3) / 2000
    assert np.all(np.abs(vertex - mu) < 5 * np.sqrt(mu * (1 - mu) / 2000))


def test_exact_zeros_are_refused_naming_the_rows():
    lab = np.array([[0.2, 0.3, 0.5], [0.0, 0.5, 0.5], [0.1, 0.9, 0.0], [0.3, 0.3, 0.4]])
    with pytest.raises(ValueError, match=r"2 of 4 label rows.*index 11, 12.*squeeze=True"):
        get_family("dirichlet").prepare_labels(lab, name="labels", index=[10, 11, 12, 13])


def test_squeeze_transform_and_record():
    lab = np.array([[0.2, 0.3, 0.5], [0.0, 0.5, 0.5], [0.1, 0.9, 0.0], [1.0, 0.0, 0.0]])
    fam = get_family("dirichlet", squeeze=True)
    z, info = fam.prepare_labels(lab)
    n, k = lab.shape
    np.testing.assert_allclose(z, (lab * (n - 1) + 1 / k) / n, rtol=1e-15)
    np.testing.assert_allclose(z.sum(axis=1), 1.0, atol=1e-15)
    assert (z > 0).all()
    assert info == {"squeeze": 1, "n_squeezed": 3}
    # held-out labels use the training size
    z2, _ = fam.prepare_labels(lab[:1], n_ref=100)
    np.testing.assert_allclose(z2, (lab[:1] * 99 + 1 / 3) / 100, rtol=1e-15)
    assert fam.transforms_labels() and not get_family("dirichlet").transforms_labels()
    assert get_family("dirichlet").label_log_jacobian(50, 3) == 0.0


@pytest.mark.parametrize("k", [2, 3, 6])
def test_squeeze_jacobian_is_the_change_of_variables(k):
    # brute force: the Jacobian matrix of the map on the K - 1 free coordinates (the last
    # share is 1 minus the others) by central differences, and its log-determinant
    n = 37
    fam = get_family("dirichlet", squeeze=True)
    y = RNG.dirichlet(np.ones(k))

    def free_map(u):
        full = np.append(u, 1.0 - u.sum())
        return fam.prepare_labels(full[None], n_ref=n)[0][0, :-1]

    h = 1e-6
    jac = np.empty((k - 1, k - 1))
    for j in range(k - 1):
        e = np.zeros(k - 1)
        e[j] = h
        jac[:, j] = (free_map(y[:-1] + e) - free_map(y[:-1] - e)) / (2 * h)
    _, logdet = np.linalg.slogdet(jac)
    np.testing.assert_allclose(fam.label_log_jacobian(n, k), logdet, rtol=1e-8)
    # the density of y is the density of z times |dz/dy|, and integrates to the z-mass of
    # the squeezed simplex: with K = 2, a Beta probability
    if k == 2:
        a = np.array([1.5, 0.8])
        lo, hi = 1 / (2 * n), 1 - 1 / (2 * n)

        def dens(t):
            zt = fam.prepare_labels(np.array([[1 - t, t]]), n_ref=n)[0]
            return np.exp(stats.dirichlet.logpdf(zt[0], a) + fam.label_log_jacobian(n, 2))

        mass, _ = integrate.quad(dens, 0.0, 1.0, epsabs=1e-12)
        ref = stats.beta(a[1], a[0]).cdf(hi) - stats.beta(a[1], a[0]).cdf(lo)
        np.testing.assert_allclose(mass, ref, rtol=1e-8)


def test_graph_term_equals_family_logp_and_draws_lie_on_the_simplex():
    y, eta, phi = _case(12, 4)
    fam = get_family("dirichlet")
    with pm.Model(coords={"obs": np.arange(12), "class": list("abcd")}):
        rv = fam.add_likelihood("lik", y, dims="obs", eta=pt.as_tensor(eta),
                                phi=pt.as_tensor(phi))
        lp = pm.logp(rv, y).eval()
    np.testing.assert_allclose(lp, _scipy_logp(y, eta, phi), rtol=1e-12)
    d = pm.draw(rv, random_seed=3)
    assert d.shape == (12, 4)
    np.testing.assert_allclose(d.sum(axis=1), 1.0, atol=1e-12)


def test_weights_are_refused_by_the_model():
    df = sb.load_dataset("raters")
    with pytest.raises(ValueError, match="weights= is supported by"):
        sb.Model("c(p_a, p_b, p_c) ~ x1", df, likelihood="dirichlet", squeeze=True,
                 weights="n_raters")


# --------------------------------------------------------------------------- properties

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def dirichlet_case(draw):
    """(label row strictly inside the simplex, logits with a reference 0, precision)."""
    k = draw(st.integers(2, 5))
    raw = np.array(draw(st.lists(st.floats(1e-6, 1.0), min_size=k, max_size=k)))
    eta = np.array([0.0, *draw(st.lists(st.floats(-30, 30), min_size=k - 1, max_size=k - 1))])
    return raw / raw.sum(), eta, draw(st.floats(1e-2, 1e4))


def _mp_dirichlet_logp(y, eta, phi):
    """(log density, sum of the magnitudes of its terms) at 60 digits."""
    with mp.workdps(60):
        e = [mp.mpf(float(v)) for v in eta]
        top = max(e)
        w = [mp.exp(v - top) for v in e]
        a = [mp.mpf(float(phi)) * v / mp.fsum(w) for v in w]
        terms = [mp.loggamma(mp.fsum(a)), *(-mp.loggamma(v) for v in a),
                 *((v - 1) * mp.log(mp.mpf(float(t))) for v, t in zip(a, y, strict=True))]
        return float(mp.fsum(terms)), float(mp.fsum(abs(t) for t in terms))


@PROPS
@given(dirichlet_case())
def test_logp_mean_draws_properties(graph_fn, case):
    y, eta, phi = case
    fam = get_family("dirichlet")
    ref, scale = _mp_dirichlet_logp(y, eta, phi)
    lp_np = fam.logp(y[None], eta=eta[None], phi=np.array([phi]))[0]
    lp_pt, g_eta, g_phi = graph_fn(y[None], eta[None], np.array([phi]))
    for got in (lp_np, lp_pt[0]):
        assert math.isfinite(got)
        # a few eps of each term, and of the concentrations (relative 1e-13 at |eta| <= 30)
        assert abs(got - ref) <= 1e-12 * scale + 1e-12, (got, ref, scale)
    assert np.isfinite(g_eta).all() and np.isfinite(g_phi).all()
    mean = fam.mean(eta=eta[None])[0]
    assert (mean >= 0).all() and abs(mean.sum() - 1) < 1e-14
    d = fam.draws(np.random.default_rng(0), eta=np.broadcast_to(eta, (16, len(eta))),
                  phi=np.full(16, phi))
    assert (d >= 0).all() and np.allclose(d.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("calibrate", ["sandwich", "dispersion"])
def test_calibration_is_refused(calibrate):
    # the spread is the fitted precision phi, not an assumed variance function
    df = sb.load_dataset("raters").iloc[:30]
    model = sb.Model("c(p_a, p_b, p_c) ~ x1", df, likelihood="dirichlet", squeeze=True)
    with pytest.raises(ValueError, match="not the dirichlet family"):
        model.fit(calibrate=calibrate, draws=10, tune=10, chains=1)
