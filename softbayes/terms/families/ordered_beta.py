r"""The ordered beta family: a Beta density inside (0, 1) and point masses at 0 and 1.

Ordered beta regression (Kubinec 2022, *Political Analysis* 31(4); R's ``ordbetareg``)
models a label in [0, 1] whose exact 0s and 1s (unanimous annotators) are data, not
errors. With the linear predictor ``eta`` (logit scale), two ordered cut-points
``k1 < k2`` and ``mu = sigmoid(eta)``:

.. math::

    P(y = 0) = 1 - \sigma(\eta - k_1), \qquad P(y = 1) = \sigma(\eta - k_2),

    p(y) = [\sigma(\eta - k_1) - \sigma(\eta - k_2)]\,
           \mathrm{Beta}(y \mid \mu\phi, (1 - \mu)\phi), \quad 0 < y < 1.

The cut-points are parameterised as ``ordbetareg`` does, unconstrained: ``cutzero = k1``
and ``cutone = log(k2 - k1)``, so that ``k2 - k1 = exp(cutone)`` is exact and the middle
probability is computed without cancellation,

.. math::

    \log[\sigma(a) - \sigma(b)] = \log\sigma(a) + \log\sigma(-b) + \log(1 - e^{-(a - b)}),
    \quad a = \eta - k_1 > b = \eta - k_2.

ELPD group: the log-likelihood is a density with respect to Lebesgue measure on (0, 1) plus
counting measure at {0, 1}. A pure density on [0, 1] (``beta``, ``continuous_bernoulli``)
gives a density value at 0 or 1 where this family gives a log probability, so the two are
different kinds of numbers whenever a label is exactly 0 or 1; ordered beta fits form their
own group (``"mixed_density"``), comparable with each other only, and meet the other
families on the common-scale scores.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from softbayes.math.xp import ops
from softbayes.terms.families.base import Family, row_summary
from softbayes.terms.families.beta import BetaFamily
from softbayes.terms.priors import Prior

__all__ = [
    "CUTONE_PRIOR",
    "CUTZERO_PRIOR",
    "OrderedBetaFamily",
    "ordered_beta_category_logp",
]

#: Default prior of the lower cut-point ``k1`` (logit scale): with ``eta`` near 0 it puts
#: the share of exact 0s between about 0.1 % and 99 % (95 % prior range).
CUTZERO_PRIOR = Prior("Normal", {"mu": -2.0, "sigma": 2.5}, "default: Normal(-2, 2.5)")
#: Default prior of ``log(k2 - k1)``: median gap e^1.5 = 4.5 logits, 95 % between 0.2 and
#: 85, so both a narrow interior and nearly no 0s and 1s stay possible.
CUTONE_PRIOR = Prior("Normal", {"mu": 1.5, "sigma": 1.5}, "default: Normal(1.5, 1.5)")

_BETA = BetaFamily()


def ordered_beta_category_logp(eta, cutzero, cutone):
    """``(log P(y = 0), log P(0 < y < 1), log P(y = 1))`` for NumPy or PyTensor inputs.

    Each term is computed without cancellation: ``log(1 - sigmoid(a)) = -softplus(a)``,
    ``log sigmoid(b) = -softplus(-b)`` and the middle term as in the module docstring.
    """
    xp = ops(eta, cutzero, cutone)
    a = eta - cutzero
    gap = xp.exp(cutone)
    b = a - gap
    log0 = -xp.softplus(a)
    log1 = -xp.softplus(-b)
    log_mid = -xp.softplus(-a) - xp.softplus(b) + xp.log1mexp(-gap)
    return log0, log_mid, log1


def _draws(rng, eta, phi, cutzero, cutone, size=None):
    """Labels drawn from the ordered beta distribution (NumPy)."""
    shape = np.broadcast_shapes(*(np.shape(v) for v in (eta, phi, cutzero, cutone)))
    if size is not None:
        shape = np.broadcast_shapes(shape, tuple(np.atleast_1d(size)))
    eta, phi, cutzero, cutone = (np.broadcast_to(v, shape) for v in (eta, phi, cutzero, cutone))
    log0, _, log1 = ordered_beta_category_logp(eta, cutzero, cutone)
    u = rng.random(shape)
    y = _BETA.draws(rng, eta=eta, phi=phi)
    y = np.where(u < np.exp(log0), 0.0, y)
    return np.where(u > -np.expm1(log1), 1.0, y)


class OrderedBetaFamily(Family):
    r"""Ordered beta regression: point masses at 0 and 1 around a Beta density.

    ``mu = sigmoid(eta)`` is the mean of the Beta part, ``phi`` its precision (a constant
    with prior ``LogNormal(3, 1.5)`` or ``phi_formula``); the cut-points are the model
    parameters ``cutzero`` (``k1``) and ``cutone`` (``log(k2 - k1)``) with the priors
    :data:`CUTZERO_PRIOR` and :data:`CUTONE_PRIOR` (prior keys ``"cutzero"``,
    ``"cutone"``). ``E[y | x] = P(y = 1) + P(0 < y < 1) mu``. See the module docstring for
    the density and the ELPD group.
    """

    name = "ordered_beta"
    parameters = ("eta", "phi", "cutzero", "cutone")
    elpd_group = "mixed_density"
    elpd_group_description = (
        "densities of the label w.r.t. Lebesgue measure on (0, 1) plus point masses at 0 "
        "and 1 (ordered beta)"
    )
    comparison_note = (
        "Ordered beta coefficients are on the logit of the mean of its Beta part, which "
        "also moves the shares of exact 0s and 1s through the cut-points; compare families "
        "through the marginal effects, which are on the scale of E[y | x]."
    )

    def scalar_parameters(self) -> tuple:
        return (("cutzero", CUTZERO_PRIOR, "cut-point k1"),
                ("cutone", CUTONE_PRIOR, "log(k2 - k1) of the cut-points"))

    def prepare_labels(self, labels, *, name="labels", index=None, n_ref=None):
        lab, info = super().prepare_labels(labels, name=name, index=index)
        missing = [what for what, v in (("0", 0.0), ("1", 1.0)) if not (lab == v).any()]
        if missing:
            inside = (lab > 0.0) & (lab < 1.0)
            count, _ = row_summary(inside, index)
            info["warning"] = (
                f"{name}: no label is exactly {' or '.join(missing)} ({count} of "
                f"{lab.shape[0]} lie strictly inside (0, 1)); the ordered beta cut-point(s) "
                "at that end are identified by their priors only."
            )
        return lab, info

    def logp(self, labels, *, weights=None, eta, phi, cutzero, cutone):
        xp = ops(labels, eta, phi, cutzero, cutone)
        log0, log_mid, log1 = ordered_beta_category_logp(eta, cutzero, cutone)
        inside = (labels > 0.0) & (labels < 1.0)
        # the Beta density is evaluated at 1/2 on the boundary rows: log(0) there would put
        # 0 * inf = nan into the gradient of the branch that where() discards
        y_safe = xp.where(inside, labels, 0.5)
        interior = log_mid + _BETA.logp(y_safe, eta=eta, phi=phi)
        return xp.where(inside, interior, xp.where(labels <= 0.0, log0, log1))

    def mean(self, *, eta, phi=None, cutzero, cutone):
        xp = ops(eta, cutzero, cutone)
        _, log_mid, log1 = ordered_beta_category_logp(eta, cutzero, cutone)
        return xp.exp(log1) + xp.exp(log_mid) * xp.sigmoid(eta)

    def draws(self, rng, *, eta, phi, cutzero, cutone):
        return _draws(rng, eta, phi, cutzero, cutone)

    def add_likelihood(self, name, labels, *, weights=None, dims=None, eta, phi, cutzero,
                       cutone):
        family = self

        def logp(value, eta, phi, cutzero, cutone):
            return family.logp(value, eta=eta, phi=phi, cutzero=cutzero, cutone=cutone)

        def random(eta, phi, cutzero, cutone, rng=None, size=None):
            return _draws(rng, eta, phi, cutzero, cutone, size=size)

        args = [pt.as_tensor_variable(v) for v in (eta, phi, cutzero, cutone)]
        return pm.CustomDist(
            name, *args, logp=logp, random=random, observed=labels, dims=dims,
            signature="(),(),(),()->()",
        )
