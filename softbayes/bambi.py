"""Bambi families for softbayes' likelihoods: the Continuous Bernoulli and the soft-label Bernoulli.

For users of `Bambi <https://bambinos.github.io/bambi>`_ (an optional dependency:
``pip install softbayes[bambi]``; ``import softbayes`` never needs it)::

    import bambi as bmb
    import softbayes.bambi

    model = bmb.Model("share ~ x + (1|g)", data, family=softbayes.bambi.continuous_bernoulli())
    idata = model.fit()
    model.predict(idata)  # E[share | x, g] in idata.posterior["mu"]

Both families put the *mean* of the label in Bambi's parent parameter, so that
``model.predict(kind="response_params")``, ``bmb.interpret.predictions`` / ``plot_predictions``
(target ``"mean"``) and ``r2_score`` show :math:`E[y \\mid x]`:

* :func:`continuous_bernoulli`: the linear predictor is the Continuous Bernoulli's natural
  parameter :math:`\\eta = \\operatorname{logit}\\lambda`; the parent ``mu`` is the CB mean
  :math:`1/(1 - e^{-\\eta}) - 1/\\eta` (:func:`softbayes.math.continuous_bernoulli.cb_mean`),
  not :math:`\\lambda`. The likelihood itself is evaluated in :math:`\\eta`, never through the
  mean.
* :func:`soft_bernoulli`: the soft-label cross-entropy (:class:`softbayes.SoftBernoulli`,
  the Bernoulli log-likelihood of each row duplicated into a 1 with weight :math:`l` and a 0
  with weight :math:`1 - l`); the parent ``p`` = :math:`\\sigma(\\eta)` is the predicted mean
  soft label. Its pointwise values are cross-entropies, comparable only with models of the
  same kind on the same labels, and its posterior predictive draws are hard 0/1 labels.
"""

from __future__ import annotations

import bambi as bmb

from softbayes.distributions.continuous_bernoulli import ContinuousBernoulli
from softbayes.distributions.soft import SoftBernoulli
from softbayes.math.continuous_bernoulli import cb_mean, cb_mean_inverse

__all__ = [
    "ContinuousBernoulliFamily",
    "SoftBernoulliFamily",
    "continuous_bernoulli",
    "soft_bernoulli",
]

def _cb_link() -> bmb.Link:
    """The link of :func:`continuous_bernoulli`: mean <-> natural parameter."""
    return bmb.Link("continuous_bernoulli_mean", link=cb_mean_inverse, linkinv=cb_mean,
                    linkinv_backend=cb_mean)


class ContinuousBernoulliFamily(bmb.Family):
    """Bambi family of :class:`softbayes.ContinuousBernoulli` with the mean as its parent ``mu``.

    The linear predictor is :math:`\\eta`; the PyMC model passes it to the likelihood as
    ``logit_p`` and keeps ``mu`` = CB mean(:math:`\\eta`) as Bambi's response parameter.
    Posterior draws of ``mu`` (predictions, log-likelihood of new data, posterior predictive
    draws) are mapped back with :func:`cb_mean_inverse`.
    """

    KIND = "Univariate"

    @staticmethod
    def transform_backend_eta(eta, kwargs):
        kwargs["logit_p"] = eta
        return eta

    @staticmethod
    def transform_backend_kwargs(kwargs):
        kwargs.pop("mu")
        return kwargs

    @staticmethod
    def transform_kwargs(kwargs):
        kwargs["logit_p"] = cb_mean_inverse(kwargs.pop("mu"))
        return kwargs


class SoftBernoulliFamily(bmb.Family):
    """Bambi family of :class:`softbayes.SoftBernoulli` (soft-label cross-entropy), parent ``p``.

    With the logit link ``p`` = :math:`\\sigma(\\eta)` is the predicted mean soft label; the
    PyMC model evaluates the cross-entropy in ``logit_p`` = :math:`\\eta` (exact for any
    finite logit), other links through ``p``.
    """

    KIND = "Univariate"

    def transform_backend_eta(self, eta, kwargs):
        if self.link["p"].name == "logit":
            kwargs["logit_p"] = eta
        return eta

    @staticmethod
    def transform_backend_kwargs(kwargs):
        if "logit_p" in kwargs:
            kwargs.pop("p")
        return kwargs


def continuous_bernoulli() -> ContinuousBernoulliFamily:
    """The Continuous Bernoulli as a Bambi family (labels in [0, 1], mean-scale predictions).

    Returns
    -------
    ContinuousBernoulliFamily
        For ``bmb.Model(formula, data, family=...)``. The linear predictor is the natural
        parameter :math:`\\eta = \\operatorname{logit}\\lambda`; Bambi's response parameter
        ``mu`` is the CB mean :math:`E[y \\mid x]`, so predictions and
        ``bmb.interpret`` plots are on the scale of the labels.
    """
    likelihood = bmb.Likelihood("ContinuousBernoulli", params=["mu"], parent="mu",
                                dist=ContinuousBernoulli)
    return ContinuousBernoulliFamily("continuous_bernoulli", likelihood, _cb_link())


def soft_bernoulli(link: str = "logit") -> SoftBernoulliFamily:
    """The soft-label Bernoulli (weighted Bernoulli cross-entropy) as a Bambi family.

    Parameters
    ----------
    link : {"logit", "probit", "cloglog"}, default "logit"
        Link of the probability ``p``.

    Returns
    -------
    SoftBernoulliFamily
        For ``bmb.Model(formula, data, family=...)`` with soft labels in [0, 1] (hard 0/1
        labels included). Bambi's response parameter ``p`` is the predicted mean soft label.
        The log-likelihood is a cross-entropy, not a density of the labels: compare it only
        with models of the same kind on the same labels.
    """
    if link not in ("logit", "probit", "cloglog"):
        raise ValueError(f"soft_bernoulli: link must be 'logit', 'probit' or 'cloglog', "
                         f"got {link!r}.")
    likelihood = bmb.Likelihood("SoftBernoulli", params=["p"], parent="p", dist=SoftBernoulli)
    return SoftBernoulliFamily("soft_bernoulli", likelihood, link)
