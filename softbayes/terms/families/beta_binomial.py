"""The beta-binomial family: counts k of m annotators, with disagreement beyond coin flips."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import special as _sp

from softbayes.math.counts import beta_binomial_logp
from softbayes.math.xp import ops
from softbayes.terms.families.base import Family
from softbayes.terms.families.binomial import (
    COUNTS_GROUP,
    COUNTS_GROUP_DESCRIPTION,
    count_labels,
    need_trials,
)

__all__ = ["BetaBinomialFamily"]


def _success_probabilities(rng, eta, phi, size=None):
    """Draws of each item's probability ``Beta(mu phi, (1 - mu) phi)`` (NumPy).

    ``1 - mu`` is ``sigmoid(-eta)``, and a shape that underflows is raised to the smallest
    normal double (NumPy's sampler refuses 0), whose draws are the limit 0 or 1.
    """
    tiny = np.finfo(np.float64).tiny
    a = np.maximum(_sp.expit(eta) * phi, tiny)
    b = np.maximum(_sp.expit(-eta) * phi, tiny)
    return rng.beta(a, b, size=size)


class BetaBinomialFamily(Family):
    r"""``k ~ BetaBinomial(m, mu phi, (1 - mu) phi)``, ``mu = sigmoid(eta)``: ``p(k, m)``.

    Each item's probability of a "yes" is ``Beta(mu phi, (1 - mu) phi)`` around the
    regression mean and its ``m`` annotators are coin flips with that probability: binomial
    sampling plus annotator disagreement, so the posterior needs no calibration (and takes
    group-level terms). ``phi`` is the precision of the items' probabilities, a constant or
    with its own formula (``phi_formula``, log link); ``phi -> infinity`` is the binomial.
    The log-likelihood includes :math:`\log\binom{m}{k}` (ELPD group ``"counts"``, shared
    with ``binomial``). Predictions (``mu``) and draws are on the proportion scale ``k / m``.

    No fused kernel: the cost of a gradient is the log-gamma terms, elementwise in the rows
    like the rest of the graph, and the fused kernels of :mod:`softbayes.ops` gain from
    fusing ``X @ theta`` with cheap link terms (Bernoulli, Continuous Bernoulli), which
    would save little next to six log-gammas and their digammas per row.
    """

    name = "beta_binomial"
    parameters = ("eta", "phi")
    takes_trials = True
    log_likelihood_kind = "probability"
    elpd_group = COUNTS_GROUP
    elpd_group_description = COUNTS_GROUP_DESCRIPTION

    def transforms_labels(self) -> bool:
        return True  # the likelihood sees counts k, the labels as given are k / m

    def prepare_labels(self, labels, *, name="labels", index=None, n_ref=None, trials=None):
        return count_labels(self, labels, trials, name=name, index=index)

    def logp(self, labels, *, weights=None, trials=None, eta, phi):
        return beta_binomial_logp(labels, need_trials(self, trials, "log-likelihoods"), eta,
                                  phi)

    def mean(self, *, eta, phi=None, trials=None):
        return ops(eta).sigmoid(eta)

    def draws(self, rng, *, eta, phi, trials=None):
        m = need_trials(self, trials, "draws")
        eta, phi, m = np.broadcast_arrays(eta, phi, m)
        return rng.binomial(m.astype(np.int64), _success_probabilities(rng, eta, phi)) / m

    def add_likelihood(self, name, labels, *, weights=None, dims=None, trials=None, eta, phi):
        family = self

        def logp(value, eta, phi, trials):
            return family.logp(value, trials=trials, eta=eta, phi=phi)

        def random(eta, phi, trials, rng=None, size=None):
            p = _success_probabilities(rng, eta, phi, size)
            return rng.binomial(np.asarray(trials, np.int64), p)

        return pm.CustomDist(
            name, pt.as_tensor_variable(eta), pt.as_tensor_variable(phi),
            pt.as_tensor_variable(trials), logp=logp, random=random, observed=labels,
            dims=dims, signature="(),(),()->()",
        )
