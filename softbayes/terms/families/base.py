"""The :class:`Family` base class and the helpers several families share."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy import special as _sp

from softbayes.data.validation import row_summary, validate_soft_labels

__all__ = [
    "DENSITY_GROUP_DESCRIPTION",
    "SIMPLEX_DENSITY_GROUP",
    "SIMPLEX_DENSITY_GROUP_DESCRIPTION",
    "Family",
    "hard_label_draws",
    "row_summary",
]

#: What the log-likelihoods of the ``"density"`` ELPD group are (the families whose
#: likelihood is a normalized density of the soft label share it).
DENSITY_GROUP_DESCRIPTION = (
    "densities of the soft label on [0, 1] (Continuous Bernoulli, Beta)"
)

#: The ELPD group of the families whose likelihood is a normalized density of the K-class
#: label vector on the simplex (Lebesgue measure on its first K - 1 coordinates).
SIMPLEX_DENSITY_GROUP = "simplex_density"
#: What the log-likelihoods of the :data:`SIMPLEX_DENSITY_GROUP` are, for reports.
SIMPLEX_DENSITY_GROUP_DESCRIPTION = (
    "densities of the K-class soft label on the simplex (continuous categorical, Dirichlet)"
)


def hard_label_draws(rng, eta):
    """Hard 0/1 labels drawn with probability ``sigmoid(eta)`` of a 1 (NumPy)."""
    p = _sp.expit(eta)
    return (rng.random(np.shape(p)) < p).astype(float)


class Family:
    """Base class: one likelihood family, declared once.

    Attributes
    ----------
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
    takes_trials : bool
        The family models counts ``k`` of ``m`` trials (the response ``p(k, m)``, see
        :mod:`softbayes.terms.response`): :meth:`prepare_labels` gets the trials, and
        ``logp``, ``draws`` and the graph term take ``trials=`` (``m`` per row).
    glm_kernel : str or None
        Name of the fused kernel (:data:`softbayes.ops.FAMILY_CODES`) for a linear predictor
        ``eta = X @ theta``; :meth:`add_likelihood` then accepts ``glm=(X, theta)``.
    aggregates_rows : bool
        The log-likelihood is a weighted sum over rows of terms linear in the label given
        ``eta`` (``w [l eta - A(eta)]``), so rows with the same design row collapse exactly
        into one of summed weight and weighted mean label (used for sampling, with
        :attr:`glm_kernel`: :meth:`add_likelihood` with ``glm=`` then takes ``weights=``).
    log_likelihood_kind : str
        ``"density"`` (a normalized density of the label), ``"probability"`` (a pmf of a hard
        label, or of counts k of m) or ``"cross_entropy"`` (the soft-label cross-entropy,
        not a density): pointwise log-likelihoods (and LOO) compare only between fits of the
        same kind on the same labels.
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
    squeeze_note : str or None
        For families with a ``squeeze`` option: the report's sentence on the squeezed labels,
        with ``{n}`` for the number recorded in the fit (``n_squeezed``).
    calibratable : bool
        Whether the dispersion / sandwich calibration of :mod:`softbayes.backend.calibration`
        applies (a GLM whose spread comes from an assumed variance function; it implements
        :meth:`variance`). ``dispersion_unit``: what a dispersion of 1 means, for messages.
    predictive_check : str
        Which posterior predictive check applies (:mod:`softbayes.analysis.ppc`):
        ``"density"`` when :meth:`draws` are labels of the kind observed (PPCs and LOO-PIT
        on the label scale), ``"reliability"`` when they are hard outcomes (0/1 labels,
        one-hot rows) whose mean, not whose distribution, matches the soft labels
        (:math:`E[l \\mid x] = p(x)`: reliability diagrams and binned-mean checks).
    """

    name: ClassVar[str] = ""
    link: ClassVar[str] = "logit"
    parameters: ClassVar[tuple[str, ...]] = ("eta",)
    multiclass: ClassVar[bool] = False
    supports_weights: ClassVar[bool] = False
    takes_trials: ClassVar[bool] = False
    glm_kernel: ClassVar[str | None] = None
    aggregates_rows: ClassVar[bool] = False
    log_likelihood_kind: ClassVar[str] = "density"
    option_names: ClassVar[tuple[str, ...]] = ()
    elpd_group: ClassVar[str] = ""
    elpd_group_description: ClassVar[str] = ""
    comparison_note: ClassVar[str | None] = None
    squeeze_note: ClassVar[str | None] = None
    calibratable: ClassVar[bool] = False
    dispersion_unit: ClassVar[str] = "the family assumes"
    predictive_check: ClassVar[str] = "density"

    def options(self) -> dict:
        """Family options (JSON-serializable) needed to rebuild it."""
        return {k: getattr(self, k) for k in self.option_names}

    @classmethod
    def model_options(cls) -> tuple[str, ...]:
        """Options a model of this family takes besides the formula: the family's own
        :attr:`option_names`, and ``phi_formula`` when the family has a precision ``phi``."""
        return cls.option_names + (("phi_formula",) if "phi" in cls.parameters else ())

    def scalar_parameters(self) -> tuple:
        """``(name, default Prior, role)`` of the family's own scalar parameters besides
        ``eta`` and ``phi`` (the cut-points of ``ordered_beta``).

        Each becomes a model variable ``name`` with the prior key ``name`` (overridable by
        ``priors=``) and is passed to the family's math by that name; ``name`` must be in
        :attr:`parameters`.
        """
        return ()

    def comparison_group(self) -> str:
        """The ELPD group of a fit of this family with these options."""
        return self.elpd_group

    def transforms_labels(self) -> bool:
        """Whether the likelihood sees labels other than those given (thresholded,
        squeezed): comparisons then need the original labels from the training data."""
        return False

    def label_log_jacobian(self, n_train: int, n_columns: int = 1) -> float:
        """Per-observation log-Jacobian that puts this family's log density of the labels
        it sees on the scale of the labels as given (0 unless the labels are transformed);
        ``n_columns`` is the number of label columns (K for a multiclass family)."""
        return 0.0

    # -- labels -----------------------------------------------------------------------------
    def prepare_labels(self, labels, *, name="labels", index=None, n_ref=None):
        """Validate the labels and return ``(labels the likelihood sees, info)``.

        ``info`` is a dict of JSON-serializable facts recorded in the fit's attrs (keys
        without the ``softbayes_`` prefix) and may hold a ``"warning"`` message. ``n_ref``
        is the sample size of transformations that use one (the Beta squeeze of held-out
        labels uses the training size). Families that :attr:`takes_trials` also get
        ``trials=``, the trials ``m`` per row, and ``labels`` are then the proportions
        ``k / m``.
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

    # -- GLM math of the calibration (NumPy) ------------------------------------------------
    def variance(self, *, eta):
        """The variance function at ``eta`` (multiclass: the multinomial variances pi)."""
        raise NotImplementedError

    def glm_eta(self, X, theta):
        """``X @ theta`` in this family's form (multiclass: ``theta`` is ``(p, K-1)``
        row-major, and the reference class's column of zeros comes first)."""
        return np.asarray(X, float) @ np.asarray(theta, float)

    def glm_scores_information(self, labels, X, eta, weights):
        """Per-observation scores ``(n, P)`` and the information ``(P, P)`` (minus the
        Hessian) of the weighted log-likelihood at ``eta``: canonical link, ``w (l - mu) x``
        and ``X' diag(w V) X``."""
        scores = (weights * (labels - self.mean(eta=eta)))[:, None] * X
        return scores, (X * (weights * self.variance(eta=eta))[:, None]).T @ X

    # -- model graph ------------------------------------------------------------------------
    def add_likelihood(self, name, labels, *, weights=None, dims=None, **params):
        """Add the likelihood term ``name`` to the model on the context stack.

        Families with a :attr:`glm_kernel` also take ``glm=(X, theta)``, the linear
        predictor ``eta = X @ theta`` in factored form, and then build the fused term.
        """
        raise NotImplementedError
