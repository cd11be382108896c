r"""The continuous categorical distribution on the simplex, as a PyMC distribution.

The math (normalizer, mean, exact draws) lives in
:mod:`softbayes.math.continuous_categorical` and the PyTensor Op in
:mod:`softbayes.ops.continuous_categorical`; this module wraps them as a ``RandomVariable``
and a PyMC distribution, and exposes the density, the mean and draws as functions that work
on NumPy arrays and PyTensor tensors alike.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pymc.distributions.dist_math import check_parameters
from pymc.distributions.multivariate import SimplexContinuous
from pymc.distributions.shape_utils import rv_size_is_none
from pytensor.graph.basic import Variable
from pytensor.tensor.random.op import RandomVariable

from softbayes.data.validation import check_parameter_shape, validate_soft_labels
from softbayes.math.continuous_categorical import cc_logp, cc_mean
from softbayes.math.continuous_categorical_draws import cc_draw_row, cc_draws
from softbayes.math.xp import is_symbolic
from softbayes.ops.continuous_categorical import CC_KERNEL_VERSION, log_normalizer_and_mean

__all__ = [
    "SIMPLEX_ATOL",
    "ContinuousCategorical",
    "ContinuousCategoricalRV",
    "continuous_categorical",
    "continuous_categorical_draws",
    "continuous_categorical_logp",
    "continuous_categorical_mean",
]

#: Tolerance on ``|sum_k x_k - 1|`` for a value to be on the simplex (as for soft labels).
SIMPLEX_ATOL = 1e-6
_PARAM_MSG = "logits finite (p > 0)"


def _symbolic_logp(value, logits):
    value = pt.as_tensor_variable(value)
    logits = pt.as_tensor_variable(logits)
    # The density is invariant to a common shift; shifting first keeps eta . x exact.
    z = logits - pt.max(logits, axis=-1, keepdims=True)
    # One normalizer per row of the logits; shared logits broadcast against the values.
    log_c, _ = log_normalizer_and_mean(z)
    res = pt.sum(z * value, axis=-1) + log_c
    inside = pt.and_(
        pt.all(pt.ge(value, 0.0), axis=-1),
        pt.le(pt.abs(pt.sum(value, axis=-1) - 1.0), SIMPLEX_ATOL),
    )
    return pt.switch(inside, res, -np.inf)


def continuous_categorical_logp(value, logits):
    r"""Pointwise log density :math:`\eta \cdot x + \log C(\eta)`, shape ``(...)``.

    ``value`` rows ``(..., K)`` on the simplex (entries :math:`\ge 0` summing to 1 within
    :data:`SIMPLEX_ATOL`; exact zeros allowed), else ``-inf``. NumPy inputs give a NumPy
    array (float64); if either input is a PyTensor variable the result is symbolic, with
    gradients through the logits (the gradient of :math:`\log C` is minus the mean).
    """
    if is_symbolic(value, logits):
        return _symbolic_logp(value, logits)
    return cc_logp(value, logits, atol=SIMPLEX_ATOL)


def continuous_categorical_mean(logits):
    r"""Mean :math:`E[x] = -\nabla \log C(\eta)`, shape ``(..., K)``; not ``softmax(logits)``.

    NumPy in, NumPy out; a PyTensor tensor gives the mean output of the normalizer Op.
    """
    if is_symbolic(logits):
        return log_normalizer_and_mean(pt.as_tensor_variable(logits))[1]
    return cc_mean(logits)


def continuous_categorical_draws(rng, logits, size=None):
    r"""Exact draws, shape ``size + (K,)`` (default ``logits.shape``), as NumPy float64.

    ``rng`` is a :class:`numpy.random.Generator` (or a seed). See
    :func:`softbayes.math.continuous_categorical_draws.cc_draws` for the sampler and its
    acceptance bound.
    """
    return cc_draws(np.random.default_rng(rng), logits, size=size)


class ContinuousCategoricalRV(RandomVariable):
    """Exact draws of the continuous categorical; parameter: ``logits`` ``(..., K)``."""

    name = "continuous_categorical"
    signature = "(k)->(k)"
    dtype = "floatX"
    _print_name = ("ContinuousCategorical", "\\operatorname{ContinuousCategorical}")

    def rng_fn(self, rng, logits, size):
        return cc_draws(rng, logits, size=size)


def _register_numba_draws():
    """The numba core of the draws (the same kernel as ``rng_fn``), so that PyTensor's numba
    backend does not fall back to object mode for posterior predictive sampling."""
    try:
        from pytensor.link.numba.dispatch import basic as numba_basic
        from pytensor.link.numba.dispatch.random import numba_core_rv_funcify
    except ImportError:  # numba backend missing: the Python rng_fn is used
        return
    draw_row = cc_draw_row

    @numba_core_rv_funcify.register(ContinuousCategoricalRV)
    def _continuous_categorical_core(op, node):
        @numba_basic.numba_njit
        def random_fn(rng, logits):
            out = np.empty(logits.shape[0])
            if not draw_row(rng, logits.astype(np.float64), out):
                raise RuntimeError("continuous categorical draws: no proposal accepted")
            return out

        return random_fn, CC_KERNEL_VERSION


_register_numba_draws()

continuous_categorical = ContinuousCategoricalRV()


def _observed_value(observed):
    if isinstance(observed, Variable):
        if hasattr(observed, "get_value"):
            return observed.get_value()
        if hasattr(observed, "data"):
            return observed.data
        return None
    return observed


class ContinuousCategorical(SimplexContinuous):
    r"""Continuous categorical distribution on the simplex.

    The density of :math:`x \in \Delta^{K-1}` (Lebesgue measure on the first :math:`K - 1`
    coordinates) with logits :math:`\eta \in \mathbb{R}^K` is

    .. math::

        f(x \mid \eta) = C(\eta)\, \exp\Big(\sum_{k} \eta_k x_k\Big)
                       = C(\eta) \prod_k \lambda_k^{x_k}, \qquad
        \frac{1}{C(\eta)} = \int_\Delta e^{\eta \cdot x}\, dx = \exp[\eta_0, \dots, \eta_{K-1}],

    the divided difference of :math:`\exp` at the logits (Hermite-Genocchi); for distinct
    logits :math:`1/C = \sum_k e^{\eta_k} / \prod_{j \ne k} (\eta_k - \eta_j)`. It is the
    simplex analogue of the continuous Bernoulli (``K = 2`` is the continuous Bernoulli of
    the second coordinate at :math:`\eta_1 - \eta_0`), a proper density of soft labels that
    are probability vectors, and invariant to a common shift of the logits.

    ========  ==========================================================================
    Support   :math:`x_k \ge 0`, :math:`\sum_k x_k = 1` (exact zeros and vertices included)
    Mean      :math:`E[x_k] = -\partial \log C / \partial \eta_k
              = \exp[\eta_0..\eta_k, \eta_k..\eta_{K-1}] / \exp[\eta]`
              (:math:`1/K` for equal logits; not :math:`\operatorname{softmax}(\eta)`)
    Variance  :math:`\operatorname{Cov}(x) = -\nabla^2 \log C(\eta)`
              (:math:`(K - 1)/(K^2 (K + 1))` on the diagonal for equal logits)
    ========  ==========================================================================

    Parameters
    ----------
    name : str
        Variable name.
    p : tensor_like of float, shape (..., K), optional
        Positive probabilities :math:`\lambda` (``logits = log p``; need not sum to 1).
    logits : tensor_like of float, shape (..., K), optional
        Natural parameters :math:`\eta`. Exactly one of ``p`` and ``logits``.
    observed : array_like, shape (n, K), optional
        Rows on the simplex (validated with :func:`softbayes.validate_soft_labels`; nothing
        is renormalized).
    **kwargs
        Passed on to :class:`pymc.Distribution` (``dims``, ``shape``, ...).

    Notes
    -----
    * :math:`\log C` is computed as the divided difference of :math:`\exp` by the
      exponential of a bidiagonal matrix (scaling and squaring of non-negative matrices),
      accurate for equal, nearly equal (gaps down to 0) and far-apart logits and any
      ``K``: against mpmath, within a few ulps (:math:`\le 10^{-15}` relative) for ``K``
      up to 20, gaps down to 0 and spreads up to 1400. Its gradient (minus the mean) is the
      reverse-mode derivative of the same computation, as accurate. Second derivatives are
      not implemented.
    * Draws are exact (rejection sampling with an exactly computed acceptance
      probability, see :func:`softbayes.math.continuous_categorical_draws.cc_draws`).
    * Logits must be finite (``p > 0``): else ``logp`` raises
      ``pymc.logprob.utils.ParameterValueError`` (``-inf`` inside a model).
    * Values off the simplex have ``logp = -inf``.

    References
    ----------
    .. [1] E. Gordon-Rodriguez, G. Loaiza-Ganem and J. P. Cunningham, "The continuous
       categorical: a novel simplex-valued exponential family", ICML 2020,
       arXiv:2002.08563.
    .. [2] E. Gordon-Rodriguez, G. Loaiza-Ganem, A. Potapczynski and J. P. Cunningham, "On
       the normalizing constant of the continuous categorical distribution", 2022,
       arXiv:2204.13290.
    .. [3] A. C. McCurdy, K. C. Ng and B. N. Parlett, "Accurate computation of divided
       differences of the exponential function", Math. Comp. 43 (1984) 501-528.

    Examples
    --------
    >>> import numpy as np
    >>> import pymc as pm
    >>> import softbayes as sb
    >>> y = np.array([[0.2, 0.5, 0.3], [0.0, 0.1, 0.9]])
    >>> with pm.Model():
    ...     eta = pm.Normal("eta", 0.0, 1.0, shape=3)
    ...     obs = sb.ContinuousCategorical("y", logits=eta, observed=y)
    """

    rv_op = continuous_categorical

    def __new__(cls, name, *args, p=None, logits=None, observed=None, **kwargs):
        values = _observed_value(observed)
        if values is not None and not np.ma.isMaskedArray(values):
            labels = validate_soft_labels(values, name=name, atol=SIMPLEX_ATOL)
            if labels.ndim != 2:
                raise ValueError(
                    f"{name}: ContinuousCategorical takes rows on the simplex of shape (n, K), "
                    f"got shape {labels.shape}."
                )
            for pname, param in (("p", p), ("logits", logits)):
                if param is not None:
                    check_parameter_shape(labels.shape, param, param_name=pname, name=name)
            if not isinstance(observed, Variable):
                observed = labels
        return super().__new__(
            cls, name, *args, p=p, logits=logits, observed=observed, **kwargs
        )

    @classmethod
    def dist(cls, p=None, logits=None, **kwargs):
        if (p is None) == (logits is None):
            raise ValueError("ContinuousCategorical: give exactly one of p and logits.")
        if p is not None:
            p = pt.as_tensor_variable(p)
            if not p.dtype.startswith("float"):
                p = pt.cast(p, "floatX")
            logits = pt.log(p)
        logits = pt.as_tensor_variable(logits)
        if not logits.dtype.startswith("float"):
            logits = pt.cast(logits, "floatX")
        return super().dist([logits], **kwargs)

    def support_point(rv, size, logits):
        point = continuous_categorical_mean(logits)
        if not rv_size_is_none(size):
            point = pt.full(pt.concatenate([size, [logits.shape[-1]]]), point)
        return point

    def logp(value, logits):
        res = _symbolic_logp(value, logits)
        finite = pt.all(pt.isfinite(logits))
        return check_parameters(res, finite, msg=_PARAM_MSG)
