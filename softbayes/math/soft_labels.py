"""Soft-label cross-entropy terms, written once for NumPy arrays and PyTensor tensors.

For a soft label ``l`` (the probability that the hard label is 1) and a predicted
probability ``q = sigmoid(eta)``, the cross-entropy term of the source discussion (eq. 3) is

    l log q + (1 - l) log(1 - q) = l eta - softplus(eta),

which is also the weighted Bernoulli log-likelihood of the duplicated data set (eq. 4-7).
The functions here return that term elementwise (binary) or reduced over the class axis
(multiclass). They never clip or renormalize their inputs; see :mod:`softbayes.data.validation`.

Every function dispatches through :func:`softbayes.math.xp.ops`: NumPy in, NumPy out;
PyTensor in, PyTensor graph out.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np

from softbayes.math.xp import ops

__all__ = [
    "soft_bernoulli_logp",
    "soft_bernoulli_logp_p",
    "soft_categorical_logp",
    "soft_categorical_logp_p",
]


def soft_bernoulli_logp(labels, logit_p):
    r"""Elementwise soft-label Bernoulli log-likelihood from the logit.

    .. math:: l\,\eta - \operatorname{softplus}(\eta)
              = -\,l\,\operatorname{softplus}(-\eta) - (1-l)\,\operatorname{softplus}(\eta)

    The right-hand form is evaluated: both terms are non-positive, so there is no
    cancellation, and it is exact for ``|eta|`` up to 700 and beyond (any finite ``eta``)
    including labels exactly 0 and 1.

    Parameters
    ----------
    labels : array_like or TensorVariable
        Soft labels in [0, 1] (or hard 0/1 labels of a duplicated data set).
    logit_p : array_like or TensorVariable
        Log-odds ``eta`` of the predicted probability that the label is 1.

    Returns
    -------
    ndarray or TensorVariable
        The broadcast elementwise term, ``<= 0``.
    """
    xp = ops(labels, logit_p)
    return -labels * xp.softplus(-logit_p) - (1.0 - labels) * xp.softplus(logit_p)


def _xlogy(xp, x, logy):
    # x * log(y) with the cross-entropy convention 0 * log(0) = 0. (`x == 0` is not
    # elementwise on PyTensor variables; `abs(x) > 0` is, on both backends.)
    return xp.where(xp.abs(x) > 0, x * logy, 0.0)


def _quiet(xp):
    # NumPy warns on log(0) and 0 * -inf even where the value is then discarded.
    return nullcontext() if xp.symbolic else np.errstate(divide="ignore", invalid="ignore")


def soft_bernoulli_logp_p(labels, p):
    r"""Elementwise soft-label Bernoulli log-likelihood from the probability.

    .. math:: l \log p + (1 - l) \log(1 - p)

    evaluated as ``l * log(p) + (1 - l) * log1p(-p)`` with ``0 log 0 = 0`` (so a label of
    exactly 0 or 1 does not produce NaN at ``p`` exactly 0 or 1). No clamping: ``p = 0``
    with ``l > 0`` gives ``-inf``.
    """
    xp = ops(labels, p)
    with _quiet(xp):
        return _xlogy(xp, labels, xp.log(p)) + _xlogy(xp, 1.0 - labels, xp.log1p(-p))


def soft_categorical_logp(labels, logits):
    r"""Soft-label categorical log-likelihood from logits, reduced over the last axis.

    .. math:: \sum_k l_k \log \operatorname{softmax}(\eta)_k

    Parameters
    ----------
    labels : array_like or TensorVariable, shape (..., K)
        Probability vectors (rows on the simplex).
    logits : array_like or TensorVariable, shape (..., K)
        Unnormalized log-probabilities; only differences along the last axis matter.

    Returns
    -------
    ndarray or TensorVariable, shape (...)
    """
    xp = ops(labels, logits)
    with _quiet(xp):
        return xp.sum(_xlogy(xp, labels, xp.log_softmax(logits, axis=-1)), axis=-1)


def soft_categorical_logp_p(labels, p):
    r"""Soft-label categorical log-likelihood from class probabilities, last axis reduced.

    .. math:: \sum_k l_k \log p_k

    with ``0 log 0 = 0``; ``p`` is used as given (not renormalized).
    """
    xp = ops(labels, p)
    with _quiet(xp):
        return xp.sum(_xlogy(xp, labels, xp.log(p)), axis=-1)
