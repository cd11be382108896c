"""The soft-categorical family: K classes, probability-vector labels, softmax cross-entropy."""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from scipy import special as _sp

from softbayes.distributions.potentials import WeightedCategorical
from softbayes.math.soft_labels import soft_categorical_logp
from softbayes.math.xp import ops
from softbayes.terms.families.base import Family

__all__ = ["SoftCategoricalFamily"]


class SoftCategoricalFamily(Family):
    """K classes: softmax of ``(0, eta_2, ..., eta_K)`` (first class is the reference),
    probability-vector labels, soft-label cross-entropy ``sum_k l_k log softmax(eta)_k``
    via :func:`softbayes.WeightedCategorical`. Draws are one-hot hard labels."""

    name = "soft_categorical"
    link = "softmax"
    multiclass = True
    supports_weights = True
    log_likelihood_kind = "cross_entropy"
    predictive_check = "reliability"  # draws are hard outcomes, not soft labels
    elpd_group = "soft_categorical"
    elpd_group_description = (
        "soft-label categorical cross-entropy (not a density of the label)"
    )
    comparison_note = (
        "The soft-categorical cross-entropy is not a density of the label vector; its "
        "ELPD compares only soft-categorical fits of the same labels and weights."
    )
    calibratable = True
    dispersion_unit = "single multinomial draws with the same class probabilities"

    def logp(self, labels, *, weights=None, eta):
        out = soft_categorical_logp(labels, eta)
        return out if weights is None else weights * out

    def variance(self, *, eta):
        return _sp.softmax(eta, axis=-1)

    def glm_eta(self, X, theta):
        X = np.asarray(X, float)
        eta = X @ np.asarray(theta, float).reshape(X.shape[1], -1)
        return np.concatenate([np.zeros((X.shape[0], 1)), eta], axis=1)

    def glm_scores_information(self, labels, X, eta, weights):
        # multinomial: score (l - pi) x, curvature (diag(pi) - pi pi') x x', classes 2..K
        n, p = X.shape
        pi = _sp.softmax(eta, axis=-1)
        r, q = (labels - pi)[:, 1:], pi[:, 1:]
        scores = (weights[:, None, None] * X[:, :, None] * r[:, None, :]).reshape(n, -1)
        m = np.einsum("ik,kl->ikl", q, np.eye(q.shape[1])) - q[:, :, None] * q[:, None, :]
        info = np.einsum("i,ij,il,ikm->jklm", weights, X, X, m).reshape(p * r.shape[1], -1)
        return scores, info

    def mean(self, *, eta):
        # softmax itself (exp(eta - max) / sum): exp(log_softmax) carries the rounding of the
        # log-sum-exp, an ulp of the largest logit, into every probability
        if ops(eta).symbolic:
            return pt.special.softmax(eta, axis=-1)
        return _sp.softmax(eta, axis=-1)

    def draws(self, rng, *, eta):
        p = _sp.softmax(eta, axis=-1)
        k = p.shape[-1]
        u = rng.random((*p.shape[:-1], 1))
        idx = np.minimum((u >= np.cumsum(p, axis=-1)).sum(axis=-1), k - 1)
        return np.eye(k)[idx]

    def add_likelihood(self, name, labels, *, weights=None, dims=None, eta):
        obs_dim = dims[0] if isinstance(dims, tuple | list) else dims
        return WeightedCategorical(name, labels=labels, logits=eta, weights=weights, dims=obs_dim)
