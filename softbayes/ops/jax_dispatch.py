"""JAX conversion of the GLM Ops, registered when PyTensor's JAX dispatch is imported.

For the JAX backend (nutpie with ``backend="jax"``, ``pm.sample(nuts_sampler="numpyro" |
"blackjax")``, ``mode="JAX"``) each Op is converted from its reference PyTensor expression
(:meth:`GLMOp.reference <softbayes.ops.glm_op.GLMOp.reference>`), so JAX differentiates and
fuses it itself. Importing PyTensor's JAX dispatch imports JAX (seconds), so this module
does not import it: it registers the conversions once something else does, and
``import softbayes`` stays light.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

from pytensor.graph.fg import FunctionGraph

from softbayes.ops.glm_op import GLMVJP, GLMLogpDlogp, GLMRows
from softbayes.ops.graph import cast_to

__all__ = ["JAX_DISPATCH", "reference_fgraph", "register_jax"]

#: The module whose import triggers :func:`register_jax`.
JAX_DISPATCH = "pytensor.link.jax.dispatch"


def reference_fgraph(op, node):
    """The node's reference expression on fresh inputs, as a FunctionGraph."""
    inputs = [i.type() for i in node.inputs]
    outs = [cast_to(o, n.dtype)
            for o, n in zip(op.reference(*inputs), node.outputs, strict=True)]
    return FunctionGraph(inputs, outs, clone=False)


def register_jax():
    """Register the JAX conversions of the GLM Ops (a no-op when JAX is missing)."""
    try:
        from pytensor.link.jax.dispatch import jax_funcify
    except ImportError:  # jax missing
        return

    def _funcify(op, node=None, **kwargs):
        fgraph = reference_fgraph(op, node)
        # The JAX linker's own rewrites would be applied to the outer graph only; the
        # reference graph needs none (plain elementwise math, dot, sum).
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
