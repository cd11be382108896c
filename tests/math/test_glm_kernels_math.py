"""The fused GLM kernels and their polynomials against mpmath, over eta in [-745, 745]."""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest
from numba import njit

from softbayes.math import glm_kernels as gk

mp.mp.dps = 40
CODES = {"weighted_bernoulli": gk.WEIGHTED_BERNOULLI,
         "continuous_bernoulli": gk.CONTINUOUS_BERNOULLI}
# float64 cannot hold 1e-10 relative precision below ~1e-300 (subnormal numbers): there the
# comparison is absolute.
TINY = 1e-300


def _atanh_ratio(v):
    return mp.atanh(mp.sqrt(v)) / mp.sqrt(v) if v else mp.mpf(1)


@pytest.mark.parametrize(("name", "f", "interval", "n"), [
    ("EXP", mp.exp, (-mp.log(2) / 2, mp.log(2) / 2), 12),
    ("ATANH", _atanh_ratio, (0, mp.mpf(1) / 9), 11),
    ("ATANH_SHORT", _atanh_ratio, (0, (3 - 2 * mp.sqrt(2)) ** 2), 8),
])
def test_polynomial_coefficients_are_the_documented_chebyshev_fits(name, f, interval, n):
    coeffs, err = mp.chebyfit(f, list(interval), n, error=True, asc=True)
    assert err < 4e-18
    np.testing.assert_allclose(getattr(gk, f"{name}_COEFFICIENTS"),
                               [float(c) for c in coeffs[::-1]], rtol=1e-15, atol=0)


@njit
def _elementary(x):
    out = np.empty((3, x.shape[0]))
    for i in range(x.shape[0]):
        out[0, i] = gk.vexp_neg(x[i])
        out[1, i] = gk.vlog1p(min(x[i], 1.0))
        out[2, i] = gk.vlog(max(x[i], 1e-300))
    return out


def test_elementary_functions_against_mpmath():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(0, 708, 3000), rng.exponential(1, 3000), [0.0, 1e-300]])
    got = _elementary(a)
    exp_ref = np.array([float(mp.exp(-mp.mpf(x))) for x in a])
    np.testing.assert_allclose(got[0], exp_ref, rtol=4e-16, atol=0)
    u = np.concatenate([rng.uniform(0, 1, 2000), [0.0, 1e-300, 1.0]])
    np.testing.assert_allclose(_elementary(u)[1], [float(mp.log1p(mp.mpf(x))) for x in u],
                               rtol=1e-15, atol=0)
    x = np.concatenate([10 ** rng.uniform(-300, 300, 3000), [1.0, 2.0, np.sqrt(2)]])
    np.testing.assert_allclose(_elementary(x)[2], [float(mp.log(mp.mpf(v))) for v in x],
                               rtol=4e-16, atol=1e-300)


@mp.workdps(400)  # the differences below lose up to 330 digits at |eta| = 745
def _mp_terms(family, lab, eta):
    """(l eta - A(eta), l - A'(eta)) in mpmath, from the textbook forms."""
    lab, eta = mp.mpf(float(lab)), mp.mpf(float(eta))
    if family == "weighted_bernoulli":
        a, mean = mp.log1p(mp.exp(eta)), 1 / (1 + mp.exp(-eta))
    elif eta == 0:
        a, mean = mp.mpf(0), mp.mpf(0.5)
    else:  # A = log((e^eta - 1) / eta), A' = e^eta / (e^eta - 1) - 1 / eta
        a = mp.log(mp.expm1(eta) / eta)
        mean = 1 / (-mp.expm1(-eta)) - 1 / eta
    return lab * eta - a, lab - mean


def _grid(rng, n=1500):
    eta = np.concatenate([np.linspace(-745, 745, n // 3), rng.normal(0, 3, n // 3),
                          rng.uniform(-1e-3, 1e-3, n // 6), [0.0, 708.5, -708.5, 36.0]])
    eta = eta[: n]
    lab = rng.random(eta.size)
    lab[::5] = 0.0
    lab[1::5] = 1.0
    return eta, lab, rng.random(eta.size) * 4


@pytest.mark.parametrize("family", list(CODES))
@pytest.mark.parametrize("x_dtype", [np.float64, np.float32])
def test_kernel_rows_and_slopes_against_mpmath(family, x_dtype):
    # X = identity and beta = eta: eta, the rows (glm_rows) and the gradient
    # X^T [w (l - A'(eta))] are each row's own value and slope, with no rounding of X.
    rng = np.random.default_rng(1)
    eta, lab, w = _grid(rng, 900)
    X = np.eye(eta.size, dtype=x_dtype)
    ref = np.array([[float(t) for t in _mp_terms(family, lv, e)]
                    for lv, e in zip(lab, eta, strict=True)])
    code = CODES[family]
    rows = gk.glm_rows(code, eta, X, lab, w)
    np.testing.assert_allclose(rows, w * ref[:, 0], rtol=1e-10, atol=TINY)
    _, grad = gk.glm_logp_dlogp(code, eta, X, lab, w)
    np.testing.assert_allclose(grad, w * ref[:, 1], rtol=1e-10, atol=TINY)
    val, _ = gk.glm_logp_dlogp(code, eta, X, lab, np.empty(0))
    total = mp.fsum(mp.mpf(float(r)) for r in ref[:, 0])
    assert abs(val - float(total)) <= 1e-12 * float(mp.fsum(abs(r) for r in ref[:, 0]))


@pytest.mark.parametrize("family", list(CODES))
def test_float32_storage_matches_float64_to_1e5(family):
    # Design and labels rounded to float32 (Model(dtype="float32")): the summed logp and
    # its gradient within 1e-5 relative of the float64 kernel on the unrounded data.
    rng = np.random.default_rng(2)
    n, d = 5000, 6
    X = np.column_stack([np.ones(n), rng.normal(size=(n, d - 1))])
    beta = rng.normal(0, 1.0, d)
    lab = rng.random(n)
    lab[:200], lab[200:400] = 0.0, 1.0
    code = CODES[family]
    v64, g64 = gk.glm_logp_dlogp(code, beta, X, lab, np.empty(0))
    v32, g32 = gk.glm_logp_dlogp(code, beta, X.astype(np.float32), lab.astype(np.float32),
                                 np.empty(0))
    assert abs(v32 - v64) <= 1e-5 * abs(v64)
    assert np.max(np.abs(g32 - g64)) <= 1e-5 * np.max(np.abs(g64))
