r"""PyTensor Ops that evaluate GLM-shaped soft-label log-likelihoods on the fused kernels.

The soft-label logistic regression and the continuous Bernoulli GLM have log-likelihoods of
the form :math:`\sum_i w_i [l_i \eta_i - A(\eta_i)]` with :math:`\eta = X\beta`. Written as
an ordinary PyTensor graph (``pt.sum(w * soft_bernoulli_logp(l, X @ beta))``) one evaluation
of the log-density and its gradient costs several passes over the data: ``X @ beta``, one
elementwise loop per operation, ``X.T @ (...)`` for the gradient. Here the same quantity is
one pass: :mod:`softbayes.math.glm_kernels` computes, per row, ``eta``, one ``exp``, the
row's value and its contribution to the gradient, in parallel over blocks of rows.

* :class:`GLMRows` -- the vector of weighted per-row terms (the pointwise log-likelihood);
* :class:`GLMLogpDlogp` -- their sum and its gradient in ``beta``, one pass;
* :class:`GLMVJP` -- the gradient in ``beta`` of ``dot(cot, rows)`` for a general ``cot``.

The gradient of the rows with respect to ``beta`` under a sum (what ``pt.grad`` of a
log-density produces) is built directly as the gradient output of :class:`GLMLogpDlogp`,
and :mod:`softbayes.ops.rewrites` replaces ``sum(GLMRows(...))`` by its value output, so a
compiled logp+gradient function evaluates one fused node. Gradients with respect to ``X``,
the labels and the weights, and second derivatives, come from the reference expressions of
:mod:`softbayes.ops.reference` (correct, not fused).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, pullback
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.scalar import upcast

from softbayes.math import glm_kernels as kernels
from softbayes.ops.graph import cast_to, is_empty, scalar_broadcast_source
from softbayes.ops.reference import (
    reference_logp_dlogp,
    reference_no_label_logp_dlogp,
    reference_rows,
    reference_vjp,
)

__all__ = ["FAMILY_CODES", "GLMVJP", "GLMLogpDlogp", "GLMOp", "GLMRows"]

#: Kernel names (what a family declares as ``glm_kernel``) and their codes in
#: :mod:`softbayes.math.glm_kernels`; the Ops and the builders accept either.
FAMILY_CODES = {
    "weighted_bernoulli": kernels.WEIGHTED_BERNOULLI,
    "continuous_bernoulli": kernels.CONTINUOUS_BERNOULLI,
}
_KERNEL_NAMES = {v: k for k, v in FAMILY_CODES.items()}


def _connected(g) -> bool:
    return not isinstance(g.type, DisconnectedType)


def _lop_sum(outputs_and_grads, wrt):
    """sum_k Lop(output_k, wrt, grad_k) over the connected grads, one entry per wrt."""
    total = [None] * len(wrt)
    for out, g in outputs_and_grads:
        if g is None or not _connected(g):
            continue
        parts = pullback(out, list(wrt), g, disconnected_inputs="ignore",
                         return_disconnected="none")
        for i, p in enumerate(parts):
            if p is None or isinstance(p.type, DisconnectedType):
                continue
            total[i] = p if total[i] is None else total[i] + p
    return [
        pt.zeros_like(w) if t is None else cast_to(t, w.dtype)
        for t, w in zip(total, wrt, strict=True)
    ]


class GLMOp(Op):
    """Shared plumbing of the GLM Ops: inputs ``(X, labels, weights, beta[, cot])``.

    ``labels`` and ``weights`` are vectors of length n; a length-0 ``weights`` means unit
    weights, a length-0 ``labels`` (only inside :class:`GLMLogpDlogp`, produced by the
    sufficient-statistics rewrite) drops the label term.

    Parameters
    ----------
    family : str or int
        A kernel name of :data:`FAMILY_CODES` or its integer code (the ``family`` prop).
    """

    __props__ = ("family",)

    def __init__(self, family):
        family = FAMILY_CODES.get(family, family)
        if family not in _KERNEL_NAMES:
            raise ValueError(f"Unknown GLM family {family!r}; choose one of {list(FAMILY_CODES)}.")
        self.family = int(family)
        super().__init__()

    def _check(self, X, labels, weights, beta, *extra):
        X = pt.as_tensor_variable(X)
        labels = pt.as_tensor_variable(labels)
        weights = pt.as_tensor_variable(weights)
        beta = pt.as_tensor_variable(beta)
        extra = [pt.as_tensor_variable(e) for e in extra]
        if X.ndim != 2 or labels.ndim != 1 or weights.ndim != 1 or beta.ndim != 1:
            raise TypeError(
                "GLM kernel: expected X (n, d), labels (n,), weights (n,) or (0,), beta (d,); "
                f"got ndims {X.ndim}, {labels.ndim}, {weights.ndim}, {beta.ndim}."
            )
        if any(e.ndim != 1 for e in extra):
            raise TypeError("GLM kernel: the cotangent must be a vector of length n.")
        for v in (X, labels, weights, beta, *extra):
            if not v.dtype.startswith("float"):
                raise TypeError(f"GLM kernel: float inputs expected, got {v.dtype}.")
        out_dtype = upcast(beta.dtype, labels.dtype, weights.dtype, *(e.dtype for e in extra))
        return X, labels, weights, beta, extra, out_dtype

    def reference(self, *inputs):
        """The Op's outputs as the reference PyTensor expression of ``inputs`` (a list)."""
        raise NotImplementedError

    def __str__(self):
        return f"{type(self).__name__}{{{_KERNEL_NAMES[self.family]}}}"


class GLMRows(GLMOp):
    """Weighted per-row log-likelihood terms ``w_i [l_i eta_i - A(eta_i)]``, ``eta = X beta``."""

    def make_node(self, X, labels, weights, beta):
        X, labels, weights, beta, _, dtype = self._check(X, labels, weights, beta)
        out = pt.tensor(dtype=dtype, shape=(X.type.shape[0],))
        return Apply(self, [X, labels, weights, beta], [out])

    def perform(self, node, inputs, output_storage):
        X, labels, weights, beta = inputs
        out = kernels.glm_rows(self.family, beta, X, labels, weights)
        output_storage[0][0] = out.astype(node.outputs[0].dtype, copy=False)

    def infer_shape(self, node, shapes):
        return [(shapes[0][0],)]

    def reference(self, X, labels, weights, beta):
        return [reference_rows(self.family, X, labels, weights, beta)]

    def pullback(self, inputs, outputs, output_grads):
        X, labels, weights, beta = inputs
        (g,) = output_grads
        s = scalar_broadcast_source(g)
        if s is not None:
            # The gradient of a sum of rows: the gradient output of the fused node.
            g_beta = s * GLMLogpDlogp(self.family)(X, labels, weights, beta)[1]
        else:
            g_beta = GLMVJP(self.family)(X, labels, weights, beta, g)
        g_beta = cast_to(g_beta, beta.dtype)
        (rows,) = self.reference(X, labels, weights, beta)
        others = _lop_sum([(rows, g)], [X, labels, weights])
        return [*others, g_beta]


class GLMVJP(GLMOp):
    """``X^T [cot * w * (l - A'(eta))]``: the gradient of ``dot(cot, rows)`` in ``beta``."""

    def make_node(self, X, labels, weights, beta, cot):
        X, labels, weights, beta, (cot,), dtype = self._check(X, labels, weights, beta, cot)
        out = pt.tensor(dtype=dtype, shape=(beta.type.shape[0],))
        return Apply(self, [X, labels, weights, beta, cot], [out])

    def perform(self, node, inputs, output_storage):
        X, labels, weights, beta, cot = inputs
        out = kernels.glm_vjp(self.family, beta, X, labels, weights, np.asarray(cot, np.float64))
        output_storage[0][0] = out.astype(node.outputs[0].dtype, copy=False)

    def infer_shape(self, node, shapes):
        return [(shapes[3][0],)]

    def reference(self, X, labels, weights, beta, cot):
        return [reference_vjp(self.family, X, labels, weights, beta, cot)]

    def pullback(self, inputs, outputs, output_grads):
        (ref,) = self.reference(*inputs)
        return _lop_sum([(ref, output_grads[0])], inputs)


class GLMLogpDlogp(GLMOp):
    """Summed log-likelihood and its gradient in ``beta``, one pass over ``X``.

    Outputs ``(logp, dlogp)``. The pullback of ``logp`` in ``beta`` is ``dlogp`` itself; all
    other derivatives (``X``, labels, weights, second order) use the reference expressions.
    """

    def make_node(self, X, labels, weights, beta):
        X, labels, weights, beta, _, dtype = self._check(X, labels, weights, beta)
        outs = [pt.tensor(dtype=dtype, shape=()), pt.tensor(dtype=dtype, shape=beta.type.shape)]
        return Apply(self, [X, labels, weights, beta], outs)

    def perform(self, node, inputs, output_storage):
        X, labels, weights, beta = inputs
        val, grad = kernels.glm_logp_dlogp(self.family, beta, X, labels, weights)
        output_storage[0][0] = np.asarray(val, dtype=node.outputs[0].dtype)
        output_storage[1][0] = grad.astype(node.outputs[1].dtype, copy=False)

    def infer_shape(self, node, shapes):
        return [(), (shapes[3][0],)]

    def reference(self, X, labels, weights, beta):
        if is_empty(labels):  # sufficient-statistics form: no label term
            return list(reference_no_label_logp_dlogp(self.family, X, weights, beta))
        return list(reference_logp_dlogp(self.family, X, labels, weights, beta))

    def pullback(self, inputs, outputs, output_grads):
        X, labels, weights, beta = inputs
        g_val, g_grad = output_grads
        if is_empty(labels):
            raise NotImplementedError(
                "Derivatives of the sufficient-statistics form of GLMLogpDlogp are not "
                "defined; differentiate the graph before rewriting it."
            )
        ref_val, ref_grad = self.reference(X, labels, weights, beta)
        others = _lop_sum([(ref_val, g_val), (ref_grad, g_grad)], [X, labels, weights])
        g_beta = _lop_sum([(ref_grad, g_grad)], [beta])[0]
        if _connected(g_val):
            g_beta = g_beta + g_val * outputs[1]
        return [*others, g_beta]
