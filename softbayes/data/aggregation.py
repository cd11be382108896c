"""Exact collapse of identical covariate rows into one weighted row each."""

from __future__ import annotations

import numpy as np

__all__ = ["aggregate_rows"]


def aggregate_rows(X, labels, weights=None):
    """Collapse identical covariate rows exactly.

    Rows of ``X`` that are equal (bitwise, as float64) become one row whose weight is the sum
    of their weights and whose label is their weighted mean label. Both GLM likelihoods are
    linear in the label given ``eta``, so

    ``sum_i w_i [l_i eta_i - A(eta_i)] = sum_g W_g [L_g eta_g - A(eta_g)]``

    for every ``beta`` (up to rounding): the same posterior from fewer rows. A group whose
    weights are all zero keeps weight 0 and the plain mean label.

    Parameters
    ----------
    X : array_like, shape (n, d)
    labels : array_like, shape (n,)
    weights : array_like, shape (n,), optional
        Unit weights if None.

    Returns
    -------
    X_agg : ndarray (m, d)
        The distinct rows, in order of first appearance.
    labels_agg : ndarray (m,)
    weights_agg : ndarray (m,)
    index : ndarray of int64 (n,)
        Row ``i`` of the input is row ``index[i]`` of the output.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X: expected a 2-D array, got shape {X.shape}.")
    n = X.shape[0]
    lab = np.asarray(labels, dtype=np.float64)
    if lab.shape != (n,):
        raise ValueError(f"labels: expected shape ({n},), got {lab.shape}.")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights: expected shape ({n},), got {w.shape}.")
    # -0.0 and 0.0 are the same covariate value; compare bytes after normalizing them.
    Xc = np.ascontiguousarray(X + 0.0)
    keys = Xc.view(np.dtype((np.void, Xc.dtype.itemsize * Xc.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    # Order groups by first appearance.
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    index = rank[inverse.ravel()].astype(np.int64)
    m = order.size
    w_sum = np.bincount(index, weights=w, minlength=m)
    wl_sum = np.bincount(index, weights=w * lab, minlength=m)
    count = np.bincount(index, minlength=m)
    l_plain = np.bincount(index, weights=lab, minlength=m) / count
    with np.errstate(invalid="ignore", divide="ignore"):
        l_agg = np.where(w_sum > 0, wl_sum / np.where(w_sum > 0, w_sum, 1.0), l_plain)
    # Rounding can push a mean of labels in [0, 1] an ulp outside; the labels are exact
    # probabilities, so clip that ulp back.
    l_agg = np.clip(l_agg, 0.0, 1.0)
    return X[first[order]], l_agg, w_sum, index
