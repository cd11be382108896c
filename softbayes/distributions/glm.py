r"""Fused GLM likelihood terms of PyMC models: one pass over the design matrix per evaluation.

:func:`WeightedBernoulliGLM` and :func:`ContinuousBernoulliGLM` add the same likelihood terms
as :func:`softbayes.WeightedBernoulli` and :class:`softbayes.ContinuousBernoulli` for a
linear predictor ``eta = X @ beta``, built on the fused nodes of :mod:`softbayes.ops`: the
compiled log-density and its gradient evaluate one kernel pass over ``X``.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.model import modelcontext
from pytensor.graph.basic import Variable

from softbayes.data.validation import validate_soft_labels
from softbayes.distributions.potentials import label_values, register_weighted_term, weight_values
from softbayes.math.continuous_bernoulli import cb_icdf
from softbayes.ops import GLMRows, as_data, soft_logistic_glm_rows, unit_weights

__all__ = ["ContinuousBernoulliGLM", "WeightedBernoulliGLM"]


def WeightedBernoulliGLM(
    name, *, X, labels, beta, weights=None, obs_index=None, dims=None, dtype=None, model=None
):
    r"""The soft-label logistic regression term as a registered ``pm.Potential``, fused.

    Same term, registration and pointwise log-likelihood as
    ``softbayes.WeightedBernoulli(name, labels=labels, logit_p=X @ beta, weights=weights, ...)``
    (see :func:`softbayes.WeightedBernoulli`), for a linear predictor ``eta = X @ beta``: the
    Potential is ``pt.sum`` of :func:`~softbayes.ops.builders.soft_logistic_glm_rows`, which
    compiles to one fused pass over ``X`` for the log-density and its gradient, and
    :func:`softbayes.compute_log_likelihood` evaluates its rows.

    Parameters
    ----------
    X : array_like (n_rows, d) or TensorVariable
    labels : array_like (n_rows,) or pm.Data
        Validated as in :func:`softbayes.WeightedBernoulli`, never clipped.
    beta : TensorVariable (d,)
    weights, obs_index, dims, model
        As in :func:`softbayes.WeightedBernoulli`.
    dtype : {"float32", "float64"}, optional
        Storage dtype of ``X`` (see :func:`~softbayes.ops.builders.glm_rows`).
    """
    model = modelcontext(model)
    values, symbolic = label_values(labels, name)
    lab = validate_soft_labels(values, name=name)
    if lab.ndim != 1:
        raise ValueError(f"{name}: WeightedBernoulliGLM takes 1-D labels, got shape {lab.shape}.")
    n_rows = lab.shape[0]
    if not isinstance(X, Variable) and np.shape(X)[0] != n_rows:
        raise ValueError(f"{name}: X has {np.shape(X)[0]} rows but there are {n_rows} labels.")
    w, w_symbolic = weight_values(weights, n_rows)  # pm.Data weights stay symbolic
    rows = soft_logistic_glm_rows(X, lab if symbolic is None else symbolic, beta,
                                  w if w_symbolic is None else w_symbolic, dtype=dtype)
    return register_weighted_term(name, "bernoulli", rows, n_rows, obs_index, dims, model)


def ContinuousBernoulliGLM(name, *, X, beta, observed, weights=None, dims=None, dtype=None):
    r"""Continuous Bernoulli regression ``y_i ~ CB(logit lambda_i = x_i beta)``, fused.

    An observed random variable (so ``pm.compute_log_likelihood`` and
    :func:`softbayes.compute_log_likelihood` see it) whose log density is
    :func:`~softbayes.ops.builders.continuous_bernoulli_glm_rows`; PyMC sums it into the
    model's logp, which then compiles to one fused pass over ``X`` with its gradient. Draws
    (prior and posterior predictive) come from the inverse CDF.

    ``weights`` multiply the log density of each row (a weighted pseudo-likelihood; use
    them for exact aggregation, see :func:`softbayes.data.aggregation.aggregate_rows`).
    """
    X = as_data(X, "X", dtype)
    beta = pt.as_tensor_variable(beta)
    w = unit_weights() if weights is None else as_data(weights, "weights")

    def logp(value, X, w, beta):
        return GLMRows("continuous_bernoulli")(X, value, w, beta)

    def random(X, w, beta, rng=None, size=None):
        eta = np.asarray(X) @ np.asarray(beta)
        return cb_icdf(rng.random(size=size if size is not None else eta.shape), eta)

    return pm.CustomDist(
        name, X, w, beta, logp=logp, random=random, observed=observed, dims=dims,
        signature="(n,d),(m),(d)->(n)",
    )
