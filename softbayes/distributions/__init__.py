"""PyMC distributions for soft labels."""

from softbayes.distributions.continuous_bernoulli import (
    ContinuousBernoulli,
    continuous_bernoulli_entropy,
    continuous_bernoulli_mean,
    continuous_bernoulli_variance,
)
from softbayes.distributions.soft import SoftBernoulli, SoftCategorical

__all__ = [
    "ContinuousBernoulli",
    "SoftBernoulli",
    "SoftCategorical",
    "continuous_bernoulli_entropy",
    "continuous_bernoulli_mean",
    "continuous_bernoulli_variance",
]
