"""Graph rewrites that turn sums and gradients of GLM rows into one fused kernel node.

Registered (on import) in PyTensor's ``canonicalize`` and ``specialize`` databases under the
tag ``softbayes_glm``; the sufficient-statistics rewrite also under
``softbayes_glm_sufficient_statistics``, so either can be excluded by name.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Constant
from pytensor.graph.rewriting.basic import node_rewriter
from pytensor.tensor.math import Sum
from pytensor.tensor.rewriting.basic import register_canonicalize, register_specialize

from softbayes.ops.glm_op import GLMVJP, GLMLogpDlogp, GLMRows
from softbayes.ops.graph import cast_to, is_empty, scalar_broadcast_source

__all__ = [
    "SUFFICIENT_STATISTICS_MIN_SIZE",
    "fuse_glm_vjp_of_scalar",
    "fuse_sum_of_glm_rows",
    "glm_sufficient_statistics",
]

#: Rows x columns above which the sufficient-statistics rewrite is used (below it the
#: saving is nothing and the rewrite only costs compile time).
SUFFICIENT_STATISTICS_MIN_SIZE = 10_000


@register_canonicalize("softbayes_glm")
@register_specialize("softbayes_glm")
@node_rewriter([Sum])
def fuse_sum_of_glm_rows(fgraph, node):
    """``sum(GLMRows(X, l, w, beta))`` -> ``GLMLogpDlogp(X, l, w, beta)[0]``.

    The same fused node carries the gradient (see :meth:`GLMRows.pullback
    <softbayes.ops.glm_op.GLMRows.pullback>`), so after PyTensor merges identical nodes,
    value and gradient come from one pass.
    """
    (x,) = node.inputs
    if x.owner is None or not isinstance(x.owner.op, GLMRows) or x.ndim != 1:
        return None
    if node.op.axis not in (None, (0,), [0]):
        return None
    val = GLMLogpDlogp(x.owner.op.family)(*x.owner.inputs)[0]
    return [cast_to(val, node.outputs[0].dtype)]


@register_canonicalize("softbayes_glm")
@register_specialize("softbayes_glm")
@node_rewriter([GLMVJP])
def fuse_glm_vjp_of_scalar(fgraph, node):
    """``GLMVJP(X, l, w, beta, fill(s))`` -> ``s * GLMLogpDlogp(X, l, w, beta)[1]``."""
    *args, cot = node.inputs
    s = scalar_broadcast_source(cot)
    if s is None:
        return None
    out = s * GLMLogpDlogp(node.op.family)(*args)[1]
    return [cast_to(out, node.outputs[0].dtype)]


@register_specialize("softbayes_glm", "softbayes_glm_sufficient_statistics")
@node_rewriter([GLMLogpDlogp])
def glm_sufficient_statistics(fgraph, node):
    """Constant data: ``s = X^T (w l)`` once at compile time, then no labels per evaluation.

    ``GLMLogpDlogp(X, l, w, beta)`` with constant ``X``, ``l``, ``w`` becomes
    ``(s . beta + K[0], s + K[1])`` with ``K = GLMLogpDlogp(X, [], w, beta)``, which reads
    neither the labels nor multiplies by them. (Not applied to ``pm.Data`` labels, whose
    value may change between calls.)
    """
    X, labels, weights, beta = node.inputs
    if is_empty(labels) or not all(isinstance(v, Constant) for v in (X, labels, weights)):
        return None
    Xv = np.asarray(X.data)
    if Xv.size < SUFFICIENT_STATISTICS_MIN_SIZE:
        return None
    lv = np.asarray(labels.data, dtype=np.float64)
    wv = np.asarray(weights.data, dtype=np.float64)
    wl = lv if wv.size == 0 else wv * lv
    s = pt.constant(Xv.T.astype(np.float64) @ wl, name="glm_sufficient_statistic")
    no_labels = pt.constant(np.empty(0, dtype=labels.dtype), name="no_labels")
    val, grad = GLMLogpDlogp(node.op.family)(X, no_labels, weights, beta)
    outs = node.outputs
    return [cast_to(val + pt.dot(s, beta), outs[0].dtype), cast_to(grad + s, outs[1].dtype)]
