"""Every validation error is raised, and says what, how many rows, which rows, and the fix."""

import numpy as np
import pandas as pd
import pymc as pm
import pytest

import softbayes as sb
from softbayes.data.validation import validate_obs_index, validate_soft_labels, validate_weights


def test_valid_labels_are_returned_unchanged_as_float64():
    raw = [0, 1, 0.5, 1e-300, 1 - 1e-16]
    out = validate_soft_labels(raw)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, np.asarray(raw, dtype=float))
    out2 = validate_soft_labels(np.array([[0.25, 0.75], [1.0, 0.0]]))
    assert out2.shape == (2, 2)
    # a row sum off by less than atol is accepted and left as is
    row = np.array([[0.5, 0.5 + 5e-7]])
    np.testing.assert_array_equal(validate_soft_labels(row), row)
    assert validate_soft_labels([True, False]).dtype == np.float64


def test_labels_outside_unit_interval():
    labels = pd.Series([0.2, 1.2, 0.5, -0.1, 0.9, 3.0], name="share")
    with pytest.raises(ValueError) as err:
        validate_soft_labels(labels, name="share")
    msg = str(err.value)
    assert msg.startswith("share: 3 of 6 rows lie outside [0, 1]")
    assert "row positions 1, 3, 5" in msg
    assert "nothing is clipped" in msg


def test_labels_nan_or_inf_and_first_rows_only():
    labels = np.full(20, 0.5)
    labels[[2, 4, 6, 8, 10, 12, 14]] = np.nan
    labels[16] = np.inf
    with pytest.raises(ValueError, match=r"y: 8 of 20 rows contain NaN or inf") as err:
        validate_soft_labels(labels, name="y")
    assert "row positions 2, 4, 6, 8, 10, ..." in str(err.value)
    assert "impute" in str(err.value)


def test_multiclass_rows_not_summing_to_one():
    L = np.array([[0.5, 0.5], [0.5, 0.4], [0.2, 0.8], [0.7, 0.7]])
    with pytest.raises(ValueError) as err:
        validate_soft_labels(L, name="votes")
    msg = str(err.value)
    assert "votes: 2 of 4 rows do not sum to 1 within 1e-06" in msg
    assert "row positions 1, 3" in msg
    assert "does not renormalize" in msg
    with pytest.raises(ValueError, match="do not sum to 1 within 1e-09"):
        validate_soft_labels(np.array([[0.5, 0.5 + 5e-7]]), atol=1e-9)


def test_label_shapes():
    with pytest.raises(ValueError, match=r"expected probability vectors of shape \(n, 3\)"):
        validate_soft_labels(np.full((4, 2), 0.5), n_classes=3)
    with pytest.raises(ValueError, match="at least 2 columns"):
        validate_soft_labels(np.ones((4, 1)))
    with pytest.raises(ValueError, match="no rows"):
        validate_soft_labels([])
    with pytest.raises(ValueError, match="must be numeric"):
        validate_soft_labels(["a", "b"], name="col")


def test_weights():
    np.testing.assert_array_equal(validate_weights(None, 3), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(validate_weights([0, 2, 0.5], 3), [0.0, 2.0, 0.5])
    with pytest.raises(ValueError) as err:
        validate_weights([1.0, -1.0, 2.0, -0.5], 4, name="w_col")
    assert str(err.value).startswith("w_col: 2 of 4 rows are negative")
    assert "row positions 1, 3" in str(err.value)
    with pytest.raises(ValueError, match=r"w: 1 of 3 rows are NaN or inf \(row positions 2\)"):
        validate_weights([1.0, 1.0, np.nan], 3, name="w")
    with pytest.raises(ValueError, match="all 3 weights are zero"):
        validate_weights(np.zeros(3), 3)
    with pytest.raises(ValueError, match=r"one weight per row, shape \(3,\), got shape \(2,\)"):
        validate_weights([1.0, 1.0], 3)


def test_obs_index():
    idx, n_obs = validate_obs_index([0, 1, 0, 1], 4)
    assert n_obs == 2 and idx.dtype == np.int64
    with pytest.raises(ValueError, match=r"1 ids never appear \(1\)"):
        validate_obs_index([0, 2, 0, 2], 4)
    with pytest.raises(ValueError, match="1 of 2 rows are negative"):
        validate_obs_index([0, -1], 2)
    with pytest.raises(ValueError, match="1 of 2 rows are not integers"):
        validate_obs_index([0.0, 0.5], 2)


def test_model_level_errors():
    l = np.array([0.1, 0.5, 0.9])
    with pm.Model():
        b = pm.Normal("b", shape=2)
        with pytest.raises(ValueError, match=r"logit_p: shape \(2,\) does not match y"):
            sb.WeightedBernoulli("y", labels=l, logit_p=b)
        with pytest.raises(ValueError, match=r"logit_p: shape \(3, 1\) does not match y"):
            # (n,) labels against an (n, 1) logit would silently build an (n, n) likelihood
            sb.WeightedBernoulli("y", labels=l, logit_p=b[0] * np.ones((3, 1)))
        with pytest.raises(ValueError, match="exactly one of p and logit_p"):
            sb.WeightedBernoulli("y", labels=l, p=0.5, logit_p=0.0)
        with pytest.raises(ValueError, match="y: 1 of 3 rows lie outside"):
            sb.WeightedBernoulli("y", labels=[0.1, 1.5, 0.2], logit_p=b[0])
        with pytest.raises(ValueError, match="weights: all 3 weights are zero"):
            sb.WeightedBernoulli("y", labels=l, logit_p=b[0], weights=np.zeros(3))
        with pytest.raises(ValueError, match="obs_index: expected one entry per row"):
            sb.WeightedBernoulli("y", labels=l, logit_p=b[0], obs_index=[0, 1])
        with pytest.raises(ValueError, match="z: 1 of 3 rows contain NaN"):
            sb.SoftBernoulli("z", logit_p=b[0], observed=[0.1, np.nan, 0.2])
        with pytest.raises(ValueError, match="weights: 1 of 3 rows are negative"):
            sb.SoftBernoulli("z", logit_p=b[0], observed=l, weights=[1, -1, 1])
        with pytest.raises(ValueError, match=r"p: shape \(2,\) does not match z"):
            sb.SoftBernoulli("z", p=pm.math.sigmoid(b), observed=l)
        L = np.array([[0.2, 0.8], [0.6, 0.3]])
        with pytest.raises(ValueError, match="c: 1 of 2 rows do not sum to 1"):
            sb.WeightedCategorical("c", labels=L, logits=np.zeros(2))
        with pytest.raises(ValueError, match="c: 1 of 2 rows do not sum to 1"):
            sb.SoftCategorical("c", logits=np.zeros(2), observed=L)
        good = np.array([[0.2, 0.8], [0.6, 0.4]])
        with pytest.raises(ValueError, match=r"logits: shape \(3,\) does not match c"):
            sb.WeightedCategorical("c", labels=good, logits=np.zeros(3))
        with pytest.raises(ValueError, match=r"logits: shape \(2,\) does not match c"):
            sb.SoftCategorical("c", logits=np.zeros(2), observed=np.full((2, 3), 1 / 3))
        with pytest.raises(ValueError, match="takes probability vectors"):
            sb.WeightedCategorical("c", labels=l, logits=np.zeros(2))
        with pytest.raises(ValueError, match="takes 1-D labels"):
            sb.WeightedBernoulli("y", labels=good, logit_p=b[0])
