"""The duplicated data set of the source discussion (eq. 4).

Each point ``x_i`` with soft label ``l_i`` becomes two hard-labelled rows, ``(x_i, 1)`` with
weight ``l_i`` and ``(x_i, 0)`` with weight ``1 - l_i``; with probability vectors over ``K``
classes, ``K`` rows ``(x_i, k)`` with weights ``l_ik``. Weighted maximum likelihood on these
rows (eq. 6) is the soft-label cross-entropy (eq. 3, 7). This is the form that tools which
only accept hard labels plus ``sample_weight`` (scikit-learn) can fit.
"""

from __future__ import annotations

import numpy as np

from softbayes.data.validation import validate_soft_labels, validate_weights

__all__ = ["expand_soft_labels"]


def _take_rows(X, rows):
    if hasattr(X, "iloc"):  # pandas: positional rows, fresh 0..m-1 index
        return X.iloc[rows].reset_index(drop=True)
    return np.asarray(X)[rows]


def expand_soft_labels(X, labels, weights=None):
    """Duplicate each point once per class, with hard labels and soft-label weights.

    Parameters
    ----------
    X : array_like or pandas object, first axis of length n
        Covariates (any trailing shape); rows are copied, never altered.
    labels : array_like, shape (n,) or (n, K)
        Binary soft labels (probability of class 1) or probability vectors.
    weights : array_like, shape (n,), optional
        Observation weights; the row weights become ``weights_i * l_ik``.

    Returns
    -------
    X_dup : same kind as ``X``, first axis of length ``K n``
        Binary: ``[X; X]`` (eq. 4). Multiclass: ``K`` stacked copies of ``X``.
    y_dup : ndarray of int64, shape (K n,)
        Binary: ``[1, ..., 1, 0, ..., 0]`` as in eq. 4 (the label-1 block first).
        Multiclass: ``[0, ..., 0, 1, ..., 1, ..., K-1]`` (class indices).
    w_dup : ndarray of float64, shape (K n,)
        Binary: ``[l, 1 - l]`` (times ``weights``). Multiclass: ``[l[:, 0], ..., l[:, K-1]]``.
        Zero-weight rows are kept, so the layout is always the one above.
    obs_index : ndarray of int64, shape (K n,)
        The original observation of each row, ``[0, ..., n-1]`` repeated ``K`` times; pass
        it to :func:`softbayes.WeightedBernoulli` / :func:`softbayes.WeightedCategorical`
        so each original point gets one pointwise log-likelihood term.
    """
    lab = validate_soft_labels(labels)
    n = lab.shape[0]
    w = validate_weights(weights, n)
    if X is None or (not hasattr(X, "iloc") and np.ndim(X) == 0):
        raise ValueError(
            f"X: expected covariates with one row per label ({n} rows), got "
            f"{type(X).__name__ if X is None else np.shape(X)}."
        )
    n_x = np.shape(X)[0] if not hasattr(X, "iloc") else len(X)
    if n_x != n:
        raise ValueError(f"X: has {n_x} rows but labels have {n}; they must match row for row.")

    if lab.ndim == 1:
        y_dup = np.concatenate([np.ones(n, np.int64), np.zeros(n, np.int64)])
        w_dup = np.concatenate([w * lab, w * (1.0 - lab)])
        k = 2
    else:
        k = lab.shape[1]
        y_dup = np.repeat(np.arange(k, dtype=np.int64), n)
        w_dup = (lab * w[:, None]).T.reshape(-1)
    obs_index = np.tile(np.arange(n, dtype=np.int64), k)
    return _take_rows(X, obs_index), y_dup, w_dup, obs_index
