r"""Fast likelihoods for GLM-shaped soft-label models: PyTensor Ops on fused kernels.

The soft-label logistic regression and the continuous Bernoulli GLM have log-likelihoods of
the form :math:`\sum_i w_i [l_i \eta_i - A(\eta_i)]` with :math:`\eta = X\beta`. Written as
an ordinary PyTensor graph (``pt.sum(w * soft_bernoulli_logp(l, X @ beta))``) one evaluation
of the log-density and its gradient costs several passes over the data: ``X @ beta``, one
elementwise loop per operation, ``X.T @ (...)`` for the gradient. Here the same quantity is
one pass: :mod:`softbayes.math.glm_kernels` computes, per row, ``eta``, one ``exp``, the
row's value and its contribution to the gradient, in parallel over blocks of rows.

How it enters a model
---------------------
:func:`soft_logistic_glm_rows` / :func:`continuous_bernoulli_glm_rows` return the vector of
weighted per-row terms as one node (:class:`GLMRows`); its value is the reference
elementwise expression. The summed builders :func:`soft_logistic_glm_logp` /
:func:`continuous_bernoulli_glm_logp` return ``pt.sum`` of it, so a ``pm.Potential`` built on
them is still a sum of rows (what :func:`softbayes.compute_log_likelihood` reads back for the
pointwise log-likelihood). When PyTensor compiles the model:

* the gradient of the rows with respect to ``beta`` under a sum (what ``pt.grad`` of a
  log-density produces) is built directly as the gradient output of :class:`GLMLogpDlogp`;
* a graph rewrite replaces ``sum(GLMRows(...))`` by the value output of the same node;

so the compiled logp+gradient function (PyMC's ``logp_dlogp_function``, nutpie's numba
backend, PyMC's NUTS) evaluates one fused node. The pointwise log-likelihood compiles
:class:`GLMRows` alone (one pass, no gradient). For the JAX backend (nutpie with
``backend="jax"``, ``pm.sample(nuts_sampler="numpyro" | "blackjax")``) each Op is converted
from its reference PyTensor expression, so JAX differentiates and fuses it itself.

Gradients with respect to ``X``, the labels and the weights, and second derivatives, come
from the reference expressions (correct, not fused).

:func:`aggregate_rows` collapses identical covariate rows into one row with the weighted
mean label and the summed weight; the log-likelihood (of both families) is unchanged, and
the work per evaluation shrinks with the number of distinct rows.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, pullback
from pytensor.graph.basic import Apply, Constant
from pytensor.graph.fg import FunctionGraph
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import node_rewriter
from pytensor.scalar import upcast
from pytensor.tensor.basic import Alloc
from pytensor.tensor.elemwise import DimShuffle, Elemwise
from pytensor.tensor.math import Sum
from pytensor.tensor.rewriting.basic import register_canonicalize, register_specialize

from softbayes.math import glm_kernels as _k
from softbayes.math.continuous_bernoulli import cb_logp, cb_mean
from softbayes.math.soft_labels import soft_bernoulli_logp

__all__ = [
    "FAMILY_CODES",
    "GLMVJP",
    "SUFFICIENT_STATISTICS_MIN_SIZE",
    "GLMLogpDlogp",
    "GLMRows",
    "aggregate_rows",
    "continuous_bernoulli_glm_logp",
    "continuous_bernoulli_glm_rows",
    "glm_logp",
    "glm_rows",
    "soft_logistic_glm_logp",
    "soft_logistic_glm_rows",
]

#: Family names accepted by :func:`glm_rows` / :func:`glm_logp` and their kernel codes.
FAMILY_CODES = {
    "weighted_bernoulli": _k.WEIGHTED_BERNOULLI,
    "continuous_bernoulli": _k.CONTINUOUS_BERNOULLI,
}
_FAMILY_NAMES = {v: k for k, v in FAMILY_CODES.items()}

def _kernel_version() -> int:
    # Part of PyTensor's on-disk numba cache key: PyTensor caches the compiled wrapper *with*
    # the kernel code linked in, so any change to the kernels must change the key.
    import hashlib

    digest = hashlib.sha256()
    for path in (_k.__file__, __file__):
        with open(path, "rb") as fh:
            digest.update(fh.read())
    digest.update(str(_k.PARALLEL).encode())
    return int(digest.hexdigest()[:12], 16)


_KERNEL_VERSION = _kernel_version()


# --------------------------------------------------------------------------------------------
# Reference expressions (PyTensor), the definition of every Op below
# --------------------------------------------------------------------------------------------
def _empty(v) -> bool:
    return v.type.shape[0] == 0


def _ref_eta(X, beta):
    return pt.dot(X, beta)


def _ref_rows(family, X, labels, weights, beta):
    """Weighted per-row terms, from the elementwise math of softbayes.math."""
    eta = _ref_eta(X, beta)
    if _empty(labels):
        raise ValueError("The reference rows need the labels.")
    if family == _k.WEIGHTED_BERNOULLI:
        rows = soft_bernoulli_logp(labels, eta)
    else:
        rows = cb_logp(labels, eta)
    return rows if _empty(weights) else weights * rows


def _ref_mean(family, eta):
    return pt.sigmoid(eta) if family == _k.WEIGHTED_BERNOULLI else cb_mean(eta)


def _ref_dlogp_terms(family, X, labels, weights, beta):
    """d rows / d eta (the factor multiplying each row of X in the gradient)."""
    eta = _ref_eta(X, beta)
    resid = labels - _ref_mean(family, eta)
    return resid if _empty(weights) else weights * resid


def _ref_vjp(family, X, labels, weights, beta, cot):
    return pt.dot(X.T, cot * _ref_dlogp_terms(family, X, labels, weights, beta))


def _ref_logp_dlogp(family, X, labels, weights, beta):
    rows = _ref_rows(family, X, labels, weights, beta)
    return pt.sum(rows), pt.dot(X.T, _ref_dlogp_terms(family, X, labels, weights, beta))


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
        pt.zeros_like(w) if t is None else pt.cast(t, w.dtype) if t.dtype != w.dtype else t
        for t, w in zip(total, wrt, strict=True)
    ]


def _scalar_broadcast_source(var):
    """The scalar ``s`` when ``var`` is ``s`` broadcast to a vector; else None."""
    if isinstance(var, Constant):
        data = np.asarray(var.data)
        if data.size > 0 and np.all(data == data.flat[0]):
            return pt.constant(data.flat[0], dtype=var.dtype)
        return None
    owner = var.owner
    if owner is None:
        return None
    op = owner.op

    def _squeezed(src):
        if all(src.type.broadcastable):
            return src.reshape(()) if src.ndim else src
        return None

    if isinstance(op, Elemwise) and type(op.scalar_op).__name__ == "Second":
        return _squeezed(owner.inputs[1])
    if isinstance(op, Alloc):
        return _squeezed(owner.inputs[0])
    if isinstance(op, DimShuffle) and owner.inputs[0].ndim == 0:
        return owner.inputs[0]
    return None


# --------------------------------------------------------------------------------------------
# The Ops
# --------------------------------------------------------------------------------------------
class _GLMOp(Op):
    """Shared plumbing: inputs ``(X, labels, weights, beta[, cot])``.

    ``labels`` and ``weights`` are vectors of length n; a length-0 ``weights`` means unit
    weights, a length-0 ``labels`` (only inside :class:`GLMLogpDlogp`, produced by the
    sufficient-statistics rewrite) drops the label term.
    """

    __props__ = ("family",)
    _n_extra = 0

    def __init__(self, family):
        family = FAMILY_CODES.get(family, family)
        if family not in _FAMILY_NAMES:
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

    def __str__(self):
        return f"{type(self).__name__}{{{_FAMILY_NAMES[self.family]}}}"


class GLMRows(_GLMOp):
    """Weighted per-row log-likelihood terms ``w_i [l_i eta_i - A(eta_i)]``, ``eta = X beta``."""

    def make_node(self, X, labels, weights, beta):
        X, labels, weights, beta, _, dtype = self._check(X, labels, weights, beta)
        out = pt.tensor(dtype=dtype, shape=(X.type.shape[0],))
        return Apply(self, [X, labels, weights, beta], [out])

    def perform(self, node, inputs, output_storage):
        X, labels, weights, beta = inputs
        out = _k.glm_rows(self.family, beta, X, labels, weights)
        output_storage[0][0] = out.astype(node.outputs[0].dtype, copy=False)

    def infer_shape(self, node, shapes):
        return [(shapes[0][0],)]

    def pullback(self, inputs, outputs, output_grads):
        X, labels, weights, beta = inputs
        (g,) = output_grads
        s = _scalar_broadcast_source(g)
        if s is not None:
            # The gradient of a sum of rows: the gradient output of the fused node.
            g_beta = s * GLMLogpDlogp(self.family)(X, labels, weights, beta)[1]
        else:
            g_beta = GLMVJP(self.family)(X, labels, weights, beta, g)
        g_beta = pt.cast(g_beta, beta.dtype) if g_beta.dtype != beta.dtype else g_beta
        rows = _ref_rows(self.family, X, labels, weights, beta)
        others = _lop_sum([(rows, g)], [X, labels, weights])
        return [*others, g_beta]


class GLMVJP(_GLMOp):
    """``X^T [cot * w * (l - A'(eta))]``: the gradient of ``dot(cot, rows)`` in ``beta``."""

    def make_node(self, X, labels, weights, beta, cot):
        X, labels, weights, beta, (cot,), dtype = self._check(X, labels, weights, beta, cot)
        out = pt.tensor(dtype=dtype, shape=(beta.type.shape[0],))
        return Apply(self, [X, labels, weights, beta, cot], [out])

    def perform(self, node, inputs, output_storage):
        X, labels, weights, beta, cot = inputs
        out = _k.glm_vjp(self.family, beta, X, labels, weights, np.asarray(cot, np.float64))
        output_storage[0][0] = out.astype(node.outputs[0].dtype, copy=False)

    def infer_shape(self, node, shapes):
        return [(shapes[3][0],)]

    def pullback(self, inputs, outputs, output_grads):
        X, labels, weights, beta, cot = inputs
        ref = _ref_vjp(self.family, X, labels, weights, beta, cot)
        return _lop_sum([(ref, output_grads[0])], inputs)


class GLMLogpDlogp(_GLMOp):
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
        val, grad = _k.glm_logp_dlogp(self.family, beta, X, labels, weights)
        output_storage[0][0] = np.asarray(val, dtype=node.outputs[0].dtype)
        output_storage[1][0] = grad.astype(node.outputs[1].dtype, copy=False)

    def infer_shape(self, node, shapes):
        return [(), (shapes[3][0],)]

    def pullback(self, inputs, outputs, output_grads):
        X, labels, weights, beta = inputs
        g_val, g_grad = output_grads
        if _empty(labels):
            raise NotImplementedError(
                "Derivatives of the sufficient-statistics form of GLMLogpDlogp are not "
                "defined; differentiate the graph before rewriting it."
            )
        ref_val, ref_grad = _ref_logp_dlogp(self.family, X, labels, weights, beta)
        others = _lop_sum([(ref_val, g_val), (ref_grad, g_grad)], [X, labels, weights])
        g_beta = _lop_sum([(ref_grad, g_grad)], [beta])[0]
        if _connected(g_val):
            g_beta = g_beta + g_val * outputs[1]
        return [*others, g_beta]


# --------------------------------------------------------------------------------------------
# Rewrites: sum(rows) -> the value output of the fused node
# --------------------------------------------------------------------------------------------
@register_canonicalize("softbayes_glm")
@register_specialize("softbayes_glm")
@node_rewriter([Sum])
def fuse_sum_of_glm_rows(fgraph, node):
    """``sum(GLMRows(X, l, w, beta))`` -> ``GLMLogpDlogp(X, l, w, beta)[0]``.

    The same fused node carries the gradient (see :meth:`GLMRows.pullback`), so after
    PyTensor merges identical nodes, value and gradient come from one pass.
    """
    (x,) = node.inputs
    if x.owner is None or not isinstance(x.owner.op, GLMRows) or x.ndim != 1:
        return None
    if node.op.axis not in (None, (0,), [0]):
        return None
    val = GLMLogpDlogp(x.owner.op.family)(*x.owner.inputs)[0]
    out = node.outputs[0]
    if val.dtype != out.dtype:
        val = pt.cast(val, out.dtype)
    return [val]


@register_canonicalize("softbayes_glm")
@register_specialize("softbayes_glm")
@node_rewriter([GLMVJP])
def fuse_glm_vjp_of_scalar(fgraph, node):
    """``GLMVJP(X, l, w, beta, fill(s))`` -> ``s * GLMLogpDlogp(X, l, w, beta)[1]``."""
    *args, cot = node.inputs
    s = _scalar_broadcast_source(cot)
    if s is None:
        return None
    out = s * GLMLogpDlogp(node.op.family)(*args)[1]
    if out.dtype != node.outputs[0].dtype:
        out = pt.cast(out, node.outputs[0].dtype)
    return [out]


#: Rows x columns above which the sufficient-statistics rewrite is used (below it the
#: saving is nothing and the rewrite only costs compile time).
SUFFICIENT_STATISTICS_MIN_SIZE = 10_000


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
    if _empty(labels) or not all(isinstance(v, Constant) for v in (X, labels, weights)):
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
    new_val = val + pt.dot(s, beta)
    new_grad = grad + s
    outs = node.outputs
    return [
        pt.cast(new_val, outs[0].dtype) if new_val.dtype != outs[0].dtype else new_val,
        pt.cast(new_grad, outs[1].dtype) if new_grad.dtype != outs[1].dtype else new_grad,
    ]


# --------------------------------------------------------------------------------------------
# Backends: numba (nutpie's default, PyMC's default linker) and JAX
# --------------------------------------------------------------------------------------------
def _register_numba():
    try:
        from pytensor.link.numba.dispatch.basic import (
            numba_njit,
            register_funcify_default_op_cache_key,
        )
    except ImportError:  # pragma: no cover - numba backend missing
        return

    logp_dlogp, rows_fn, vjp_fn = _k.glm_logp_dlogp, _k.glm_rows, _k.glm_vjp

    @register_funcify_default_op_cache_key(GLMLogpDlogp)
    def _numba_logp_dlogp(op, node=None, **kwargs):
        family = op.family
        val_dtype = np.dtype(node.outputs[0].dtype)
        grad_dtype = np.dtype(node.outputs[1].dtype)

        @numba_njit
        def glm_logp_dlogp(X, labels, weights, beta):
            val, grad = logp_dlogp(family, beta, X, labels, weights)
            return np.asarray(val).astype(val_dtype), grad.astype(grad_dtype)

        return glm_logp_dlogp, _KERNEL_VERSION

    @register_funcify_default_op_cache_key(GLMRows)
    def _numba_rows(op, node=None, **kwargs):
        family = op.family
        dtype = np.dtype(node.outputs[0].dtype)

        @numba_njit
        def glm_rows(X, labels, weights, beta):
            return rows_fn(family, beta, X, labels, weights).astype(dtype)

        return glm_rows, _KERNEL_VERSION

    @register_funcify_default_op_cache_key(GLMVJP)
    def _numba_vjp(op, node=None, **kwargs):
        family = op.family
        dtype = np.dtype(node.outputs[0].dtype)

        @numba_njit
        def glm_vjp(X, labels, weights, beta, cot):
            return vjp_fn(family, beta, X, labels, weights, cot.astype(np.float64)).astype(dtype)

        return glm_vjp, _KERNEL_VERSION


def _reference_fgraph(op, node):
    """The node's reference expression on fresh inputs, as a FunctionGraph."""
    inputs = [i.type() for i in node.inputs]
    family = op.family
    if isinstance(op, GLMRows):
        outs = [_ref_rows(family, *inputs)]
    elif isinstance(op, GLMVJP):
        outs = [_ref_vjp(family, *inputs)]
    else:
        X, labels, weights, beta = inputs
        if _empty(labels):  # sufficient-statistics form: no label term
            eta = _ref_eta(X, beta)
            zero = pt.zeros_like(eta)
            neg_a = (
                soft_bernoulli_logp(zero, eta)
                if family == _k.WEIGHTED_BERNOULLI
                else cb_logp(zero, eta)
            )
            neg_mean = -_ref_mean(family, eta)
            if not _empty(weights):
                neg_a, neg_mean = weights * neg_a, weights * neg_mean
            outs = [pt.sum(neg_a), pt.dot(X.T, neg_mean)]
        else:
            outs = list(_ref_logp_dlogp(family, *inputs))
    outs = [pt.cast(o, n.dtype) if o.dtype != n.dtype else o
            for o, n in zip(outs, node.outputs, strict=True)]
    return FunctionGraph(inputs, outs, clone=False)


def _register_jax():
    try:
        from pytensor.link.jax.dispatch import jax_funcify
    except ImportError:  # jax missing
        return

    def _funcify(op, node=None, **kwargs):
        fgraph = _reference_fgraph(op, node)
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
    """Run ``callback`` once module ``name`` has been imported (without importing it).

    Importing PyTensor's JAX dispatch imports JAX (seconds). The JAX conversions of the Ops
    are registered when something else (PyMC's numpyro/blackjax samplers, nutpie's JAX
    backend, ``mode="JAX"``) imports it, so ``import softbayes`` stays light.
    """

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


_register_numba()
_JAX_DISPATCH = "pytensor.link.jax.dispatch"
if _JAX_DISPATCH in sys.modules:
    _register_jax()
else:
    sys.meta_path.insert(0, _AfterImport(_JAX_DISPATCH, _register_jax))


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------
def _as_data(x, name, dtype):
    """A numeric array (becomes a constant) or a PyTensor variable (e.g. pm.Data) as is."""
    if isinstance(x, pytensor.graph.basic.Variable):
        return x if dtype is None or x.dtype == dtype else pt.cast(x, dtype)
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    if name == "X":
        arr = np.ascontiguousarray(arr)
    return pt.constant(arr, name=name)


def glm_rows(family, X, labels, beta, weights=None, *, dtype=None):
    r"""Weighted per-row terms of a GLM soft-label likelihood, as one fused node.

    Parameters
    ----------
    family : {"weighted_bernoulli", "continuous_bernoulli"}
    X : array_like (n, d) or TensorVariable
        Design matrix. A NumPy array becomes a C-contiguous constant.
    labels : array_like (n,) or TensorVariable (e.g. ``pm.Data``)
        Soft labels in [0, 1] (not validated here: see :mod:`softbayes.data.validation`).
    beta : TensorVariable (d,)
        Coefficients.
    weights : array_like (n,) or TensorVariable, optional
        Non-negative row weights; None for unit weights.
    dtype : {"float32", "float64"}, optional
        Store ``X`` in this dtype (``"float32"`` halves the memory read per evaluation; the
        kernels accumulate in float64, the likelihood is exact for the rounded ``X``).

    Returns
    -------
    TensorVariable, shape (n,)
        ``w_i [l_i eta_i - A(eta_i)]``: for ``weighted_bernoulli`` the soft-label
        cross-entropy term (``A = softplus``), for ``continuous_bernoulli`` the log density
        (``A`` = :func:`~softbayes.math.continuous_bernoulli.cb_log_partition`).
    """
    X = _as_data(X, "X", dtype)
    labels = _as_data(labels, "labels", None)
    weights = (
        pt.constant(np.empty(0, dtype=labels.dtype), name="unit_weights")
        if weights is None
        else _as_data(weights, "weights", None)
    )
    beta = pt.as_tensor_variable(beta)
    return GLMRows(family)(X, labels, weights, beta)


def glm_logp(family, X, labels, beta, weights=None, *, dtype=None):
    """``pt.sum(glm_rows(...))``: the summed log-likelihood (see :func:`glm_rows`).

    Compiled together with its gradient, it runs as one fused pass over ``X``.
    """
    return pt.sum(glm_rows(family, X, labels, beta, weights, dtype=dtype))


def soft_logistic_glm_rows(X, labels, beta, weights=None, *, dtype=None):
    """Per-row ``w_i [l_i eta_i - softplus(eta_i)]``, ``eta = X @ beta`` (fused node).

    Drop-in for ``w * soft_bernoulli_logp(labels, X @ beta)``.
    """
    return glm_rows("weighted_bernoulli", X, labels, beta, weights, dtype=dtype)


def soft_logistic_glm_logp(X, labels, beta, weights=None, *, dtype=None):
    """Summed soft-label logistic log-likelihood, fused with its gradient when compiled.

    Drop-in for ``pt.sum(w * soft_bernoulli_logp(labels, X @ beta))``.
    """
    return glm_logp("weighted_bernoulli", X, labels, beta, weights, dtype=dtype)


def continuous_bernoulli_glm_rows(X, labels, beta, weights=None, *, dtype=None):
    """Per-row continuous Bernoulli log density ``w_i cb_logp(l_i, eta_i)`` (fused node)."""
    return glm_rows("continuous_bernoulli", X, labels, beta, weights, dtype=dtype)


def continuous_bernoulli_glm_logp(X, labels, beta, weights=None, *, dtype=None):
    """Summed continuous Bernoulli GLM log-likelihood, fused with its gradient when compiled.

    Drop-in for ``pt.sum(w * cb_logp(labels, X @ beta))``.
    """
    return glm_logp("continuous_bernoulli", X, labels, beta, weights, dtype=dtype)


# --------------------------------------------------------------------------------------------
# Exact aggregation of identical rows
# --------------------------------------------------------------------------------------------
def aggregate_rows(X, labels, weights=None):
    """Collapse identical covariate rows exactly.

    Rows of ``X`` that are equal (bitwise, as float64) become one row whose weight is the sum
    of their weights and whose label is their weighted mean label. Both GLM likelihoods are
    linear in the label given ``eta``, so

    ``sum_i w_i [l_i eta_i - A(eta_i)] = sum_g W_g [L_g eta_g - A(eta_g)]``

    for every ``beta`` (up to rounding): the same posterior from fewer rows. A group whose
    weights are all zero keeps weight 0 and the plain mean label.

    Parameters
    ----------
    X : array_like, shape (n, d)
    labels : array_like, shape (n,)
    weights : array_like, shape (n,), optional
        Unit weights if None.

    Returns
    -------
    X_agg : ndarray (m, d)
        The distinct rows, in order of first appearance.
    labels_agg : ndarray (m,)
    weights_agg : ndarray (m,)
    index : ndarray of int64 (n,)
        Row ``i`` of the input is row ``index[i]`` of the output.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X: expected a 2-D array, got shape {X.shape}.")
    n = X.shape[0]
    lab = np.asarray(labels, dtype=np.float64)
    if lab.shape != (n,):
        raise ValueError(f"labels: expected shape ({n},), got {lab.shape}.")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights: expected shape ({n},), got {w.shape}.")
    # -0.0 and 0.0 are the same covariate value; compare bytes after normalizing them.
    Xc = np.ascontiguousarray(X + 0.0)
    keys = Xc.view(np.dtype((np.void, Xc.dtype.itemsize * Xc.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    # Order groups by first appearance.
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    index = rank[inverse.ravel()].astype(np.int64)
    m = order.size
    w_sum = np.bincount(index, weights=w, minlength=m)
    wl_sum = np.bincount(index, weights=w * lab, minlength=m)
    count = np.bincount(index, minlength=m)
    l_plain = np.bincount(index, weights=lab, minlength=m) / count
    with np.errstate(invalid="ignore", divide="ignore"):
        l_agg = np.where(w_sum > 0, wl_sum / np.where(w_sum > 0, w_sum, 1.0), l_plain)
    # Rounding can push a mean of labels in [0, 1] an ulp outside; the labels are exact
    # probabilities, so clip that ulp back.
    l_agg = np.clip(l_agg, 0.0, 1.0)
    return X[first[order]], l_agg, w_sum, index


# --------------------------------------------------------------------------------------------
# Model-level builders
# --------------------------------------------------------------------------------------------
def WeightedBernoulliGLM(
    name, *, X, labels, beta, weights=None, obs_index=None, dims=None, dtype=None, model=None
):
    r"""The soft-label logistic regression term as a registered ``pm.Potential``, fused.

    Same term, registration and pointwise log-likelihood as
    ``softbayes.WeightedBernoulli(name, labels=labels, logit_p=X @ beta, weights=weights, ...)``
    (see :func:`softbayes.WeightedBernoulli`), for a linear predictor ``eta = X @ beta``: the
    Potential is ``pt.sum`` of :func:`soft_logistic_glm_rows`, which compiles to one fused
    pass over ``X`` for the log-density and its gradient, and
    :func:`softbayes.compute_log_likelihood` evaluates its rows.

    Parameters
    ----------
    X : array_like (n_rows, d) or TensorVariable
    labels : array_like (n_rows,) or pm.Data
        Validated as in :func:`softbayes.WeightedBernoulli`, never clipped.
    beta : TensorVariable (d,)
    weights, obs_index, dims, model
        As in :func:`softbayes.WeightedBernoulli`.
    dtype : {"float32", "float64"}, optional
        Storage dtype of ``X`` (see :func:`glm_rows`).
    """
    from pymc.model import modelcontext

    from softbayes.data.validation import validate_soft_labels
    from softbayes.distributions.potentials import _label_values, _register, _weight_values

    model = modelcontext(model)
    values, symbolic = _label_values(labels, name)
    lab = validate_soft_labels(values, name=name)
    if lab.ndim != 1:
        raise ValueError(f"{name}: WeightedBernoulliGLM takes 1-D labels, got shape {lab.shape}.")
    n_rows = lab.shape[0]
    if np.shape(X)[0] != n_rows if not isinstance(X, pytensor.graph.basic.Variable) else False:
        raise ValueError(f"{name}: X has {np.shape(X)[0]} rows but there are {n_rows} labels.")
    w, w_symbolic = _weight_values(weights, n_rows)  # pm.Data weights stay symbolic
    rows = soft_logistic_glm_rows(X, lab if symbolic is None else symbolic, beta,
                                  w if w_symbolic is None else w_symbolic, dtype=dtype)
    return _register(name, "bernoulli", rows, n_rows, obs_index, dims, model)


def ContinuousBernoulliGLM(name, *, X, beta, observed, weights=None, dims=None, dtype=None):
    r"""Continuous Bernoulli regression ``y_i ~ CB(logit lambda_i = x_i beta)``, fused.

    An observed random variable (so ``pm.compute_log_likelihood`` and
    :func:`softbayes.compute_log_likelihood` see it) whose log density is
    :func:`continuous_bernoulli_glm_rows`; PyMC sums it into the model's logp, which then
    compiles to one fused pass over ``X`` with its gradient. Draws (prior and posterior
    predictive) come from the inverse CDF.

    ``weights`` multiply the log density of each row (a weighted pseudo-likelihood; use
    them for exact aggregation, see :func:`aggregate_rows`).
    """
    import pymc as pm

    from softbayes.math.continuous_bernoulli import cb_icdf

    X = _as_data(X, "X", dtype)
    beta = pt.as_tensor_variable(beta)
    w = (
        pt.constant(np.empty(0), name="unit_weights")
        if weights is None
        else _as_data(weights, "weights", None)
    )

    def logp(value, X, w, beta):
        return GLMRows("continuous_bernoulli")(X, value, w, beta)

    def random(X, w, beta, rng=None, size=None):
        eta = np.asarray(X) @ np.asarray(beta)
        return cb_icdf(rng.random(size=size if size is not None else eta.shape), eta)

    return pm.CustomDist(
        name, X, w, beta, logp=logp, random=random, observed=observed, dims=dims,
        signature="(n,d),(m),(d)->(n)",
    )
