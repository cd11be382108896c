r"""Likelihood families of :class:`softbayes.Model`, each declared once.

A family is a small declarative class (in the manner of Bambi's families): its name, link,
parameters, how its labels are checked and prepared, and four pieces of math, each written
once through :func:`softbayes.math.xp.ops` so that the same code builds the PyMC graph and runs on
NumPy posterior draws:

* :meth:`Family.add_likelihood` -- the likelihood term in the model graph (used to fit and,
  through :func:`softbayes.compute_log_likelihood`, for the pointwise log-likelihood);
* :meth:`Family.logp` -- the pointwise log-likelihood on NumPy draws (out-of-sample
  log predictive densities, checks), the same math as the graph term;
* :meth:`Family.mean` -- :math:`E[y \mid x]`, what :func:`softbayes.analysis.predict` returns;
* :meth:`Family.draws` -- posterior-predictive draws of the labels.

Each family is one class in its own module of this package, on the :class:`Family` base
class of :mod:`softbayes.terms.families.base`; :data:`FAMILIES` registers them in a fixed
order. Everything else (spec options, ELPD groups, calibration, report caveats, CLI help) is
read from the registered classes, so a new family is one module and one line in
:data:`FAMILIES`.

Parameters are passed by name: ``eta`` is the linear predictor on the link scale (for
``soft_categorical``, ``continuous_categorical`` and ``dirichlet`` the ``(..., K)`` logits,
the reference class's column 0), ``phi`` the Beta or Dirichlet precision.

==========================  ======================  ====================  =======================
family                      likelihood              E[y | x]              draws
==========================  ======================  ====================  =======================
``weighted_bernoulli``      soft-label cross-       sigmoid(eta)          hard 0/1 labels
                            entropy (Potential)
``continuous_bernoulli``    ContinuousBernoulli     CB mean of lambda     CB draws (inverse CDF)
                            (logit lambda = eta)    (not lambda)
``beta``                    Beta(mu phi,            mu = sigmoid(eta)     Beta draws
                            (1 - mu) phi)
``bernoulli``               Bernoulli on labels     sigmoid(eta)          hard 0/1 labels
                            thresholded at a cut
``soft_categorical``        soft-label categorical  softmax(eta)          one-hot hard labels
                            cross-entropy
``ordered_beta``            P(0), P(1) by cut-      P(1) + P(0<y<1) mu    0, 1 or Beta draws
                            points, Beta inside
``continuous_categorical``  ContinuousCategorical   CC mean of the        CC draws (exact)
                            (logits eta)            logits (not softmax)
``dirichlet``               Dirichlet(mu phi)       mu = softmax(eta)     Dirichlet draws
``beta_binomial``           BetaBinomial(k | m,     mu = sigmoid(eta)     k / m, beta-binomial k
                            mu phi, (1 - mu) phi)   (of k / m)
``binomial``                Binomial(k | m, mu)     mu = sigmoid(eta)     k / m, binomial k
==========================  ======================  ====================  =======================

The count families (``beta_binomial``, ``binomial``) take the response ``p(k, m)``, k
successes of m trials (:mod:`softbayes.terms.response`), and get the trials as ``trials=``
(:attr:`Family.takes_trials`).
"""

from __future__ import annotations

from softbayes.terms.families.base import Family
from softbayes.terms.families.bernoulli import BernoulliFamily
from softbayes.terms.families.beta import BetaFamily
from softbayes.terms.families.beta_binomial import BetaBinomialFamily
from softbayes.terms.families.binomial import BinomialFamily
from softbayes.terms.families.continuous_bernoulli import ContinuousBernoulliFamily
from softbayes.terms.families.continuous_categorical import ContinuousCategoricalFamily
from softbayes.terms.families.dirichlet import DirichletFamily
from softbayes.terms.families.ordered_beta import OrderedBetaFamily
from softbayes.terms.families.soft_categorical import SoftCategoricalFamily
from softbayes.terms.families.weighted_bernoulli import WeightedBernoulliFamily

__all__ = [
    "FAMILIES",
    "BernoulliFamily",
    "BetaBinomialFamily",
    "BetaFamily",
    "BinomialFamily",
    "ContinuousBernoulliFamily",
    "ContinuousCategoricalFamily",
    "DirichletFamily",
    "Family",
    "OrderedBetaFamily",
    "SoftCategoricalFamily",
    "WeightedBernoulliFamily",
    "family_class",
    "family_names",
    "get_family",
]

FAMILIES: dict[str, type[Family]] = {
    cls.name: cls
    for cls in (
        WeightedBernoulliFamily,
        ContinuousBernoulliFamily,
        BetaFamily,
        BernoulliFamily,
        SoftCategoricalFamily,
        OrderedBetaFamily,
        ContinuousCategoricalFamily,
        DirichletFamily,
        BetaBinomialFamily,
        BinomialFamily,
    )
}


def family_names() -> tuple[str, ...]:
    """The names of all families, in registry order."""
    return tuple(FAMILIES)


def family_class(name) -> type[Family]:
    """The family class called ``name`` (a ``ValueError`` naming the choices otherwise)."""
    cls = FAMILIES.get(name)
    if cls is None:
        raise ValueError(f"Unknown likelihood {name!r}; choose one of {sorted(FAMILIES)}.")
    return cls


def get_family(name, **options) -> Family:
    """The family called ``name`` with its options (``threshold``, ``squeeze``); options of
    other families are ignored."""
    if isinstance(name, Family):
        return name
    cls = family_class(name)
    return cls(**{k: v for k, v in options.items() if k in cls.option_names})
