r"""Reference PyTensor expressions of the fused GLM kernels: the definition of every GLM Op.

Each function takes a kernel code (:data:`softbayes.math.glm_kernels.WEIGHTED_BERNOULLI` or
``CONTINUOUS_BERNOULLI``) and the Op's inputs ``(X, labels, weights, beta)``; a length-0
``weights`` means unit weights. The per-row terms are the elementwise math of
:mod:`softbayes.math`, :math:`w_i [l_i \eta_i - A(\eta_i)]` with :math:`\eta = X\beta`, so the
fused Ops agree with the graph a user would write. They give the Ops' derivatives other
than the fused gradient in ``beta``, and the JAX conversion of the Ops.
"""

from __future__ import annotations

import pytensor.tensor as pt

from softbayes.math.continuous_bernoulli import cb_logp, cb_mean
from softbayes.math.glm_kernels import CONTINUOUS_BERNOULLI, WEIGHTED_BERNOULLI
from softbayes.math.soft_labels import soft_bernoulli_logp
from softbayes.ops.graph import is_empty

__all__ = [
    "reference_dlogp_terms",
    "reference_eta",
    "reference_logp_dlogp",
    "reference_mean",
    "reference_no_label_logp_dlogp",
    "reference_rows",
    "reference_vjp",
]

# Per kernel code: the per-row log-likelihood l eta - A(eta) and the mean A'(eta).
_ROW_LOGP = {WEIGHTED_BERNOULLI: soft_bernoulli_logp, CONTINUOUS_BERNOULLI: cb_logp}
_MEAN = {WEIGHTED_BERNOULLI: pt.sigmoid, CONTINUOUS_BERNOULLI: cb_mean}


def _weighted(weights, x):
    return x if is_empty(weights) else weights * x


def reference_eta(X, beta):
    """The linear predictor ``X @ beta``."""
    return pt.dot(X, beta)


def reference_mean(code, eta):
    """``A'(eta)``: ``sigmoid`` (weighted Bernoulli) or the continuous Bernoulli mean."""
    return _MEAN[code](eta)


def reference_rows(code, X, labels, weights, beta):
    """Weighted per-row terms ``w_i [l_i eta_i - A(eta_i)]``."""
    if is_empty(labels):
        raise ValueError("The reference rows need the labels.")
    return _weighted(weights, _ROW_LOGP[code](labels, reference_eta(X, beta)))


def reference_dlogp_terms(code, X, labels, weights, beta):
    """``d rows / d eta = w (l - A'(eta))``: the factor multiplying each row of ``X``."""
    eta = reference_eta(X, beta)
    return _weighted(weights, labels - reference_mean(code, eta))


def reference_vjp(code, X, labels, weights, beta, cot):
    """``X^T [cot * w * (l - A'(eta))]``: the gradient of ``dot(cot, rows)`` in ``beta``."""
    return pt.dot(X.T, cot * reference_dlogp_terms(code, X, labels, weights, beta))


def reference_logp_dlogp(code, X, labels, weights, beta):
    """The summed log-likelihood and its gradient in ``beta``."""
    rows = reference_rows(code, X, labels, weights, beta)
    return pt.sum(rows), pt.dot(X.T, reference_dlogp_terms(code, X, labels, weights, beta))


def reference_no_label_logp_dlogp(code, X, weights, beta):
    """``-sum_i w_i A(eta_i)`` and ``-X^T [w A'(eta)]``: the form without the label term.

    What :class:`~softbayes.ops.glm_op.GLMLogpDlogp` computes when its labels are empty
    (the sufficient-statistics rewrite adds ``s . beta`` and ``s`` back).
    """
    eta = reference_eta(X, beta)
    neg_a = _weighted(weights, _ROW_LOGP[code](pt.zeros_like(eta), eta))
    neg_mean = _weighted(weights, -reference_mean(code, eta))
    return pt.sum(neg_a), pt.dot(X.T, neg_mean)
