"""Small PyTensor graph helpers shared by the GLM Ops, their rewrites and their dispatch."""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Constant
from pytensor.tensor.basic import Alloc
from pytensor.tensor.elemwise import DimShuffle, Elemwise

__all__ = ["cast_to", "is_empty", "scalar_broadcast_source"]


def is_empty(var) -> bool:
    """Whether a vector input has static length 0 (unit weights, or no label term)."""
    return var.type.shape[0] == 0


def cast_to(var, dtype):
    """``var`` cast to ``dtype`` (``var`` itself when it already has that dtype)."""
    return var if var.dtype == dtype else pt.cast(var, dtype)


def _squeezed(src):
    if all(src.type.broadcastable):
        return src.reshape(()) if src.ndim else src
    return None


def scalar_broadcast_source(var):
    """The scalar ``s`` when ``var`` is ``s`` broadcast to a vector; else None.

    Recognizes constants with one repeated value, ``second(x, s)`` (what ``ones_like``-style
    fills become), ``alloc(s, n)`` and a scalar ``DimShuffle``d to a vector: the forms in
    which the cotangent of a sum reaches the per-row terms.
    """
    if isinstance(var, Constant):
        data = np.asarray(var.data)
        if data.size > 0 and np.all(data == data.flat[0]):
            return pt.constant(data.flat[0], dtype=var.dtype)
        return None
    owner = var.owner
    if owner is None:
        return None
    op = owner.op
    if isinstance(op, Elemwise) and type(op.scalar_op).__name__ == "Second":
        return _squeezed(owner.inputs[1])
    if isinstance(op, Alloc):
        return _squeezed(owner.inputs[0])
    if isinstance(op, DimShuffle) and owner.inputs[0].ndim == 0:
        return owner.inputs[0]
    return None
