"""softbayes: Bayesian classifiers on soft labels, built on PyMC, PyTensor and ArviZ."""

from softbayes._version import __version__
from softbayes.analysis.comparison import Comparison, compare
from softbayes.analysis.diagnostics import FitDiagnostics, diagnose_fit
from softbayes.analysis.predict import marginal_effects, predict
from softbayes.app.runner import run_spec
from softbayes.app.spec import load_spec
from softbayes.backend.log_likelihood import compute_log_likelihood
from softbayes.data.datasets import load_dataset
from softbayes.data.duplication import expand_soft_labels
from softbayes.data.validation import validate_soft_labels, validate_weights
from softbayes.distributions.continuous_bernoulli import (
    ContinuousBernoulli,
    continuous_bernoulli_entropy,
    continuous_bernoulli_mean,
    continuous_bernoulli_variance,
)
from softbayes.distributions.continuous_categorical import ContinuousCategorical
from softbayes.distributions.potentials import WeightedBernoulli, WeightedCategorical
from softbayes.distributions.soft import SoftBernoulli, SoftCategorical
from softbayes.io.fits import load_fit
from softbayes.model import Model

__all__ = [
    "Comparison",
    "ContinuousBernoulli",
    "ContinuousCategorical",
    "FitDiagnostics",
    "Model",
    "SoftBernoulli",
    "SoftCategorical",
    "WeightedBernoulli",
    "WeightedCategorical",
    "__version__",
    "compare",
    "compute_log_likelihood",
    "continuous_bernoulli_entropy",
    "continuous_bernoulli_mean",
    "continuous_bernoulli_variance",
    "diagnose_fit",
    "expand_soft_labels",
    "load_dataset",
    "load_fit",
    "load_spec",
    "marginal_effects",
    "predict",
    "run_spec",
    "validate_soft_labels",
    "validate_weights",
]
