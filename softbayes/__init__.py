"""softbayes: Bayesian classifiers on soft labels, built on PyMC, PyTensor and ArviZ."""

from softbayes._version import __version__

__all__ = [
    "__version__",
]
