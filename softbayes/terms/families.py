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

Parameters are passed by name: ``eta`` is the linear predictor on the link scale (for
``soft_categorical`` the ``(..., K)`` logits, the reference class's column 0), ``phi`` the
Beta precision.

=======================  =====================  ===================  ===========================
family                   likelihood             E[y | x]             draws
=======================  =====================  ===================  ===========================
``weighted_bernoulli``   soft-label cross-      sigmoid(eta)         hard 0/1 labels
                         entropy (Potential)
``continuous_bernoulli`` ContinuousBernoulli    CB mean of lambda    CB draws (inverse CDF)
                         (logit lambda = eta)   (not lambda)
``beta``                 Beta(mu phi,           mu = sigmoid(eta)    Beta draws
                         (1 - mu) phi)
``bernoulli``            Bernoulli on labels    sigmoid(eta)         hard 0/1 labels
                         thresholded at a cut
``soft_categorical``     soft-label categorical softmax(eta)         one-hot hard labels
                         cross-entropy
=======================  =====================  ===================  ===========================
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import special as _sp

from softbayes.data.validation import validate_soft_labels
from softbayes.math.continuous_bernoulli import cb_icdf, cb_logp, cb_mean
from softbayes.math.soft_labels import soft_bernoulli_logp, soft_categorical_logp
from softbayes.math.xp import ops

__all__ = [
    "FAMILIES",
    "BernoulliFamily",
    "BetaFamily",
    "ContinuousBernoulliFamily",
    "Family",
    "SoftCategoricalFamily",
    "WeightedBernoulliFamily",
    "family_class",
    "family_names",
    "get_family",
]


def _gammaln(x):
    return pt.gammaln(x) if ops(x).symbolic else _sp.gammaln(x)


def _rows(mask, index=None, k=5):
    idx = np.flatnonzero(mask)
    labels = idx if index is None else np.asarray(index)[idx]
    shown = ", ".join(str(v) for v in labels[:k])
    return int(idx.size), shown + (", ..." if idx.size > k else "")


class Family:
    """Base class: one likelihood family, declared once.

    Class attributes
    ----------------
    name : str
        The name used in ``Model(likelihood=...)``.
    link : str
        Link of the mean parameter (``"logit"``, ``"softmax"``).
    parameters : tuple of str
        Names of the distribution parameters the linear predictors feed (``"eta"``, ...).
    multiclass : bool
        Labels are ``(n, K)`` probability vectors.
    supports_weights : bool
        Row weights are part of the likelihood.
    glm_kernel : str or None
        Name of the fused kernel (:mod:`softbayes.ops.glm`) for a linear predictor
        ``eta = X @ theta``; :meth:`add_likelihood` then accepts ``glm=(X, theta)``.
    log_likelihood_kind : str
        ``"density"`` (a normalized density of the label), ``"probability"`` (a pmf of a hard
        label) or ``"cross_entropy"`` (the soft-label cross-entropy, not a density): pointwise
        log-likelihoods (and LOO) compare only between fits of the same kind on the same
        labels.
    option_names : tuple of str
        Keyword options of the family itself (``threshold``, ``squeeze``): what
        :meth:`options` returns and :func:`get_family` accepts.
    elpd_group : str
        The ELPD group: fits in one group have observation models whose pointwise
        log-likelihoods are the same kind of number for the same labels, so their ELPDs
        compare (:meth:`comparison_group` may refine it per instance).
    elpd_group_description : str
        One line saying what the group's log-likelihoods are, for reports.
    comparison_note : str or None
        A caveat a comparison report states whenever a fit of this family takes part.
    calibratable : bool
        Whether the dispersion / sandwich calibration of :mod:`softbayes.backend.calibration`
        applies (a GLM whose spread comes from an assumed variance function).
    """

    name: ClassVar[str] = ""
    link: ClassVar[str] = "logit"
    parameters: ClassVar[tuple[str, ...]] = ("eta",)
    multiclass: ClassVar[bool] = False
    supports_weights: ClassVar[bool] = False
    glm_kernel: ClassVar[str | None] = None
    log_likelihood_kind: ClassVar[str] = "density"
    option_names: ClassVar[tuple[str, ...]] = ()
    elpd_group: ClassVar[str] = ""
    elpd_group_description: ClassVar[str] = ""
    comparison_note: ClassVar[str | None] = None
    calibratable: ClassVar[bool] = False

    def options(self) -> dict:
        """Family options (JSON-serializable) needed to rebuild it."""
        return {k: getattr(self, k) for k in self.option_names}

    @classmethod
    def model_options(cls) -> tuple[str, ...]:
        """Options a model of this family takes besides the formula: the family's own
        :attr:`option_names`, and ``phi_formula`` when the family has a precision ``phi``."""
        return cls.option_names + (("phi_formula",) if "phi" in cls.parameters else ())

    def comparison_group(self) -> str:
        """The ELPD group of a fit of this family with these options."""
        return self.elpd_group

    def transforms_labels(self) -> bool:
        """Whether the likelihood sees labels other than those given (thresholded,
        squeezed): comparisons then need the original labels from the training data."""
        return False

    def label_log_jacobian(self, n_train: int) -> float:
        """Per-observation log-Jacobian that puts this family's log density of the labels
        it sees on the scale of the labels as given (0 unless the labels are transformed)."""
        return 0.0

    # -- labels -----------------------------------------------------------------------------
    def prepare_labels(self, labels, *, name="labels", index=None, n_ref=None):
        """Validate the labels and return ``(labels the likelihood sees, info)``.

        ``info`` is a dict of JSON-serializable facts recorded in the fit's attrs (keys
        without the ``softbayes_`` prefix) and may hold a ``"warning"`` message. ``n_ref``
        is the sample size of transformations that use one (the Beta squeeze of held-out
        labels uses the training size).
        """
        n_classes = None if not self.multiclass else np.shape(labels)[1]
        lab = validate_soft_labels(labels, name=name, n_classes=n_classes)
        if not self.multiclass and lab.ndim != 1:
            raise ValueError(f"{name}: the {self.name} family takes one label column.")
        return lab, {}

    # -- math (NumPy or PyTensor) -----------------------------------------------------------
    def logp(self, labels, *, weights=None, **params):
        """Pointwise log-likelihood, one value per observation."""
        raise NotImplementedError

    def mean(self, **params):
        """:math:`E[y \\mid x]` (a probability vector for multiclass families)."""
        raise NotImplementedError

    def draws(self, rng, **params):
        """Posterior-predictive draws of the labels (NumPy)."""
        raise NotImplementedError

    # -- model graph ------------------------------------------------------------------------
    def add_likelihood(self, name, labels, *, weights=None, dims=None, **params):
        """Add the likelihood term ``name`` to the model on the context stack.

        Families with a :attr:`glm_kernel` also take ``glm=(X, theta)``, the linear
        predictor ``eta = X @ theta`` in factored form, and then build the fused term.
        """
        raise NotImplementedError


class WeightedBernoulliFamily(Family):
    """Soft-label cross-entropy ``w [l eta - softplus(eta)]`` as a registered Potential.

    The seed's likelihood: each soft label ``l`` counts as ``l`` of a success and ``1 - l``
    of a failure (equivalently, the weighted Bernoulli likelihood of the duplicated data
    set). Built on :func:`softbayes.WeightedBernoulli`; draws are hard 0/1 labels.
    """

    name = "weighted_bernoulli"
    supports_weights = True
    glm_kernel = "weighted_bernoulli"
    log_likelihood_kind = "cross_entropy"
    elpd_group = "weighted_bernoulli"
    elpd_group_description = "weighted-Bernoulli cross-entropy (not a density of the label)"
    comparison_note = (
        "The weighted-Bernoulli (cross-entropy) posterior spread comes from Bernoulli "
        "information, as if each label were one coin flip: it ignores how precise the soft "
        "labels are and may be too wide (or, with large count weights, too narrow). Its "
        "point predictions are the soft-label maximum-likelihood fit."
    )
    calibratable = True

    def logp(self, labels, *, weights=None, eta):
        out = soft_bernoulli_logp(labels, eta)
        return out if weights is None else weights * out

    def mean(self, *, eta):
        return ops(eta).sigmoid(eta)

    def draws(self, rng, *, eta):
        p = _sp.expit(eta)
        return (rng.random(np.shape(p)) < p).astype(float)

    def add_likelihood(self, name, labels, *, weights=None, dims=None, eta, glm=None):
        if glm is not None:
            from softbayes.ops.glm import WeightedBernoulliGLM

            X, theta = glm
            return WeightedBernoulliGLM(name, X=X, labels=labels, beta=theta,
                                        weights=weights, dims=dims)
        from softbayes.distributions.potentials import WeightedBernoulli

        return WeightedBernoulli(name, labels=labels, logit_p=eta, weights=weights, dims=dims)


class ContinuousBernoulliFamily(Family):
    """Continuous Bernoulli on ``logit lambda = eta``; ``E[y] = `` CB mean of lambda."""

    name = "continuous_bernoulli"
    glm_kernel = "continuous_bernoulli"
    elpd_group = "density"
    elpd_group_description = "densities of the soft label on [0, 1] (Continuous Bernoulli, Beta)"
    comparison_note = (
        "Continuous Bernoulli coefficients are on the logit of lambda, not of the mean "
        "E[y | x]; compare families through the marginal effects, which are on the mean "
        "scale."
    )
    calibratable = True

    def logp(self, labels, *, weights=None, eta):
        return cb_logp(labels, eta)

    def mean(self, *, eta):
        return cb_mean(eta)

    def draws(self, rng, *, eta):
        return cb_icdf(rng.random(np.shape(eta)), eta)

    def add_likelihood(self, name, labels, *, weights=None, dims=None, eta, glm=None):
        if glm is not None:
            from softbayes.ops.glm import ContinuousBernoulliGLM

            X, theta = glm
            return ContinuousBernoulliGLM(name, X=X, beta=theta, observed=labels, dims=dims)
        from softbayes.distributions.continuous_bernoulli import ContinuousBernoulli

        return ContinuousBernoulli(name, logit_p=eta, observed=labels, dims=dims)


def _beta_shapes(eta, phi):
    """``(mu phi, (1 - mu) phi)`` for NumPy's beta sampler, never exactly 0.

    ``1 - mu`` is ``sigmoid(-eta)`` (``1 - sigmoid(eta)`` is 0 for eta > 37, and NumPy's
    sampler refuses a shape of 0); a shape that underflows is raised to the smallest normal
    double, whose draws are the limit (0 or 1).
    """
    tiny = np.finfo(np.float64).tiny
    return (np.maximum(_sp.expit(eta) * phi, tiny), np.maximum(_sp.expit(-eta) * phi, tiny))


class BetaFamily(Family):
    r"""Mean-precision Beta regression: ``y ~ Beta(mu phi, (1 - mu) phi)``, ``mu = sigmoid(eta)``.

    The precision ``phi`` is a constant or has its own formula (log link). Labels must lie
    strictly inside (0, 1): exact 0s and 1s are an error unless ``squeeze=True``, which
    applies the Smithson--Verkuilen (2006) transformation ``(y (n - 1) + 1/2) / n``.
    """

    name = "beta"
    parameters = ("eta", "phi")
    option_names = ("squeeze",)
    elpd_group = "density"
    elpd_group_description = ContinuousBernoulliFamily.elpd_group_description

    def __init__(self, squeeze=False):
        self.squeeze = bool(squeeze)

    def transforms_labels(self) -> bool:
        return self.squeeze

    def label_log_jacobian(self, n_train: int) -> float:
        # z = (y (n - 1) + 1/2) / n: the density of y is p_z(z) |dz/dy|, dz/dy = (n - 1) / n
        return float(np.log((n_train - 1) / n_train)) if self.squeeze else 0.0

    def prepare_labels(self, labels, *, name="labels", index=None, n_ref=None):
        lab, info = super().prepare_labels(labels, name=name, index=index)
        n = lab.shape[0] if n_ref is None else int(n_ref)
        edge = (lab == 0.0) | (lab == 1.0)
        if edge.any() and not self.squeeze:
            count, shown = _rows(edge, index)
            n0, n1 = int((lab == 0.0).sum()), int((lab == 1.0).sum())
            raise ValueError(
                f"{name}: {count} of {lab.shape[0]} labels are exactly 0 or 1 ({n0} zeros, "
                f"{n1} ones; index {shown}), where the Beta density is 0 or infinite. Either pass "
                "squeeze=True to apply the Smithson-Verkuilen squeeze (y(n-1)+1/2)/n "
                "(recorded in the fit's attrs), or use a family that allows 0 and 1: "
                "likelihood='continuous_bernoulli' or 'weighted_bernoulli'."
            )
        info = {"squeeze": int(self.squeeze), "n_squeezed": int(edge.sum()) if self.squeeze else 0}
        if self.squeeze:
            lab = (lab * (n - 1) + 0.5) / n
        return lab, info

    def logp(self, labels, *, weights=None, eta, phi):
        xp = ops(labels, eta, phi)
        a = xp.sigmoid(eta) * phi
        b = xp.sigmoid(-eta) * phi  # not (1 - mu) phi: that cancels to 0 for eta > 37
        return (
            _gammaln(phi) - _gammaln(a) - _gammaln(b)
            + (a - 1.0) * xp.log(labels) + (b - 1.0) * xp.log1p(-labels)
        )

    def mean(self, *, eta, phi=None):
        return ops(eta).sigmoid(eta)

    def draws(self, rng, *, eta, phi):
        eta, phi = np.broadcast_arrays(eta, phi)
        return rng.beta(*_beta_shapes(eta, phi))

    def add_likelihood(self, name, labels, *, weights=None, dims=None, eta, phi):
        family = self

        def logp(value, eta, phi):
            return family.logp(value, eta=eta, phi=phi)

        def random(eta, phi, rng=None, size=None):
            return rng.beta(*_beta_shapes(eta, phi), size=size)

        eta = pt.as_tensor_variable(eta)
        phi = pt.as_tensor_variable(phi)
        return pm.CustomDist(
            name, eta, phi, logp=logp, random=random, observed=labels, dims=dims,
            signature="(),()->()",
        )


class BernoulliFamily(Family):
    """Hard-label baseline: labels thresholded at ``threshold`` (``l >= threshold`` -> 1).

    The number of labels the cut changes (those not already 0 or 1) is reported in a
    warning and recorded in the fit's attrs.
    """

    name = "bernoulli"
    log_likelihood_kind = "probability"
    option_names = ("threshold",)
    elpd_group = "bernoulli"
    elpd_group_description = "Bernoulli probabilities of the labels thresholded to 0/1"
    comparison_note = (
        "The hard-label Bernoulli baseline sees thresholded labels: the information in the "
        "soft labels is discarded, so its ELPD (a probability of 0/1 labels) compares with "
        "nothing else here."
    )

    def __init__(self, threshold=0.5):
        threshold = float(threshold)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}.")
        self.threshold = threshold

    def comparison_group(self) -> str:
        # different thresholds make different hard labels
        if self.threshold != 0.5:
            return f"bernoulli (threshold {self.threshold:g})"
        return self.elpd_group

    def transforms_labels(self) -> bool:
        return True

    def prepare_labels(self, labels, *, name="labels", index=None, n_ref=None):
        lab, _ = super().prepare_labels(labels, name=name, index=index)
        soft = (lab != 0.0) & (lab != 1.0)
        hard = (lab >= self.threshold).astype(float)
        n_changed = int(soft.sum())
        info = {"threshold": self.threshold, "n_thresholded": n_changed}
        if n_changed:
            info["warning"] = (
                f"bernoulli family: {n_changed} of {lab.shape[0]} labels in {name} are soft "
                f"(not 0 or 1) and were thresholded at {self.threshold:g} "
                f"(label >= {self.threshold:g} -> 1); {int(hard[soft].sum())} became 1 and "
                f"{int(n_changed - hard[soft].sum())} became 0. The information in the soft "
                "labels is discarded; recorded in the fit's attrs as softbayes_n_thresholded."
            )
        return hard, info

    def logp(self, labels, *, weights=None, eta):
        return soft_bernoulli_logp(labels, eta)

    def mean(self, *, eta):
        return ops(eta).sigmoid(eta)

    def draws(self, rng, *, eta):
        p = _sp.expit(eta)
        return (rng.random(np.shape(p)) < p).astype(float)

    def add_likelihood(self, name, labels, *, weights=None, dims=None, eta):
        return pm.Bernoulli(name, logit_p=eta, observed=labels, dims=dims)


class SoftCategoricalFamily(Family):
    """K classes: softmax of ``(0, eta_2, ..., eta_K)`` (first class is the reference),
    probability-vector labels, soft-label cross-entropy ``sum_k l_k log softmax(eta)_k``
    via :func:`softbayes.WeightedCategorical`. Draws are one-hot hard labels."""

    name = "soft_categorical"
    link = "softmax"
    multiclass = True
    supports_weights = True
    log_likelihood_kind = "cross_entropy"
    elpd_group = "soft_categorical"
    elpd_group_description = (
        "soft-label categorical cross-entropy (not a density of the label)"
    )
    comparison_note = (
        "The soft-categorical cross-entropy is not a density of the label vector; its "
        "ELPD compares only soft-categorical fits of the same labels and weights."
    )
    calibratable = True

    def logp(self, labels, *, weights=None, eta):
        out = soft_categorical_logp(labels, eta)
        return out if weights is None else weights * out

    def mean(self, *, eta):
        # softmax itself (exp(eta - max) / sum): exp(log_softmax) carries the rounding of the
        # log-sum-exp, an ulp of the largest logit, into every probability
        if ops(eta).symbolic:
            return pt.special.softmax(eta, axis=-1)
        return _sp.softmax(eta, axis=-1)

    def draws(self, rng, *, eta):
        p = _sp.softmax(eta, axis=-1)
        k = p.shape[-1]
        u = rng.random((*p.shape[:-1], 1))
        idx = np.minimum((u >= np.cumsum(p, axis=-1)).sum(axis=-1), k - 1)
        return np.eye(k)[idx]

    def add_likelihood(self, name, labels, *, weights=None, dims=None, eta):
        from softbayes.distributions.potentials import WeightedCategorical

        obs_dim = dims[0] if isinstance(dims, tuple | list) else dims
        return WeightedCategorical(name, labels=labels, logits=eta, weights=weights, dims=obs_dim)


FAMILIES: dict[str, type[Family]] = {
    cls.name: cls
    for cls in (
        WeightedBernoulliFamily,
        ContinuousBernoulliFamily,
        BetaFamily,
        BernoulliFamily,
        SoftCategoricalFamily,
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
