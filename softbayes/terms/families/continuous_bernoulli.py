"""The Continuous Bernoulli family: a density of the soft label on [0, 1]."""

from __future__ import annotations

import numpy as np

from softbayes.distributions.continuous_bernoulli import ContinuousBernoulli
from softbayes.distributions.glm import ContinuousBernoulliGLM
from softbayes.math.continuous_bernoulli import cb_icdf, cb_logp, cb_mean, cb_variance
from softbayes.terms.families.base import DENSITY_GROUP_DESCRIPTION, Family

__all__ = ["ContinuousBernoulliFamily"]


class ContinuousBernoulliFamily(Family):
    """Continuous Bernoulli on ``logit lambda = eta``; ``E[y]`` is the CB mean of lambda."""

    name = "continuous_bernoulli"
    glm_kernel = "continuous_bernoulli"
    aggregates_rows = True
    elpd_group = "density"
    elpd_group_description = DENSITY_GROUP_DESCRIPTION
    comparison_note = (
        "Continuous Bernoulli coefficients are on the logit of lambda, not of the mean "
        "E[y | x]; compare families through the marginal effects, which are on the mean "
        "scale."
    )
    calibratable = True
    dispersion_unit = "the Continuous Bernoulli variance A''(eta) assumes"

    def logp(self, labels, *, weights=None, eta):
        return cb_logp(labels, eta)

    def variance(self, *, eta):
        return cb_variance(eta)

    def mean(self, *, eta):
        return cb_mean(eta)

    def draws(self, rng, *, eta):
        return cb_icdf(rng.random(np.shape(eta)), eta)

    def add_likelihood(self, name, labels, *, weights=None, dims=None, eta, glm=None):
        if glm is not None:
            X, theta = glm
            # weights: those of aggregated rows (aggregates_rows), not a user option
            return ContinuousBernoulliGLM(name, X=X, beta=theta, observed=labels,
                                          weights=weights, dims=dims)
        return ContinuousBernoulli(name, logit_p=eta, observed=labels, dims=dims)
