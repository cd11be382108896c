"""One expression, two backends.

softbayes writes each piece of math once. The same function body runs on PyTensor
tensors (inside a model graph, where gradients are needed) and on NumPy arrays (on
posterior draws, where compiling a graph per call would cost more than the work).
``ops(*args)`` picks the namespace from the arguments: symbolic if any of them is a
PyTensor variable, NumPy otherwise.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Variable
from scipy import special as _sp


def is_symbolic(*args) -> bool:
    """True when any argument is a PyTensor variable."""
    return any(isinstance(a, Variable) for a in args)


def _np_log1mexp(x):
    # log(1 - exp(x)) for x <= 0 (Mächler 2012): two branches, each exact on its side.
    x = np.asarray(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > -np.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


class _NumpyOps:
    """The NumPy namespace, with the few primitives NumPy lacks."""

    symbolic = False
    where = staticmethod(np.where)
    exp = staticmethod(np.exp)
    expm1 = staticmethod(np.expm1)
    log = staticmethod(np.log)
    log1p = staticmethod(np.log1p)
    abs = staticmethod(np.abs)
    sqrt = staticmethod(np.sqrt)
    square = staticmethod(np.square)
    sinh = staticmethod(np.sinh)
    cosh = staticmethod(np.cosh)
    tanh = staticmethod(np.tanh)
    sign = staticmethod(np.sign)
    sigmoid = staticmethod(_sp.expit)
    logit = staticmethod(_sp.logit)
    log1mexp = staticmethod(_np_log1mexp)
    logsumexp = staticmethod(_sp.logsumexp)
    gammaln = staticmethod(_sp.gammaln)
    sum = staticmethod(np.sum)
    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    isnan = staticmethod(np.isnan)
    as_tensor = staticmethod(np.asarray)

    @staticmethod
    def softplus(x):
        # log(1 + e^x) without overflow.
        return np.logaddexp(0.0, x)

    @staticmethod
    def log_softmax(x, axis=-1):
        return x - _sp.logsumexp(x, axis=axis, keepdims=True)


class _PytensorOps:
    """The PyTensor namespace under the same names."""

    symbolic = True
    where = staticmethod(pt.switch)
    exp = staticmethod(pt.exp)
    expm1 = staticmethod(pt.expm1)
    log = staticmethod(pt.log)
    log1p = staticmethod(pt.log1p)
    abs = staticmethod(pt.abs)
    sqrt = staticmethod(pt.sqrt)
    square = staticmethod(pt.square)
    sinh = staticmethod(pt.sinh)
    cosh = staticmethod(pt.cosh)
    tanh = staticmethod(pt.tanh)
    sign = staticmethod(pt.sign)
    sigmoid = staticmethod(pt.sigmoid)
    logit = staticmethod(lambda x: pt.log(x) - pt.log1p(-x))
    log1mexp = staticmethod(pt.log1mexp)
    softplus = staticmethod(pt.softplus)
    gammaln = staticmethod(pt.gammaln)
    sum = staticmethod(pt.sum)
    maximum = staticmethod(pt.maximum)
    minimum = staticmethod(pt.minimum)
    isnan = staticmethod(pt.isnan)
    as_tensor = staticmethod(pt.as_tensor_variable)

    @staticmethod
    def logsumexp(x, axis=None, keepdims=False):
        return pt.logsumexp(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def log_softmax(x, axis=-1):
        return pt.special.log_softmax(x, axis=axis)


NP = _NumpyOps()
PT = _PytensorOps()


def ops(*args):
    """The namespace for these arguments: PyTensor if any is symbolic, else NumPy."""
    return PT if is_symbolic(*args) else NP
