"""The continuous categorical family: a density of the K-class soft label on the simplex."""

from __future__ import annotations

from softbayes.distributions.continuous_categorical import (
    ContinuousCategorical,
    continuous_categorical_draws,
    continuous_categorical_logp,
    continuous_categorical_mean,
)
from softbayes.terms.families.base import (
    SIMPLEX_DENSITY_GROUP,
    SIMPLEX_DENSITY_GROUP_DESCRIPTION,
    Family,
)
from softbayes.terms.predictor import CLASS_DIM

__all__ = ["ContinuousCategoricalFamily"]


class ContinuousCategoricalFamily(Family):
    r"""Continuous categorical regression: ``y ~ ContinuousCategorical(logits=eta)``.

    The logits are ``(0, eta_2, ..., eta_K)`` with the reference (first) class's column of
    zeros, as in ``soft_categorical``; the density (:class:`softbayes.ContinuousCategorical`)
    is the simplex analogue of the Continuous Bernoulli and allows exact zeros and one-hot
    labels, so no label is refused or transformed. ``E[y | x]`` is the continuous
    categorical mean of the logits, not ``softmax(eta)``: the coefficients are on the scale
    of the natural parameters, and predictions and the common-scale scores use the mean.

    Row weights are not taken: the likelihood is a density of the label vector, and a
    weighted density is no longer a density (its integral is the weight), so its pointwise
    log-likelihoods would not compare with those of the other fits of the simplex-density
    ELPD group (with ``dirichlet``). Duplicate rows instead if weights are counts.

    Not calibratable: the dispersion / sandwich calibration of multiclass families assumes
    the multinomial variances ``pi``, while the continuous categorical's covariance is the
    Hessian of its log normalizer, which the distribution does not implement (its
    normalizer has first derivatives only). No fused GLM kernel exists for simplex families
    (``glm_kernel`` is None): the normalizer is a per-row Op whose cost, not the linear
    predictor, dominates the log density.
    """

    name = "continuous_categorical"
    link = "softmax"
    multiclass = True
    elpd_group = SIMPLEX_DENSITY_GROUP
    elpd_group_description = SIMPLEX_DENSITY_GROUP_DESCRIPTION
    comparison_note = (
        "Continuous categorical coefficients are on the natural-parameter (logit) scale, "
        "not on the log-ratios of the mean shares E[y | x]; compare families through the "
        "marginal effects, which are on the mean scale."
    )

    def logp(self, labels, *, weights=None, eta):
        return continuous_categorical_logp(labels, eta)

    def mean(self, *, eta):
        return continuous_categorical_mean(eta)

    def draws(self, rng, *, eta):
        return continuous_categorical_draws(rng, eta)

    def add_likelihood(self, name, labels, *, weights=None, dims=None, eta):
        obs_dim = dims[0] if isinstance(dims, tuple | list) else dims
        return ContinuousCategorical(
            name, logits=eta, observed=labels,
            dims=None if obs_dim is None else (obs_dim, CLASS_DIM),
        )
