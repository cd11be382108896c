"""The Dirichlet family: mean-precision Dirichlet regression of K-class soft labels."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import special as _sp

from softbayes.math.xp import ops
from softbayes.terms.families.base import (
    SIMPLEX_DENSITY_GROUP,
    SIMPLEX_DENSITY_GROUP_DESCRIPTION,
    Family,
    row_summary,
)
from softbayes.terms.predictor import CLASS_DIM

__all__ = ["DirichletFamily"]


def _gammaln(x):
    return pt.gammaln(x) if ops(x).symbolic else _sp.gammaln(x)


def _softmax(eta):
    # softmax itself, not exp(log_softmax): see SoftCategoricalFamily.mean
    if ops(eta).symbolic:
        return pt.special.softmax(eta, axis=-1)
    return _sp.softmax(eta, axis=-1)


def _per_class(phi):
    """``phi`` with a trailing axis, to scale the ``(..., K)`` mean vectors."""
    if ops(phi).symbolic:
        return pt.shape_padright(pt.as_tensor_variable(phi))
    return np.expand_dims(np.asarray(phi, float), -1)


def _alpha(eta, phi):
    """The concentrations ``mu phi``, ``mu = softmax(eta)``."""
    return _softmax(eta) * _per_class(phi)


def _dirichlet_draws(rng, alpha, size=None):
    """Dirichlet draws of the concentrations ``alpha`` (..., K), vectorized (NumPy).

    ``G(a) = G(a + 1) U^(1/a)`` (Marsaglia and Tsang) in logs, then a softmax: exact for any
    ``a > 0``, where normalising plain gamma draws fails once every draw of a row underflows
    to 0 (small concentrations).
    """
    alpha = np.asarray(alpha, float)
    if size is not None:
        alpha = np.broadcast_to(alpha, (*np.atleast_1d(size), alpha.shape[-1]))
    alpha = np.maximum(alpha, np.finfo(np.float64).tiny)
    log_g = np.log(rng.standard_gamma(alpha + 1.0)) + np.log(rng.random(alpha.shape)) / alpha
    return _sp.softmax(log_g, axis=-1)


class DirichletFamily(Family):
    r"""Dirichlet regression: ``y ~ Dirichlet(mu phi)``, ``mu = softmax(0, eta_2, ..., eta_K)``.

    The mean is the softmax of the linear predictors with the reference (first) class's
    column of zeros, as in ``soft_categorical``; the precision ``phi = sum_k alpha_k`` is a
    constant or has its own formula (log link), as in ``beta``. The log-likelihood is the
    Dirichlet density of the label vector on its first ``K - 1`` coordinates (Lebesgue
    measure on the simplex, as :func:`scipy.stats.dirichlet`), so it shares the ELPD group
    of ``continuous_categorical``.

    Exact zeros. The density is 0 or infinite at a zero share, so labels with an exact 0 are
    refused by default, naming the rows. ``squeeze=True`` applies the compositional analogue
    of the Smithson--Verkuilen (2006) squeeze, ``z = (y (n - 1) + 1/K) / n`` (n the training
    size), which keeps each row on the simplex; the fit records ``squeeze`` and the number of
    squeezed rows in its attrs, and comparisons add the per-observation log-Jacobian
    ``(K - 1) log((n - 1) / n)`` (:meth:`label_log_jacobian`) to put its ELPD on the scale of
    the labels as given.

    Row weights are not taken: the likelihood is a density of the label vector, and a
    weighted density is no longer a density (its integral is the weight), so its pointwise
    log-likelihoods would not compare with those of the other fits of the simplex-density
    ELPD group. Duplicate rows instead if weights are counts.

    Not calibratable: the spread of the labels is the fitted precision ``phi`` itself, not an
    assumed variance function, so the dispersion / sandwich calibration does not apply (as
    for ``beta``). No fused GLM kernel exists for simplex families (``glm_kernel`` is None):
    the graph is the vectorized log density, a few elementwise operations per class.
    """

    name = "dirichlet"
    link = "softmax"
    parameters = ("eta", "phi")
    multiclass = True
    option_names = ("squeeze",)
    elpd_group = SIMPLEX_DENSITY_GROUP
    elpd_group_description = SIMPLEX_DENSITY_GROUP_DESCRIPTION
    comparison_note = (
        "Dirichlet coefficients are on the log-ratio scale of the mean shares (class 1 the "
        "reference), and its precision phi sets the spread of the labels around them. When "
        "squeezed, its log density at a share of exactly 0 depends on the squeeze "
        "((y(n-1)+1/K)/n) and is large where the fitted concentrations are below 1: an ELPD "
        "lead built on such rows reflects the squeeze as much as the fit (see the "
        "common-scale scores)."
    )
    squeeze_note = (
        "{n} label rows with a share of exactly 0 were squeezed towards the centre of the "
        "simplex ((y(n-1)+1/K)/n, the compositional Smithson-Verkuilen) for the Dirichlet "
        "density."
    )

    def __init__(self, squeeze=False):
        self.squeeze = bool(squeeze)

    def transforms_labels(self) -> bool:
        return self.squeeze

    def label_log_jacobian(self, n_train: int, n_columns: int = 1) -> float:
        # z = (y (n - 1) + 1/K) / n on each of the K - 1 free coordinates: dz/dy = (n - 1) / n
        if not self.squeeze:
            return 0.0
        return float((n_columns - 1) * np.log((n_train - 1) / n_train))

    def prepare_labels(self, labels, *, name="labels", index=None, n_ref=None):
        lab, info = super().prepare_labels(labels, name=name, index=index)
        n, k = lab.shape[0] if n_ref is None else int(n_ref), lab.shape[1]
        zero = (lab == 0.0).any(axis=1)
        if zero.any() and not self.squeeze:
            count, shown = row_summary(zero, index)
            raise ValueError(
                f"{name}: {count} of {lab.shape[0]} label rows have a share exactly 0 "
                f"(index {shown}), where the Dirichlet density is 0 or infinite. Either pass "
                f"squeeze=True to apply the squeeze (y(n-1)+1/K)/n towards the centre of the "
                "simplex (recorded in the fit's attrs), or use a family that allows zeros: "
                "likelihood='continuous_categorical' or 'soft_categorical'."
            )
        info = {"squeeze": int(self.squeeze), "n_squeezed": int(zero.sum()) if self.squeeze else 0}
        if self.squeeze:
            lab = (lab * (n - 1) + 1.0 / k) / n
        return lab, info

    def logp(self, labels, *, weights=None, eta, phi):
        xp = ops(labels, eta, phi)
        alpha = _alpha(eta, phi)
        return (
            _gammaln(phi) - xp.sum(_gammaln(alpha), axis=-1)
            + xp.sum((alpha - 1.0) * xp.log(labels), axis=-1)
        )

    def mean(self, *, eta, phi=None):
        return _softmax(eta)

    def draws(self, rng, *, eta, phi):
        return _dirichlet_draws(rng, _alpha(eta, phi))

    def add_likelihood(self, name, labels, *, weights=None, dims=None, eta, phi):
        family = self

        def logp(value, eta, phi):
            return family.logp(value, eta=eta, phi=phi)

        def random(eta, phi, rng=None, size=None):
            return _dirichlet_draws(rng, _alpha(eta, phi), size)

        obs_dim = dims[0] if isinstance(dims, tuple | list) else dims
        return pm.CustomDist(
            name, pt.as_tensor_variable(eta), pt.as_tensor_variable(phi), logp=logp,
            random=random, observed=labels, signature="(k),()->(k)",
            dims=None if obs_dim is None else (obs_dim, CLASS_DIM),
        )
