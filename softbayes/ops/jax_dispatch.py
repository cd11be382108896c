"""JAX conversion of the GLM Ops, registered when PyTensor's JAX dispatch is imported.

For the JAX backend (nutpie with ``backend="jax"``, ``pm.sample(nuts_sampler="numpyro" |
"blackjax")``, ``mode="JAX"``) each Op is converted from :func:`jax_expression`, a PyTensor
expression of its outputs in the form XLA runs fastest (measured against the reference
expressions of :meth:`GLMOp.reference <softbayes.ops.glm_op.GLMOp.reference>`): the linear
predictor and the gradient as elementwise products reduced over a row or a column (one fused
loop each, where a matrix-vector product costs 2.5x as much at n = 1e6, d = 10), and for
the weighted Bernoulli one ``exp(-|eta|)`` per row shared by the softplus and the sigmoid,
as in the numba kernels (:mod:`softbayes.math.glm_kernels`). Importing PyTensor's JAX
dispatch imports JAX (seconds), so this module does not import it: it registers the
conversions once something else does, and ``import softbayes`` stays light.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

import pytensor.tensor as pt
from pytensor.graph.fg import FunctionGraph
from pytensor.scalar import upcast

from softbayes.math.continuous_bernoulli import cb_logp, cb_mean
from softbayes.math.glm_kernels import CONTINUOUS_BERNOULLI, WEIGHTED_BERNOULLI
from softbayes.ops.glm_op import GLMVJP, GLMLogpDlogp, GLMRows
from softbayes.ops.graph import cast_to, is_empty

__all__ = ["JAX_DISPATCH", "jax_expression", "jax_fgraph", "register_jax", "row_terms"]

#: The module whose import triggers :func:`register_jax`.
JAX_DISPATCH = "pytensor.link.jax.dispatch"


def _wb_terms(labels, eta):
    # l eta - softplus(eta) and l - sigmoid(eta) from e = exp(-|eta|): softplus(-|eta|) =
    # log1p(e), sigmoid(-|eta|) = e / (1 + e); both value terms have the sign of -|eta|.
    e = pt.exp(-pt.abs(eta))
    pos = pt.gt(eta, 0.0)
    value = pt.switch(pos, (labels - 1.0) * eta, labels * eta) - pt.log1p(e)
    return value, labels - pt.switch(pos, 1.0, e) / (1.0 + e)


def _cb_terms(labels, eta):
    return cb_logp(labels, eta), labels - cb_mean(eta)


_TERMS = {WEIGHTED_BERNOULLI: _wb_terms, CONTINUOUS_BERNOULLI: _cb_terms}


def row_terms(code, labels, eta):
    """``(l eta - A(eta), l - A'(eta))`` per row, for the kernel ``code``."""
    return _TERMS[code](labels, eta)


def jax_expression(op, inputs):
    """The outputs of the GLM Op ``op`` on ``inputs`` as the PyTensor expression that is
    converted to JAX (the same values as :meth:`GLMOp.reference
    <softbayes.ops.glm_op.GLMOp.reference>`)."""
    X, labels, weights, beta, *cot = inputs
    dtype = upcast(X.dtype, beta.dtype)
    eta = pt.sum(cast_to(X, dtype) * beta[None, :], axis=1)
    lab = pt.zeros_like(eta) if is_empty(labels) else labels
    value, slope = row_terms(op.family, lab, eta)
    if not is_empty(weights):
        value, slope = weights * value, weights * slope
    if isinstance(op, GLMRows):
        return [value]
    if isinstance(op, GLMVJP):
        return [pt.sum(cast_to(X, dtype) * (cot[0] * slope)[:, None], axis=0)]
    return [pt.sum(value), pt.sum(cast_to(X, dtype) * slope[:, None], axis=0)]


def jax_fgraph(op, node):
    """:func:`jax_expression` of the node on fresh inputs, as a FunctionGraph."""
    inputs = [i.type() for i in node.inputs]
    outs = [cast_to(o, n.dtype)
            for o, n in zip(jax_expression(op, inputs), node.outputs, strict=True)]
    return FunctionGraph(inputs, outs, clone=False)


def register_jax():
    """Register the JAX conversions of the GLM Ops (a no-op when JAX is missing)."""
    try:
        from pytensor.link.jax.dispatch import jax_funcify
    except ImportError:  # jax missing
        return

    def _funcify(op, node=None, **kwargs):
        fgraph = jax_fgraph(op, node)
        # The JAX linker's own rewrites would be applied to the outer graph only; this
        # graph needs none (plain elementwise math and sums).
        inner = jax_funcify(fgraph, **{k: v for k, v in kwargs.items() if k != "storage_map"})

        if len(node.outputs) == 1:
            def glm_op(*args):
                return inner(*args)[0]

            return glm_op
        return inner

    for op_type in (GLMRows, GLMVJP, GLMLogpDlogp):
        jax_funcify.register(op_type)(_funcify)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Run ``callback`` once module ``name`` has been imported (without importing it)."""

    def __init__(self, name, callback):
        self.name = name
        self.callback = callback

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        callback = self.callback
        exec_module = loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            callback()

        loader.exec_module = exec_then_register
        return spec


if JAX_DISPATCH in sys.modules:
    register_jax()
else:
    sys.meta_path.insert(0, _AfterImport(JAX_DISPATCH, register_jax))
