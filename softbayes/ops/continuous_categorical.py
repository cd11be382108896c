r"""PyTensor Op for the continuous categorical's log normalizer and mean, with numba dispatch.

One node, :class:`CCLogNormalizer`, maps logits ``(..., K)`` to ``(log C(eta), E[x])`` using
the kernels of :mod:`softbayes.math.continuous_categorical` (both outputs from one pass).
Its gradient is the mean, :math:`\partial \log C / \partial \eta_i = -E[x_i]`, which is the
node's own second output: a logp and its gradient cost one kernel call. Second derivatives
(the gradient of the mean) are not implemented and raise a clear error when requested.

Backends: Python (``perform``) and numba (registered on import; nutpie's and PyMC's default).
There is no JAX conversion, so JAX-based samplers (NumPyro, BlackJAX) cannot compile a model
that uses the Op.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

import softbayes.math.continuous_categorical as cc_math
import softbayes.math.continuous_categorical_draws as cc_draws_math
from softbayes.math.xp import is_symbolic
from softbayes.ops.numba_dispatch import sources_version

__all__ = [
    "CC_KERNEL_VERSION",
    "CCLogNormalizer",
    "cc_log_normalizer_and_mean_op",
    "log_normalizer",
    "log_normalizer_and_mean",
]


class CCLogNormalizer(Op):
    """``eta (..., K) -> (log C(eta) (...), E[x] (..., K))`` of the continuous categorical.

    Integer logits are cast to ``floatX``; the outputs have the dtype of the (float)
    logits. The computation is in float64 whatever the dtype.
    """

    __props__ = ()

    def make_node(self, eta):
        eta = pt.as_tensor_variable(eta)
        if not eta.dtype.startswith("float"):
            eta = pt.cast(eta, "floatX")
        if eta.ndim < 1:
            raise TypeError("continuous categorical: logits need a last axis of length K.")
        log_c = pt.tensor(dtype=eta.dtype, shape=eta.type.shape[:-1])
        mean = pt.tensor(dtype=eta.dtype, shape=eta.type.shape)
        return Apply(self, [eta], [log_c, mean])

    def perform(self, node, inputs, output_storage):
        log_c, mean = cc_math.cc_log_normalizer_and_mean(inputs[0])
        output_storage[0][0] = np.asarray(log_c, dtype=node.outputs[0].dtype)
        output_storage[1][0] = np.asarray(mean, dtype=node.outputs[1].dtype)

    def infer_shape(self, node, shapes):
        return [shapes[0][:-1], shapes[0]]

    def pullback(self, inputs, outputs, output_grads):
        (eta,) = inputs
        g_log_c, g_mean = output_grads
        if not isinstance(g_mean.type, DisconnectedType):
            return [
                grad_not_implemented(
                    self,
                    0,
                    eta,
                    "the gradient of the continuous categorical mean (second derivatives of "
                    "its log normalizer) is not implemented",
                )
            ]
        if isinstance(g_log_c.type, DisconnectedType):
            return [pt.zeros_like(eta)]
        return [(-pt.shape_padright(g_log_c) * outputs[1]).astype(eta.dtype)]


#: The Op instance (stateless).
cc_log_normalizer_and_mean_op = CCLogNormalizer()


def log_normalizer_and_mean(eta):
    r"""``(log C(eta), E[x])`` for NumPy logits (float64 arrays) or a PyTensor tensor."""
    if is_symbolic(eta):
        log_c, mean = cc_log_normalizer_and_mean_op(eta)
        return log_c, mean
    return cc_math.cc_log_normalizer_and_mean(eta)


def log_normalizer(eta):
    r"""Log normalizer :math:`\log C(\eta)` for NumPy logits or a PyTensor tensor."""
    if is_symbolic(eta):
        return cc_log_normalizer_and_mean_op(eta)[0]
    return cc_math.cc_log_normalizer(eta)


#: Salt of PyTensor's on-disk numba cache for this Op and the draws' numba core: a hash of
#: the kernel sources.
CC_KERNEL_VERSION = sources_version((cc_math.__file__, cc_draws_math.__file__, __file__))


def _register_numba():
    try:
        from pytensor.link.numba.dispatch.basic import (
            numba_njit,
            register_funcify_default_op_cache_key,
        )
    except ImportError:  # pragma: no cover - numba backend missing
        return

    rows_kernel = cc_math.cc_rows_kernel

    @register_funcify_default_op_cache_key(CCLogNormalizer)
    def _numba_cc(op, node=None, **kwargs):
        dtype = np.dtype(node.outputs[0].dtype)

        @numba_njit
        def cc_log_normalizer_and_mean(eta):
            k = eta.shape[-1]
            flat = np.ascontiguousarray(eta).astype(np.float64).reshape((-1, k))
            logdd, mean = rows_kernel(flat, True)
            log_c = (-logdd).astype(dtype).reshape(eta.shape[:-1])
            return log_c, mean.astype(dtype).reshape(eta.shape)

        return cc_log_normalizer_and_mean, CC_KERNEL_VERSION


_register_numba()
