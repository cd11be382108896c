"""The weighted-Bernoulli family: soft-label cross-entropy, a label a fraction of a coin flip."""

from __future__ import annotations

from scipy import special as _sp

from softbayes.distributions.glm import WeightedBernoulliGLM
from softbayes.distributions.potentials import WeightedBernoulli
from softbayes.math.soft_labels import soft_bernoulli_logp
from softbayes.math.xp import ops
from softbayes.terms.families.base import Family, hard_label_draws

__all__ = ["WeightedBernoulliFamily"]


class WeightedBernoulliFamily(Family):
    """Soft-label cross-entropy ``w [l eta - softplus(eta)]`` as a registered Potential.

    The seed's likelihood: each soft label ``l`` counts as ``l`` of a success and ``1 - l``
    of a failure (equivalently, the weighted Bernoulli likelihood of the duplicated data
    set). Built on :func:`softbayes.WeightedBernoulli`; draws are hard 0/1 labels.
    """

    name = "weighted_bernoulli"
    supports_weights = True
    glm_kernel = "weighted_bernoulli"
    aggregates_rows = True
    log_likelihood_kind = "cross_entropy"
    predictive_check = "reliability"  # draws are hard outcomes, not soft labels
    elpd_group = "weighted_bernoulli"
    elpd_group_description = "weighted-Bernoulli cross-entropy (not a density of the label)"
    comparison_note = (
        "The weighted-Bernoulli (cross-entropy) posterior spread comes from Bernoulli "
        "information, as if each label were one coin flip: it ignores how precise the soft "
        "labels are and may be too wide (or, with large count weights, too narrow). Its "
        "point predictions are the soft-label maximum-likelihood fit."
    )
    calibratable = True
    dispersion_unit = "Bernoulli coin flips with the same mean"

    def logp(self, labels, *, weights=None, eta):
        out = soft_bernoulli_logp(labels, eta)
        return out if weights is None else weights * out

    def variance(self, *, eta):
        mu = _sp.expit(eta)
        return mu * (1.0 - mu)

    def mean(self, *, eta):
        return ops(eta).sigmoid(eta)

    def draws(self, rng, *, eta):
        return hard_label_draws(rng, eta)

    def add_likelihood(self, name, labels, *, weights=None, dims=None, eta, glm=None):
        if glm is not None:
            X, theta = glm
            return WeightedBernoulliGLM(name, X=X, labels=labels, beta=theta,
                                        weights=weights, dims=dims)
        return WeightedBernoulli(name, labels=labels, logit_p=eta, weights=weights, dims=dims)
