"""The soft-label math against independent references (mpmath, plain NumPy), and eq. 4."""

import mpmath as mp
import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest

from softbayes import expand_soft_labels
from softbayes.math.soft_labels import (
    soft_bernoulli_logp,
    soft_bernoulli_logp_p,
    soft_categorical_logp,
    soft_categorical_logp_p,
)

mp.mp.dps = 60


def _mp_bernoulli(l, eta):
    """l log sigmoid(eta) + (1-l) log sigmoid(-eta), in 60-digit arithmetic."""
    l, eta = mp.mpf(l), mp.mpf(eta)
    log_q = -mp.log1p(mp.exp(-eta))
    log_1mq = -mp.log1p(mp.exp(eta))
    out = mp.mpf(0)
    if l != 0:
        out += l * log_q
    if l != 1:
        out += (1 - l) * log_1mq
    return float(out)


ETAS = [-700.0, -300.0, -40.0, -5.0, -1e-8, 0.0, 3e-9, 0.7, 12.0, 36.0, 300.0, 700.0]
LABELS = [0.0, 1.0, 0.5, 1e-12, 1 - 1e-12, 0.3, 0.999]


def _relerr(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.abs(a - b) / np.maximum(np.abs(b), 1e-300)


def test_bernoulli_logit_matches_mpmath_numpy_and_pytensor():
    ll, ee = np.meshgrid(LABELS, ETAS, indexing="ij")
    ref = np.vectorize(_mp_bernoulli)(ll, ee)
    got_np = soft_bernoulli_logp(ll, ee)
    lab, eta = pt.dmatrix("l"), pt.dmatrix("eta")
    fn = pytensor.function([lab, eta], soft_bernoulli_logp(lab, eta))
    got_pt = fn(ll, ee)
    assert np.all(np.isfinite(got_np)) and np.all(np.isfinite(got_pt))
    # Relative accuracy everywhere, including |eta| = 700 and labels exactly 0 and 1,
    # where the value is -700, about -1e-304, or 0.
    assert _relerr(got_np, ref).max() < 1e-13
    assert _relerr(got_pt, ref).max() < 1e-13


@pytest.mark.parametrize(
    ("l", "eta", "expected"),
    [
        (1.0, 700.0, -np.exp(-700.0)),  # log sigmoid(700) = -log1p(e^-700)
        (0.0, -700.0, -np.exp(-700.0)),
        (0.0, 700.0, -700.0),
        (1.0, -700.0, -700.0),
        (0.5, 700.0, -350.0),
    ],
)
def test_bernoulli_logit_extremes_exact(l, eta, expected):
    got = soft_bernoulli_logp(np.float64(l), np.float64(eta))
    assert got == pytest.approx(expected, rel=1e-15, abs=0)


def test_bernoulli_p_form_matches_direct_numpy_and_handles_exact_labels():
    rng = np.random.default_rng(1)
    l = np.concatenate([rng.uniform(size=50), [0.0, 1.0, 0.0, 1.0]])
    p = np.concatenate([rng.uniform(0.01, 0.99, size=50), [0.0, 1.0, 0.3, 0.3]])
    direct = np.array(
        [
            (li * np.log(pi) if li else 0.0) + ((1 - li) * np.log(1 - pi) if li != 1 else 0.0)
            for li, pi in zip(l, p, strict=True)
        ]
    )
    got = soft_bernoulli_logp_p(l, p)
    np.testing.assert_allclose(got, direct, rtol=1e-13, atol=0)
    # l = 0 at p = 0 and l = 1 at p = 1 are 0 (0 log 0 = 0), not NaN
    assert got[-4] == 0.0 and got[-3] == 0.0
    # no clamping: p = 0 with l > 0 is -inf
    assert soft_bernoulli_logp_p(np.array(0.5), np.array(0.0)) == -np.inf
    lab, pp = pt.dvector("l"), pt.dvector("p")
    fn = pytensor.function([lab, pp], soft_bernoulli_logp_p(lab, pp))
    np.testing.assert_allclose(fn(l, p), direct, rtol=1e-13, atol=0)


def _mp_categorical(lrow, erow):
    erow = [mp.mpf(e) for e in erow]
    lse = mp.log(mp.fsum(mp.exp(e) for e in erow))
    return float(mp.fsum(mp.mpf(li) * (e - lse) for li, e in zip(lrow, erow, strict=True) if li))


def test_categorical_matches_mpmath_numpy_and_pytensor():
    rng = np.random.default_rng(2)
    L = rng.dirichlet(np.ones(4), size=20)
    L[0] = [1.0, 0.0, 0.0, 0.0]
    L[1] = [0.0, 0.0, 0.0, 1.0]
    eta = rng.normal(scale=3.0, size=(20, 4))
    eta[0] = [700.0, -700.0, 0.0, 1.0]
    eta[1] = [700.0, -700.0, 0.0, -700.0]
    ref = np.array([_mp_categorical(a, b) for a, b in zip(L, eta, strict=True)])
    got = soft_categorical_logp(L, eta)
    assert got.shape == (20,)
    assert _relerr(got, ref).max() < 1e-12
    lab, lg = pt.dmatrix("l"), pt.dmatrix("eta")
    fn = pytensor.function([lab, lg], soft_categorical_logp(lab, lg))
    assert _relerr(fn(L, eta), ref).max() < 1e-12
    # the p form at the same probabilities
    P = np.exp(eta - eta.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    ok = slice(2, None)  # rows 0-1 have probabilities that underflow to 0
    np.testing.assert_allclose(soft_categorical_logp_p(L[ok], P[ok]), ref[ok], rtol=1e-12)
    # the binary case of the categorical is the Bernoulli
    l, e = rng.uniform(size=30), rng.normal(scale=4, size=30)
    two = soft_categorical_logp(np.column_stack([1 - l, l]), np.column_stack([np.zeros(30), e]))
    np.testing.assert_allclose(two, soft_bernoulli_logp(l, e), rtol=1e-13)


def test_expand_soft_labels_binary_is_eq4():
    X = np.arange(6.0).reshape(3, 2)
    l = np.array([0.75, 0.0, 1.0])
    X_dup, y_dup, w_dup, obs = expand_soft_labels(X, l)
    np.testing.assert_array_equal(X_dup, np.vstack([X, X]))
    np.testing.assert_array_equal(y_dup, [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(w_dup, [0.75, 0.0, 1.0, 0.25, 1.0, 0.0])
    np.testing.assert_array_equal(obs, [0, 1, 2, 0, 1, 2])
    _, _, w2, _ = expand_soft_labels(X, l, weights=[2.0, 1.0, 3.0])
    np.testing.assert_array_equal(w2, [1.5, 0.0, 3.0, 0.5, 1.0, 0.0])


def test_expand_soft_labels_multiclass_and_pandas():
    L = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    X = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}, index=[10, 20])
    X_dup, y_dup, w_dup, obs = expand_soft_labels(X, L)
    assert list(X_dup["a"]) == [1.0, 2.0] * 3
    assert list(X_dup.index) == list(range(6))
    np.testing.assert_array_equal(y_dup, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(w_dup, [0.2, 1.0, 0.3, 0.0, 0.5, 0.0])
    np.testing.assert_array_equal(obs, [0, 1, 0, 1, 0, 1])
    # the weighted hard-label log-likelihood summed per point is the soft one (eq. 7)
    eta = np.array([[0.1, -2.0, 3.0], [5.0, 1.0, -1.0]])
    lsm = eta - np.log(np.exp(eta).sum(1, keepdims=True))
    per_row = w_dup * lsm[obs, y_dup]
    np.testing.assert_allclose(np.bincount(obs, per_row), (L * lsm).sum(1), rtol=1e-14)


def test_expand_soft_labels_row_mismatch():
    with pytest.raises(ValueError, match="X: has 3 rows but labels have 2"):
        expand_soft_labels(np.zeros((3, 1)), [0.1, 0.2])
