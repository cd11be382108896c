"""The continuous Bernoulli distribution for PyMC.

The math (all of it in the natural parameter ``logit_p``) lives in
:mod:`softbayes.math.continuous_bernoulli`; this module wraps it as a PyMC distribution whose
draws are a symbolic graph (the inverse CDF at a uniform draw, so every PyTensor backend
compiles them, numba included), and exposes the moments as public functions.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pymc.distributions.continuous import UnitContinuous
from pymc.distributions.dist_math import (
    check_icdf_parameters,
    check_icdf_value,
    check_parameters,
)
from pymc.distributions.distribution import SymbolicRandomVariable
from pymc.distributions.shape_utils import implicit_size_from_params, rv_size_is_none
from pymc.pytensorf import normalize_rng_param
from pytensor.graph.basic import Variable
from pytensor.tensor.random.basic import uniform
from pytensor.tensor.random.utils import normalize_size_param
from scipy import special as _sp

from softbayes.data.validation import validate_unit_interval
from softbayes.math.continuous_bernoulli import (
    cb_entropy,
    cb_icdf,
    cb_logcdf,
    cb_logp,
    cb_mean,
    cb_variance,
)
from softbayes.math.xp import is_symbolic

__all__ = [
    "ContinuousBernoulli",
    "ContinuousBernoulliRV",
    "continuous_bernoulli",
    "continuous_bernoulli_entropy",
    "continuous_bernoulli_mean",
    "continuous_bernoulli_variance",
]

_PARAM_MSG = "0 <= p <= 1 (logit_p not NaN)"


def _check_one_of(p, logit_p):
    if p is None and logit_p is None:
        raise ValueError("ContinuousBernoulli needs one of `p` or `logit_p`; neither was given.")
    if p is not None and logit_p is not None:
        raise ValueError(
            "ContinuousBernoulli takes exactly one of `p` or `logit_p`, not both "
            "(logit_p = log(p / (1 - p)))."
        )


def _to_logit(p=None, logit_p=None):
    """The natural parameter from exactly one of ``p`` and ``logit_p``.

    ``p`` is mapped exactly: ``p = 0 -> -inf``, ``p = 1 -> +inf``, and anything outside
    ``[0, 1]`` or NaN becomes NaN (which the distribution rejects).
    """
    _check_one_of(p, logit_p)
    if logit_p is not None:
        return logit_p
    if is_symbolic(p):
        return pt.log(p) - pt.log1p(-p)
    p = np.asarray(p)
    if not np.issubdtype(p.dtype, np.floating):
        p = p.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _sp.logit(p)


def continuous_bernoulli_mean(p=None, logit_p=None):
    r"""Mean of the continuous Bernoulli, :math:`1/(1 - e^{-\eta}) - 1/\eta`.

    Not :math:`\lambda`: the mean is pulled toward 1/2. Give exactly one of ``p``
    (:math:`\lambda \in [0, 1]`) or ``logit_p`` (:math:`\eta`). Works on NumPy arrays (NumPy
    out) and PyTensor tensors (a symbolic result); ``p`` outside ``[0, 1]`` gives NaN.
    """
    return cb_mean(_to_logit(p, logit_p))


def continuous_bernoulli_variance(p=None, logit_p=None):
    r"""Variance of the continuous Bernoulli, :math:`1/\eta^2 - 1/(4\sinh^2(\eta/2))`.

    Same arguments as :func:`continuous_bernoulli_mean`.
    """
    return cb_variance(_to_logit(p, logit_p))


def continuous_bernoulli_entropy(p=None, logit_p=None):
    r"""Differential entropy of the continuous Bernoulli (nats; :math:`\le 0`, 0 at p = 1/2).

    Same arguments as :func:`continuous_bernoulli_mean`.
    """
    return cb_entropy(_to_logit(p, logit_p))


class ContinuousBernoulliRV(SymbolicRandomVariable):
    """Draws as a graph: :func:`~softbayes.math.continuous_bernoulli.cb_icdf` at a uniform
    draw; parameter: ``logit_p``.

    Being symbolic (no NumPy ``rng_fn``), the draws compile with the model's backend:
    ``pm.sample_prior_predictive`` / ``pm.sample_posterior_predictive`` under numba (PyMC's
    default) run compiled code, without numba's object-mode fallback.
    """

    name = "continuous_bernoulli"
    extended_signature = "[rng],[size],()->[rng],()"
    _print_name = ("ContinuousBernoulli", "\\operatorname{ContinuousBernoulli}")

    @classmethod
    def rv_op(cls, logit_p, *, size=None, rng=None):
        """The draw graph of CB(``logit_p``) with ``size`` and ``rng``."""
        logit_p = pt.as_tensor(logit_p)
        rng = normalize_rng_param(rng)
        size = normalize_size_param(size)
        if rv_size_is_none(size):
            size = implicit_size_from_params(logit_p, ndims_params=cls.ndims_params)
        next_rng, u = uniform(size=size, rng=rng, return_next_rng=True, dtype=logit_p.dtype)
        draws = cb_icdf(u, logit_p)
        return cls(inputs=[rng, size, logit_p], outputs=[next_rng, draws])(rng, size, logit_p)


def continuous_bernoulli(logit_p, size=None, rng=None):
    """A draw variable of CB(``logit_p``) (the random variable outside a model)."""
    return ContinuousBernoulliRV.rv_op(logit_p, size=size, rng=rng)


class ContinuousBernoulli(UnitContinuous):
    r"""Continuous Bernoulli distribution.

    The density on :math:`[0, 1]` is

    .. math::

        f(x \mid \lambda) = C(\lambda)\, \lambda^x (1 - \lambda)^{1 - x}, \qquad
        C(\lambda) = \frac{2 \operatorname{artanh}(1 - 2\lambda)}{1 - 2\lambda}
        \quad (C(1/2) = 2),

    or, in the natural parameter :math:`\eta = \operatorname{logit}\lambda`,

    .. math::

        f(x \mid \eta) = \frac{\eta\, e^{\eta x}}{e^\eta - 1} \quad (f = 1 \text{ at } \eta = 0).

    It is the proper likelihood for soft labels / targets in :math:`[0, 1]`: the Bernoulli
    "likelihood" :math:`\lambda^x (1-\lambda)^{1-x}` evaluated at non-binary :math:`x` is not
    normalized; :math:`C(\lambda)` fixes that.

    ========  ==========================================================================
    Support   :math:`x \in [0, 1]`
    Mean      :math:`\dfrac{1}{1 - e^{-\eta}} - \dfrac{1}{\eta}` (:math:`1/2` at
              :math:`\eta = 0`); note the mean is *not* :math:`\lambda`
    Variance  :math:`\dfrac{1}{\eta^2} - \dfrac{1}{4 \sinh^2(\eta / 2)}` (:math:`1/12` at
              :math:`\eta = 0`)
    ========  ==========================================================================

    Parameters
    ----------
    p : tensor_like of float, optional
        Shape parameter :math:`\lambda`, ``0 <= p <= 1``.
    logit_p : tensor_like of float, optional
        Natural parameter :math:`\eta = \log(\lambda / (1 - \lambda))`, any real number.
        Exactly one of ``p`` and ``logit_p`` must be given; everything is computed in
        ``logit_p`` (``p`` is converted exactly, never clamped).

    Notes
    -----
    * Observed values must be numeric, finite and inside ``[0, 1]`` (a ValueError names the
      offending rows; a masked array requests PyMC's imputation of the masked entries).
    * ``p`` outside ``[0, 1]`` or NaN (equivalently ``logit_p`` NaN) raises
      ``pymc.logprob.utils.ParameterValueError`` from ``logp``, ``logcdf`` and ``icdf``
      (``-inf`` inside a model's compiled logp). Values outside ``[0, 1]`` have
      ``logp = -inf``.
    * ``p = 0`` / ``p = 1`` (``logit_p = -inf`` / ``+inf``) is the limit, a point mass at 0 /
      at 1: ``logp`` is ``+inf`` at the atom and ``-inf`` elsewhere (the limit of the log
      density), ``logcdf`` the step function, draws and ``icdf`` the atom. Not NaN.
    * Accuracy: ``logp``, ``logcdf``, ``icdf`` and the moments are accurate to a few ulps
      for every finite ``logit_p`` (a Bernoulli-number series for ``|logit_p| < 1``, closed
      forms in ``exp(-|logit_p|)`` beyond, nothing overflows), with smooth gradients
      through ``logit_p = 0``.
    * The mean, variance and entropy are available as
      :func:`~softbayes.continuous_bernoulli_mean`,
      :func:`~softbayes.continuous_bernoulli_variance` and
      :func:`~softbayes.continuous_bernoulli_entropy`; predictions of :math:`E[y]` must go
      through the mean.

    References
    ----------
    .. [1] G. Loaiza-Ganem and J. P. Cunningham, "The continuous Bernoulli: fixing a
       pervasive error in variational autoencoders", NeurIPS 2019, arXiv:1907.06845.

    Examples
    --------
    >>> import numpy as np
    >>> import pymc as pm
    >>> import softbayes as sb
    >>> X = np.column_stack([np.ones(4), [-1.0, 0.0, 1.0, 2.0]])
    >>> y = np.array([0.1, 0.4, 0.7, 0.95])
    >>> with pm.Model():
    ...     beta = pm.Normal("beta", 0.0, 2.0, shape=2)
    ...     obs = sb.ContinuousBernoulli("y", logit_p=X @ beta, observed=y)
    >>> float(sb.continuous_bernoulli_mean(p=0.2))  # doctest: +ELLIPSIS
    0.38801418711...
    """

    rv_type = ContinuousBernoulliRV
    rv_op = ContinuousBernoulliRV.rv_op

    def __new__(cls, name, *args, observed=None, **kwargs):
        # Observed values are checked here (numeric, finite, inside [0, 1]) so that bad data
        # gives one ValueError naming the rows, not a NumPy error, a silent imputation of NaN
        # or a logp of -inf at sampling time. A masked array asks for PyMC's imputation
        # explicitly and is passed on as it is; so are symbolic values.
        if observed is not None and not np.ma.isMaskedArray(observed):
            values = observed
            if isinstance(observed, Variable):
                values = observed.get_value() if hasattr(observed, "get_value") else None
            if values is not None:
                validate_unit_interval(values, name=f"{name} (observed)")
        return super().__new__(cls, name, *args, observed=observed, **kwargs)

    @classmethod
    def dist(cls, p=None, logit_p=None, *args, **kwargs):
        _check_one_of(p, logit_p)
        if p is not None:
            p = pt.as_tensor_variable(p)
            if not p.dtype.startswith("float"):
                p = pt.cast(p, "floatX")
            logit_p = pt.log(p) - pt.log1p(-p)
        logit_p = pt.as_tensor_variable(logit_p)
        if not logit_p.dtype.startswith("float"):
            logit_p = pt.cast(logit_p, "floatX")
        return super().dist([logit_p], *args, **kwargs)

    def support_point(rv, size, logit_p):
        mean = cb_mean(logit_p)
        if not rv_size_is_none(size):
            mean = pt.full(size, mean)
        return mean

    def logp(value, logit_p):
        return check_parameters(
            cb_logp(value, logit_p), pt.invert(pt.isnan(logit_p)), msg=_PARAM_MSG
        )

    def logcdf(value, logit_p):
        return check_parameters(
            cb_logcdf(value, logit_p), pt.invert(pt.isnan(logit_p)), msg=_PARAM_MSG
        )

    def icdf(value, logit_p):
        res = check_icdf_value(cb_icdf(value, logit_p), value)
        return check_icdf_parameters(res, pt.invert(pt.isnan(logit_p)), msg=_PARAM_MSG)
