"""Soft-label cross-entropy as observed PyMC distributions.

:class:`SoftBernoulli` and :class:`SoftCategorical` carry the same log-likelihood as
:func:`softbayes.WeightedBernoulli` / :func:`softbayes.WeightedCategorical`, but as observed
random variables, so PyMC's own machinery (``pm.compute_log_likelihood``,
``pm.sample_posterior_predictive``) applies to them unchanged.
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
from pymc.distributions.dist_math import check_parameters
from pymc.distributions.distribution import Distribution
from pymc.distributions.shape_utils import rv_size_is_none
from pytensor.graph.basic import Variable
from pytensor.tensor.random.op import RandomVariable
from scipy import special as sp

from softbayes.data.validation import (
    check_parameter_shape,
    validate_soft_labels,
    validate_weights,
)
from softbayes.math.soft_labels import (
    soft_bernoulli_logp,
    soft_bernoulli_logp_p,
    soft_categorical_logp,
    soft_categorical_logp_p,
)

__all__ = ["SoftBernoulli", "SoftCategorical"]


# --------------------------------------------------------------------------- random variables


def _batch_shape(size, *shapes):
    return tuple(size) if size is not None else np.broadcast_shapes(*shapes)


class _SoftBernoulliRV(RandomVariable):
    """Hard 0/1 draws (as floats) from Bernoulli(q); ``weights`` does not affect draws."""

    signature = "(),()->()"
    dtype = "floatX"
    _param_is_logit = True

    def rng_fn(self, rng, param, weights, size):
        param, weights = np.asarray(param), np.asarray(weights)
        shape = _batch_shape(size, param.shape, weights.shape)
        q = sp.expit(param) if self._param_is_logit else param
        q = np.broadcast_to(q, shape)
        return (rng.random(shape) < q).astype(pytensor.config.floatX)


class SoftBernoulliLogitRV(_SoftBernoulliRV):
    name = "soft_bernoulli_logit"
    _print_name = ("SoftBernoulli", "\\operatorname{SoftBernoulli}")
    _param_is_logit = True


class SoftBernoulliProbRV(_SoftBernoulliRV):
    name = "soft_bernoulli_p"
    _print_name = ("SoftBernoulli", "\\operatorname{SoftBernoulli}")
    _param_is_logit = False


class _SoftCategoricalRV(RandomVariable):
    """One-hot draws (as floats) from Categorical(q); ``weights`` does not affect draws."""

    signature = "(k),()->(k)"
    dtype = "floatX"
    _param_is_logit = True

    def rng_fn(self, rng, param, weights, size):
        param, weights = np.asarray(param, dtype=float), np.asarray(weights)
        k = param.shape[-1]
        shape = _batch_shape(size, param.shape[:-1], weights.shape)
        if self._param_is_logit:
            q = sp.softmax(param, axis=-1)
        else:
            q = param / param.sum(axis=-1, keepdims=True)  # sampling only; logp uses p as given
        cdf = np.cumsum(np.broadcast_to(q, (*shape, k)), axis=-1)
        u = rng.random((*shape, 1))
        idx = np.minimum((u >= cdf).sum(axis=-1), k - 1)
        return np.eye(k, dtype=pytensor.config.floatX)[idx]


class SoftCategoricalLogitRV(_SoftCategoricalRV):
    name = "soft_categorical_logits"
    _print_name = ("SoftCategorical", "\\operatorname{SoftCategorical}")
    _param_is_logit = True


class SoftCategoricalProbRV(_SoftCategoricalRV):
    name = "soft_categorical_p"
    _print_name = ("SoftCategorical", "\\operatorname{SoftCategorical}")
    _param_is_logit = False


def _register_numba_draws():
    """Numba kernels for the draws, so posterior predictive sampling stays compiled.

    Without them PyTensor's numba backend (the default) runs ``rng_fn`` in object mode,
    which works but warns and is slow.
    """
    try:
        from pytensor.link.numba.dispatch import basic as numba_basic
        from pytensor.link.numba.dispatch.random import numba_core_rv_funcify
    except ImportError:  # numba not installed: the Python rng_fn is used
        return

    @numba_core_rv_funcify.register(_SoftBernoulliRV)
    def _soft_bernoulli_core(op, node):
        is_logit = op._param_is_logit

        @numba_basic.numba_njit
        def random_fn(rng, param, weights):
            q = 1.0 / (1.0 + np.exp(-param)) if is_logit else param
            return 1.0 if rng.uniform() < q else 0.0

        return random_fn, 1

    @numba_core_rv_funcify.register(_SoftCategoricalRV)
    def _soft_categorical_core(op, node):
        is_logit = op._param_is_logit

        @numba_basic.numba_njit
        def random_fn(rng, param, weights, out=None):
            k = param.shape[0]
            if out is None:
                out = np.empty(k, dtype=np.float64)
            if is_logit:
                q = np.exp(param - param.max())
            else:
                q = param.astype(np.float64)
            cdf = np.cumsum(q)
            u = rng.uniform() * cdf[-1]
            idx = min(np.searchsorted(cdf, u, side="right"), k - 1)
            out[:] = 0.0
            out[idx] = 1.0
            return out

        random_fn.handles_out = True
        return random_fn, 1


_register_numba_draws()


soft_bernoulli_logit = SoftBernoulliLogitRV()
soft_bernoulli_p = SoftBernoulliProbRV()
soft_categorical_logits = SoftCategoricalLogitRV()
soft_categorical_p = SoftCategoricalProbRV()


# --------------------------------------------------------------------------- shared helpers


def _one_of(a, b, name_a, name_b):
    if (a is None) == (b is None):
        raise ValueError(f"Give exactly one of {name_a} and {name_b}.")


def _observed_value(observed):
    """The numeric value behind ``observed`` (an array, a pandas object or pm.Data)."""
    if isinstance(observed, Variable):
        if hasattr(observed, "get_value"):
            return observed.get_value()
        if hasattr(observed, "data"):
            return observed.data
        raise ValueError(
            "observed: must be data (an array, a pandas object or pm.Data), not a model expression."
        )
    return observed


def _prepare(name, observed, weights, n_classes, params):
    """Validate observed labels, weights and parameter shapes; return what to register."""
    labels = validate_soft_labels(_observed_value(observed), name=name, n_classes=n_classes)
    if n_classes is None and labels.ndim != 1:
        raise ValueError(
            f"{name}: SoftBernoulli takes 1-D soft labels (probability of class 1), got shape "
            f"{labels.shape}; for probability vectors use SoftCategorical."
        )
    w = None if weights is None else validate_weights(weights, labels.shape[0], name="weights")
    for pname, param in params.items():
        if param is not None:
            check_parameter_shape(labels.shape, param, param_name=pname, name=name)
    if not isinstance(observed, Variable):
        observed = labels
    return observed, w


def _in_unit_interval(value):
    return pt.and_(pt.ge(value, 0.0), pt.le(value, 1.0))


# --------------------------------------------------------------------------- distributions


class SoftBernoulli(Distribution):
    r"""Soft-label Bernoulli "likelihood": the cross-entropy as an observed distribution.

    For soft labels :math:`l_i \in [0, 1]` and :math:`q_i = \sigma(\eta_i)` (or ``p``),

    .. math::

        \log L = \sum_i w_i \left[ l_i \log q_i + (1 - l_i) \log(1 - q_i) \right]
               = \sum_i w_i \left[ l_i \eta_i - \operatorname{softplus}(\eta_i) \right],

    the weighted Bernoulli log-likelihood of the duplicated data set (source eq. 3-7; the
    same value as :func:`softbayes.WeightedBernoulli`). With ``logit_p`` it is evaluated in
    softplus form (exact for any finite logit, labels exactly 0 and 1 included); with ``p``
    as ``l log p + (1 - l) log1p(-p)``, ``0 log 0 = 0``, no clamping.

    Parameters
    ----------
    name : str
        Variable name.
    p : tensor_like of float, optional
        Probability of class 1, in [0, 1].
    logit_p : tensor_like of float, optional
        Log-odds of class 1. Exactly one of ``p`` and ``logit_p``.
    observed : array_like, shape (n,)
        Soft labels in [0, 1] (hard 0/1 labels are a special case). Validated with
        :func:`softbayes.validate_soft_labels`; nothing is clipped.
    weights : array_like, shape (n,), optional
        Non-negative row weights :math:`w_i` (default 1).
    **kwargs
        Passed on to :class:`pymc.Distribution` (``dims``, ``shape``, ...).

    Notes
    -----
    This is **not a normalized density on [0, 1]**: as a function of a continuous
    :math:`l` it integrates to :math:`1/C(q) \le 1/2`, where :math:`C` is the normalizer
    of the Continuous Bernoulli
    (:math:`\int_0^1 q^l (1-q)^{1-l}\,dl = (2q - 1) / \operatorname{logit}(q)`),
    and it is a probability only at :math:`l \in \{0, 1\}`. It is the expected Bernoulli
    log-likelihood of a hard label drawn from the soft label. Its pointwise values (and
    ELPD / LOO built from them) are comparable only with other models of the same kind on
    the same soft labels, never with a density of :math:`l` such as the Beta or the
    Continuous Bernoulli.

    **Random draws are hard labels**: ``pm.sample_posterior_predictive`` and ``pm.draw``
    return :math:`y_i \sim \text{Bernoulli}(q_i)` in {0., 1.} (float dtype, the weights play no
    part), i.e. replicated hard labels whose mean is the predicted :math:`q_i`, not
    replicated soft labels.
    """

    rv_op = soft_bernoulli_logit

    def __new__(cls, name, *, p=None, logit_p=None, observed, weights=None, **kwargs):
        _one_of(p, logit_p, "p", "logit_p")
        observed, w = _prepare(name, observed, weights, None, {"p": p, "logit_p": logit_p})
        return super().__new__(
            cls, name, p=p, logit_p=logit_p, weights=w, observed=observed, **kwargs
        )

    @classmethod
    def dist(cls, p=None, logit_p=None, weights=None, **kwargs):
        _one_of(p, logit_p, "p", "logit_p")
        w = pt.as_tensor_variable(np.float64(1.0) if weights is None else weights)
        if p is not None:
            return _SoftBernoulliP.dist([pt.as_tensor_variable(p), w], **kwargs)
        return super().dist([pt.as_tensor_variable(logit_p), w], **kwargs)

    def support_point(rv, size, logit_p, weights):
        point = pt.switch(pt.lt(logit_p, 0.0), 0.0, 1.0)
        if not rv_size_is_none(size):
            point = pt.full(size, point)
        return point

    def logp(value, logit_p, weights):
        res = weights * soft_bernoulli_logp(value, logit_p)
        return pt.switch(_in_unit_interval(value), res, -np.inf)


class _SoftBernoulliP(Distribution):
    """SoftBernoulli parametrized by ``p`` (built through ``SoftBernoulli(p=...)``)."""

    rv_op = soft_bernoulli_p

    def support_point(rv, size, p, weights):
        point = pt.switch(pt.lt(p, 0.5), 0.0, 1.0)
        if not rv_size_is_none(size):
            point = pt.full(size, point)
        return point

    def logp(value, p, weights):
        term = soft_bernoulli_logp_p(value, p)
        res = pt.switch(pt.eq(weights, 0.0), 0.0, weights * term)
        res = pt.switch(_in_unit_interval(value), res, -np.inf)
        return check_parameters(res, 0 <= p, p <= 1, msg="0 <= p <= 1")


class SoftCategorical(Distribution):
    r"""Soft-label categorical "likelihood" for probability-vector labels.

    For label rows :math:`l_i \in \Delta^{K-1}` and class probabilities
    :math:`q_i = \operatorname{softmax}(\eta_i)` (or ``p``),

    .. math::

        \log L = \sum_i w_i \sum_{k=1}^K l_{ik} \log q_{ik},

    the weighted categorical log-likelihood of the K-fold duplicated data set (the same value
    as :func:`softbayes.WeightedCategorical`). With ``logits`` it uses ``log_softmax``; with
    ``p``, ``log p`` as given (``p`` is not renormalized; ``0 log 0 = 0``).

    Parameters
    ----------
    name : str
        Variable name.
    p : tensor_like of float, shape (..., K), optional
        Class probabilities.
    logits : tensor_like of float, shape (..., K), optional
        Unnormalized log-probabilities. Exactly one of ``p`` and ``logits``.
    observed : array_like, shape (n, K)
        Probability vectors (rows in [0, 1] summing to 1 within 1e-6; one-hot rows for hard
        labels). Validated with :func:`softbayes.validate_soft_labels`; nothing is
        renormalized.
    weights : array_like, shape (n,), optional
        Non-negative row weights :math:`w_i` (default 1).
    **kwargs
        Passed on to :class:`pymc.Distribution`.

    Notes
    -----
    Not a normalized density of the label vector (see :class:`SoftBernoulli`); compare its
    ELPD only with models of the same kind on the same labels. **Random draws are one-hot
    hard labels** :math:`y_i \sim \text{Categorical}(q_i)` (float dtype, shape (n, K)), not
    replicated probability vectors.
    """

    rv_op = soft_categorical_logits

    def __new__(cls, name, *, p=None, logits=None, observed, weights=None, **kwargs):
        _one_of(p, logits, "p", "logits")
        labels = validate_soft_labels(_observed_value(observed), name=name)
        if labels.ndim != 2:
            raise ValueError(
                f"{name}: SoftCategorical takes probability vectors of shape (n, K), got shape "
                f"{labels.shape}; for binary soft labels use SoftBernoulli."
            )
        observed, w = _prepare(name, observed, weights, labels.shape[1], {"p": p, "logits": logits})
        return super().__new__(
            cls, name, p=p, logits=logits, weights=w, observed=observed, **kwargs
        )

    @classmethod
    def dist(cls, p=None, logits=None, weights=None, **kwargs):
        _one_of(p, logits, "p", "logits")
        w = pt.as_tensor_variable(np.float64(1.0) if weights is None else weights)
        if p is not None:
            return _SoftCategoricalP.dist([pt.as_tensor_variable(p), w], **kwargs)
        return super().dist([pt.as_tensor_variable(logits), w], **kwargs)

    def support_point(rv, size, logits, weights):
        k = logits.shape[-1]
        point = pt.eq(pt.arange(k), pt.argmax(logits, axis=-1, keepdims=True)).astype("float64")
        if not rv_size_is_none(size):
            point = pt.full((*size, k), point)
        else:
            point = pt.broadcast_to(point, rv.shape)
        return point

    def logp(value, logits, weights):
        res = weights * soft_categorical_logp(value, logits)
        return pt.switch(pt.all(_in_unit_interval(value), axis=-1), res, -np.inf)


class _SoftCategoricalP(Distribution):
    """SoftCategorical parametrized by ``p`` (built through ``SoftCategorical(p=...)``)."""

    rv_op = soft_categorical_p

    def support_point(rv, size, p, weights):
        k = p.shape[-1]
        point = pt.eq(pt.arange(k), pt.argmax(p, axis=-1, keepdims=True)).astype("float64")
        if not rv_size_is_none(size):
            point = pt.full((*size, k), point)
        else:
            point = pt.broadcast_to(point, rv.shape)
        return point

    def logp(value, p, weights):
        term = soft_categorical_logp_p(value, p)
        res = pt.switch(pt.eq(weights, 0.0), 0.0, weights * term)
        res = pt.switch(pt.all(_in_unit_interval(value), axis=-1), res, -np.inf)
        return check_parameters(res, pt.all(p >= 0), pt.all(p <= 1), msg="0 <= p <= 1")
