"""PyMC distributions for soft labels, the weighted potentials and the fused GLM terms."""

from softbayes.distributions.continuous_bernoulli import (
    ContinuousBernoulli,
    continuous_bernoulli_entropy,
    continuous_bernoulli_mean,
    continuous_bernoulli_variance,
)
from softbayes.distributions.continuous_categorical import (
    ContinuousCategorical,
    continuous_categorical_draws,
    continuous_categorical_logp,
    continuous_categorical_mean,
)
from softbayes.distributions.glm import ContinuousBernoulliGLM, WeightedBernoulliGLM
from softbayes.distributions.potentials import WeightedBernoulli, WeightedCategorical
from softbayes.distributions.soft import SoftBernoulli, SoftCategorical

__all__ = [
    "ContinuousBernoulli",
    "ContinuousBernoulliGLM",
    "ContinuousCategorical",
    "SoftBernoulli",
    "SoftCategorical",
    "WeightedBernoulli",
    "WeightedBernoulliGLM",
    "WeightedCategorical",
    "continuous_bernoulli_entropy",
    "continuous_bernoulli_mean",
    "continuous_bernoulli_variance",
    "continuous_categorical_draws",
    "continuous_categorical_logp",
    "continuous_categorical_mean",
]
