"""Simulated soft-label data and the PyMC models the speed benchmark compares."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy.special import expit

import softbayes as sb
from benchmarks.config import FAMILIES, PRIOR_SD
from softbayes.data.duplication import expand_soft_labels
from softbayes.distributions.glm import ContinuousBernoulliGLM, WeightedBernoulliGLM
from softbayes.math.continuous_bernoulli import cb_icdf


def simulate(n, d, seed, family):
    """Design (intercept first), labels and true coefficients."""
    rng = np.random.default_rng([seed, n, d, FAMILIES.index(family)])
    X = np.column_stack([np.ones(n), rng.normal(size=(n, d - 1))])
    beta = rng.normal(0.0, 0.5, size=d)
    eta = X @ beta
    if family == "weighted_bernoulli":
        labels = expit(eta + 0.5 * rng.normal(size=n))
        hard = rng.random(n) < 0.05  # some labels exactly 0 or 1
        labels[hard] = (rng.random(hard.sum()) < expit(eta[hard])).astype(float)
    else:
        labels = cb_icdf(rng.random(n), eta)
    return X, labels, beta


def build_model(kind, family, X, labels):
    """A PyMC model with ``b ~ Normal(0, 2.5)`` (d,) and one version of the likelihood."""
    d = X.shape[1]
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, PRIOR_SD, shape=d)
        if kind == "fused":
            if family == "weighted_bernoulli":
                WeightedBernoulliGLM("ll", X=X, labels=labels, beta=b)
            else:
                ContinuousBernoulliGLM("y", X=X, beta=b, observed=labels)
        elif kind == "reference":
            eta = pt.dot(pt.as_tensor(X), b)
            if family == "weighted_bernoulli":
                sb.WeightedBernoulli("ll", labels=labels, logit_p=eta)
            else:
                sb.ContinuousBernoulli("y", logit_p=eta, observed=labels)
        elif kind == "naive":
            eta = pt.dot(pt.as_tensor(X), b)
            if family == "weighted_bernoulli":
                p = pm.math.sigmoid(eta)
                pm.Potential("ll", pt.sum(labels * pt.log(p) + (1 - labels) * pt.log(1 - p)))
            else:  # the textbook form, l eta + log(eta / expm1(eta)); NaN at eta = 0
                pm.Potential("ll", pt.sum(labels * eta + pt.log(eta / pt.expm1(eta))))
        elif kind == "duplicated":
            if family != "weighted_bernoulli":
                raise ValueError("the duplicated data set is a weighted-Bernoulli device")
            X_dup, y_dup, w_dup, _ = expand_soft_labels(X, labels)
            eta = pt.dot(pt.as_tensor(X_dup), b)
            pm.Potential(
                "ll", pt.sum(w_dup * pm.logp(pm.Bernoulli.dist(logit_p=eta), y_dup))
            )
        else:
            raise ValueError(kind)
    return model
