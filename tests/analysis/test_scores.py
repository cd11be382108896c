"""Common-scale scores: pointwise formulas, PSIS weights, score tables, calibration error.

References are hand-written formulas and direct enumeration, not the module's own output.
"""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import special as sp

from softbayes.analysis.scores import (
    brier_score,
    calibration_error,
    log_score,
    loo_predictive_mean,
    psis_log_weights,
    reliability_table,
    score_table,
)


def test_log_score_binary_matches_formula_and_zero_log_zero():
    p = np.array([0.2, 0.5, 0.9, 1.0, 0.3])
    lab = np.array([0.0, 0.3, 1.0, 1.0, 0.0])
    expected = [np.log(0.8), 0.3 * np.log(0.5) + 0.7 * np.log(0.5), np.log(0.9), 0.0, np.log(0.7)]
    np.testing.assert_allclose(log_score(p, lab), expected, rtol=1e-14)


def test_log_score_multiclass_is_cross_entropy():
    q = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    lab = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    expected = [0.5 * np.log(0.3) + 0.5 * np.log(0.5), np.log(0.6)]
    np.testing.assert_allclose(log_score(q, lab), expected, rtol=1e-14)


def test_brier_is_expected_hard_label_brier():
    # E_{y ~ Bernoulli(l)} (p - y)^2, enumerated
    p = np.array([0.1, 0.7, 0.5])
    lab = np.array([0.0, 0.4, 1.0])
    expected = lab * (p - 1) ** 2 + (1 - lab) * p**2
    np.testing.assert_allclose(brier_score(p, lab), expected, rtol=1e-14)
    # K classes: E_{y ~ Cat(l)} sum_k (q_k - 1[y = k])^2
    q = np.array([[0.2, 0.3, 0.5]])
    lab3 = np.array([[0.1, 0.6, 0.3]])
    onehots = np.eye(3)
    exp3 = sum(lab3[0, j] * ((q[0] - onehots[j]) ** 2).sum() for j in range(3))
    np.testing.assert_allclose(brier_score(q, lab3), [exp3], rtol=1e-14)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        log_score(np.ones(3) / 2, np.ones(4) / 2)


def test_calibration_error():
    rng = np.random.default_rng(0)
    p = rng.random(1000)
    assert calibration_error(p, p) == pytest.approx(0.0, abs=1e-15)
    # constant offset of 0.05 inside (0.05, 0.95): ECE = 0.05
    p = rng.uniform(0.1, 0.9, 1000)
    assert calibration_error(p, p + 0.05) == pytest.approx(0.05, abs=1e-12)
    # direct enumeration with 2 bins
    p = np.array([0.1, 0.2, 0.6, 0.8])
    lab = np.array([0.0, 0.0, 1.0, 0.5])
    expected = (2 * abs(0.0 - 0.15) + 2 * abs(0.75 - 0.7)) / 4
    assert calibration_error(p, lab, n_bins=2) == pytest.approx(expected, rel=1e-12)
    table = reliability_table(p, lab, n_bins=2)
    assert table["n"].tolist() == [2, 2]
    # multiclass: classwise ECE averaged over classes
    q = np.column_stack([1 - p, p])
    l2 = np.column_stack([1 - lab, lab])
    assert calibration_error(q, l2, n_bins=2) == pytest.approx(expected, rel=1e-12)


def test_score_table_paired_differences():
    a = np.array([-0.1, -0.2, -0.3, -0.4])
    b = np.array([-0.2, -0.2, -0.5, -0.3])
    t = score_table({"b": b, "a": a}, higher_is_better=True)
    assert list(t.index) == ["a", "b"]
    d = b - a
    assert t.loc["b", "diff"] == pytest.approx(d.sum())
    assert t.loc["b", "dse"] == pytest.approx(np.sqrt(4) * np.std(d))
    assert t.loc["a", "se"] == pytest.approx(2 * np.std(a))
    assert t.loc["a", "diff"] == 0.0
    # lower is better: the ranking flips
    t2 = score_table({"b": b, "a": a}, higher_is_better=False)
    assert list(t2.index) == ["b", "a"]
    with pytest.raises(ValueError, match="different numbers"):
        score_table({"a": a, "c": a[:3]})


def test_psis_weights_and_loo_mean_without_smoothing_match_plain_importance_sampling():
    # Flat log-likelihood differences: PSIS leaves small-variance weights ~ exp(-ll) alone
    rng = np.random.default_rng(1)
    ll = rng.normal(-1.0, 0.05, size=(2, 400, 3))
    mu = rng.random((2, 400, 3))
    dims = ("chain", "draw", "obs")
    ll_da = xr.DataArray(ll, dims=dims)
    lw, k = psis_log_weights(ll_da)
    assert lw.dims == dims
    np.testing.assert_allclose(sp.logsumexp(lw.values, axis=(0, 1)), 0.0, atol=1e-12)
    w = np.exp(-ll) / np.exp(-ll).sum(axis=(0, 1))
    expected = (w * mu).sum(axis=(0, 1))
    got = loo_predictive_mean(xr.DataArray(mu, dims=dims), lw)
    np.testing.assert_allclose(got.values, expected, rtol=2e-3)
    assert np.all(k.values < 0.5)


def test_loo_mean_keeps_class_dim():
    rng = np.random.default_rng(2)
    q = rng.dirichlet([1, 1, 1], size=(2, 50, 4))
    lw = xr.DataArray(np.zeros((2, 50, 4)), dims=("chain", "draw", "obs"))
    m = loo_predictive_mean(xr.DataArray(q, dims=("chain", "draw", "obs", "class")), lw)
    assert m.dims == ("obs", "class")
    np.testing.assert_allclose(m.values.sum(axis=1), 1.0)
    np.testing.assert_allclose(m.values, q.mean(axis=(0, 1)))


def test_reliability_table_is_dataframe():
    t = reliability_table(np.array([0.05, 0.95]), np.array([0.0, 1.0]), n_bins=4)
    assert isinstance(t, pd.DataFrame)
    assert t["n"].sum() == 2
