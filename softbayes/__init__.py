"""softbayes: Bayesian classifiers on soft labels, built on PyMC, PyTensor and ArviZ.

The public names below are loaded on first use (SPEC 1 lazy loading): ``import softbayes``
and ``softbayes --help`` stay fast, and the command line can handle Ctrl-C while PyMC and
PyTensor are still being imported. ``from softbayes import Model`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from softbayes._version import __version__

if TYPE_CHECKING:
    from softbayes.analysis.comparison import Comparison, compare
    from softbayes.analysis.diagnostics import FitDiagnostics, diagnose_fit
    from softbayes.analysis.plots import conditional_effects, plot_conditional_effects
    from softbayes.analysis.ppc import binned_mean_ppc, loo_pit, plot_ppc, reliability_curve
    from softbayes.analysis.predict import marginal_effects, predict, predictive_draws
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

#: public name -> the module that defines it
_EXPORTS = {
    "Comparison": "softbayes.analysis.comparison",
    "ContinuousBernoulli": "softbayes.distributions.continuous_bernoulli",
    "ContinuousCategorical": "softbayes.distributions.continuous_categorical",
    "FitDiagnostics": "softbayes.analysis.diagnostics",
    "Model": "softbayes.model",
    "SoftBernoulli": "softbayes.distributions.soft",
    "SoftCategorical": "softbayes.distributions.soft",
    "WeightedBernoulli": "softbayes.distributions.potentials",
    "WeightedCategorical": "softbayes.distributions.potentials",
    "binned_mean_ppc": "softbayes.analysis.ppc",
    "compare": "softbayes.analysis.comparison",
    "compute_log_likelihood": "softbayes.backend.log_likelihood",
    "conditional_effects": "softbayes.analysis.plots",
    "continuous_bernoulli_entropy": "softbayes.distributions.continuous_bernoulli",
    "continuous_bernoulli_mean": "softbayes.distributions.continuous_bernoulli",
    "continuous_bernoulli_variance": "softbayes.distributions.continuous_bernoulli",
    "diagnose_fit": "softbayes.analysis.diagnostics",
    "expand_soft_labels": "softbayes.data.duplication",
    "load_dataset": "softbayes.data.datasets",
    "load_fit": "softbayes.io.fits",
    "load_spec": "softbayes.app.spec",
    "loo_pit": "softbayes.analysis.ppc",
    "marginal_effects": "softbayes.analysis.predict",
    "plot_conditional_effects": "softbayes.analysis.plots",
    "plot_ppc": "softbayes.analysis.ppc",
    "predict": "softbayes.analysis.predict",
    "predictive_draws": "softbayes.analysis.predict",
    "reliability_curve": "softbayes.analysis.ppc",
    "run_spec": "softbayes.app.runner",
    "validate_soft_labels": "softbayes.data.validation",
    "validate_weights": "softbayes.data.validation",
}

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
    "binned_mean_ppc",
    "compare",
    "compute_log_likelihood",
    "conditional_effects",
    "continuous_bernoulli_entropy",
    "continuous_bernoulli_mean",
    "continuous_bernoulli_variance",
    "diagnose_fit",
    "expand_soft_labels",
    "load_dataset",
    "load_fit",
    "load_spec",
    "loo_pit",
    "marginal_effects",
    "plot_conditional_effects",
    "plot_ppc",
    "predict",
    "predictive_draws",
    "reliability_curve",
    "run_spec",
    "validate_soft_labels",
    "validate_weights",
]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'softbayes' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
