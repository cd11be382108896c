"""The binomial family: counts k of m trials with a logit mean (the beta-binomial's limit)."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import special as _sp

from softbayes.math.counts import binomial_logp
from softbayes.math.xp import ops
from softbayes.terms.families.base import Family

__all__ = ["COUNTS_GROUP", "COUNTS_GROUP_DESCRIPTION", "BinomialFamily", "count_labels",
           "need_trials"]

#: The ELPD group of the count families: their pointwise log-likelihoods are log
#: probabilities of the counts k of m (with the log binomial coefficient), so they compare
#: with each other and with nothing that sees the proportions k / m.
COUNTS_GROUP = "counts"
#: What the log-likelihoods of :data:`COUNTS_GROUP` are, for reports.
COUNTS_GROUP_DESCRIPTION = ("probabilities of the counts k of m trials, p(k, m) (binomial, "
                            "beta-binomial)")


def need_trials(family, trials, what):
    """``trials`` (a float array, or the tensor of the graph), or a ValueError saying that
    ``what`` needs them."""
    if trials is None:
        raise ValueError(f"{what} of the {family.name} family need the trials m of the rows "
                         "(the response p(k, m): pass rows that hold the trials column).")
    return trials if ops(trials).symbolic else np.asarray(trials, dtype=float)


def count_labels(family, labels, trials, *, name, index):
    """The counts ``k = labels * m`` of proportions checked by the base class, and the
    (empty) info of their preparation."""
    lab, info = Family.prepare_labels(family, labels, name=name, index=index)
    m = need_trials(family, trials, f"{name}: the labels")
    if m.shape != lab.shape:
        raise ValueError(f"{name}: {m.shape[0] if m.ndim else 1} trials for {lab.shape[0]} "
                         "labels.")
    return np.rint(lab * m), info


class BinomialFamily(Family):
    r"""``k ~ Binomial(m, mu)``, ``mu = sigmoid(eta)``: the response ``p(k, m)``.

    Every trial (annotator) is an independent coin flip with the item's mean: no
    disagreement beyond that. Its log-likelihood includes :math:`\log\binom{m}{k}`, so it
    compares with the beta-binomial (the same counts, ELPD group ``"counts"``). Predictions
    and draws are on the proportion scale ``k / m``. No fused kernel: its fused form would
    be the weighted-Bernoulli kernel with weights m, whose pointwise terms lack the log
    binomial coefficient that puts it in the counts group.
    """

    name = "binomial"
    takes_trials = True
    log_likelihood_kind = "probability"
    elpd_group = COUNTS_GROUP
    elpd_group_description = COUNTS_GROUP_DESCRIPTION
    comparison_note = (
        "The binomial treats the m annotators of an item as independent coin flips with the "
        "item's mean: when annotators disagree more than that (overdispersion), its "
        "intervals are too narrow; the beta-binomial models the disagreement."
    )

    def transforms_labels(self) -> bool:
        return True  # the likelihood sees counts k, the labels as given are k / m

    def prepare_labels(self, labels, *, name="labels", index=None, n_ref=None, trials=None):
        return count_labels(self, labels, trials, name=name, index=index)

    def logp(self, labels, *, weights=None, trials=None, eta):
        return binomial_logp(labels, need_trials(self, trials, "log-likelihoods"), eta)

    def mean(self, *, eta, trials=None):
        return ops(eta).sigmoid(eta)

    def draws(self, rng, *, eta, trials=None):
        m = need_trials(self, trials, "draws")
        p, m = np.broadcast_arrays(_sp.expit(eta), m)
        return rng.binomial(m.astype(np.int64), p) / m

    def add_likelihood(self, name, labels, *, weights=None, dims=None, trials=None, eta):
        family = self

        def logp(value, eta, trials):
            return family.logp(value, trials=trials, eta=eta)

        def random(eta, trials, rng=None, size=None):
            return rng.binomial(np.asarray(trials, np.int64), _sp.expit(eta), size=size)

        return pm.CustomDist(
            name, pt.as_tensor_variable(eta), pt.as_tensor_variable(trials), logp=logp,
            random=random, observed=labels, dims=dims, signature="(),()->()",
        )
