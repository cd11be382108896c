"""Builders of fused GLM likelihood nodes from arrays or PyTensor variables.

:func:`soft_logistic_glm_rows` / :func:`continuous_bernoulli_glm_rows` return the vector of
weighted per-row terms as one node (:class:`~softbayes.ops.glm_op.GLMRows`); its value is
the reference elementwise expression. The summed builders :func:`soft_logistic_glm_logp` /
:func:`continuous_bernoulli_glm_logp` return ``pt.sum`` of it, so a ``pm.Potential`` built on
them is still a sum of rows (what :func:`softbayes.compute_log_likelihood` reads back for the
pointwise log-likelihood); compiled, the sum and its gradient run as one fused pass.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from softbayes.ops.glm_op import GLMRows

__all__ = [
    "as_data",
    "continuous_bernoulli_glm_logp",
    "continuous_bernoulli_glm_rows",
    "glm_logp",
    "glm_rows",
    "soft_logistic_glm_logp",
    "soft_logistic_glm_rows",
    "unit_weights",
]


def as_data(x, name, dtype=None):
    """A data input of a GLM node.

    A numeric array becomes a float constant named ``name`` (C-contiguous when ``name`` is
    ``"X"``); a PyTensor variable (e.g. ``pm.Data``) is used as is. ``dtype``, if given, is
    the dtype to store it in.
    """
    if isinstance(x, Variable):
        return x if dtype is None or x.dtype == dtype else pt.cast(x, dtype)
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    if name == "X":
        arr = np.ascontiguousarray(arr)
    return pt.constant(arr, name=name)


def unit_weights(dtype="float64"):
    """The length-0 weights vector that the GLM Ops read as unit weights."""
    return pt.constant(np.empty(0, dtype=dtype), name="unit_weights")


def glm_rows(family, X, labels, beta, weights=None, *, dtype=None):
    r"""Weighted per-row terms of a GLM soft-label likelihood, as one fused node.

    Parameters
    ----------
    family : {"weighted_bernoulli", "continuous_bernoulli"}
        The kernel name (a family's ``glm_kernel``).
    X : array_like (n, d) or TensorVariable
        Design matrix. A NumPy array becomes a C-contiguous constant.
    labels : array_like (n,) or TensorVariable (e.g. ``pm.Data``)
        Soft labels in [0, 1] (not validated here: see :mod:`softbayes.data.validation`).
    beta : TensorVariable (d,)
        Coefficients.
    weights : array_like (n,) or TensorVariable, optional
        Non-negative row weights; None for unit weights.
    dtype : {"float32", "float64"}, optional
        Store ``X`` in this dtype (``"float32"`` halves the memory read per evaluation; the
        kernels accumulate in float64, the likelihood is exact for the rounded ``X``).

    Returns
    -------
    TensorVariable, shape (n,)
        ``w_i [l_i eta_i - A(eta_i)]``: for ``weighted_bernoulli`` the soft-label
        cross-entropy term (``A = softplus``), for ``continuous_bernoulli`` the log density
        (``A`` = :func:`~softbayes.math.continuous_bernoulli.cb_log_partition`).
    """
    X = as_data(X, "X", dtype)
    labels = as_data(labels, "labels")
    weights = unit_weights(labels.dtype) if weights is None else as_data(weights, "weights")
    beta = pt.as_tensor_variable(beta)
    return GLMRows(family)(X, labels, weights, beta)


def glm_logp(family, X, labels, beta, weights=None, *, dtype=None):
    """``pt.sum(glm_rows(...))``: the summed log-likelihood (see :func:`glm_rows`).

    Compiled together with its gradient, it runs as one fused pass over ``X``.
    """
    return pt.sum(glm_rows(family, X, labels, beta, weights, dtype=dtype))


def soft_logistic_glm_rows(X, labels, beta, weights=None, *, dtype=None):
    """Per-row ``w_i [l_i eta_i - softplus(eta_i)]``, ``eta = X @ beta`` (fused node).

    Drop-in for ``w * soft_bernoulli_logp(labels, X @ beta)``.
    """
    return glm_rows("weighted_bernoulli", X, labels, beta, weights, dtype=dtype)


def soft_logistic_glm_logp(X, labels, beta, weights=None, *, dtype=None):
    """Summed soft-label logistic log-likelihood, fused with its gradient when compiled.

    Drop-in for ``pt.sum(w * soft_bernoulli_logp(labels, X @ beta))``.
    """
    return glm_logp("weighted_bernoulli", X, labels, beta, weights, dtype=dtype)


def continuous_bernoulli_glm_rows(X, labels, beta, weights=None, *, dtype=None):
    """Per-row continuous Bernoulli log density ``w_i cb_logp(l_i, eta_i)`` (fused node)."""
    return glm_rows("continuous_bernoulli", X, labels, beta, weights, dtype=dtype)


def continuous_bernoulli_glm_logp(X, labels, beta, weights=None, *, dtype=None):
    """Summed continuous Bernoulli GLM log-likelihood, fused with its gradient when compiled.

    Drop-in for ``pt.sum(w * cb_logp(labels, X @ beta))``.
    """
    return glm_logp("continuous_bernoulli", X, labels, beta, weights, dtype=dtype)
