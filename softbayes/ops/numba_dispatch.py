"""numba conversion of the GLM Ops (nutpie's default backend and PyMC's default linker).

Each Op becomes a small jitted wrapper around its kernel in
:mod:`softbayes.math.glm_kernels`; registering happens on import. PyTensor caches the
compiled wrappers on disk *with* the kernel code linked in, so the cache key
(:data:`KERNEL_VERSION`) hashes every source file whose code or constants are compiled into
them.
"""

from __future__ import annotations

import hashlib

import numpy as np

import softbayes.ops.glm_op as glm_op
from softbayes.math import continuous_bernoulli, glm_kernels, kernel_threads
from softbayes.ops.glm_op import GLMVJP, GLMLogpDlogp, GLMRows

__all__ = ["KERNEL_SOURCES", "KERNEL_VERSION", "kernel_version", "sources_version"]

#: The source files compiled into the numba wrappers: the kernels, the series coefficients
#: they embed, the threading switch they read, the Ops whose inputs they take, and the
#: wrappers below.
KERNEL_SOURCES = (
    glm_kernels.__file__,
    continuous_bernoulli.__file__,
    kernel_threads.__file__,
    glm_op.__file__,
    __file__,
)


def sources_version(paths, salt: str = "") -> int:
    """A 48-bit hash of the files ``paths`` (and ``salt``): the salt of PyTensor's on-disk
    numba cache key for wrappers that compile those sources in."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            digest.update(fh.read())
    digest.update(salt.encode())
    return int(digest.hexdigest()[:12], 16)


def kernel_version() -> int:
    """Salt of PyTensor's on-disk numba cache key: a hash of :data:`KERNEL_SOURCES`.

    Any change to the kernels (or to whether they run in parallel) changes the key.
    """
    return sources_version(KERNEL_SOURCES, str(kernel_threads.PARALLEL))


#: :func:`kernel_version` of this installation, computed once on import.
KERNEL_VERSION = kernel_version()


def _register_numba():
    try:
        from pytensor.link.numba.dispatch.basic import (
            numba_njit,
            register_funcify_default_op_cache_key,
        )
    except ImportError:  # pragma: no cover - numba backend missing
        return

    logp_dlogp = glm_kernels.glm_logp_dlogp
    rows_fn = glm_kernels.glm_rows
    vjp_fn = glm_kernels.glm_vjp

    @register_funcify_default_op_cache_key(GLMLogpDlogp)
    def _numba_logp_dlogp(op, node=None, **kwargs):
        family = op.family
        val_dtype = np.dtype(node.outputs[0].dtype)
        grad_dtype = np.dtype(node.outputs[1].dtype)

        @numba_njit
        def glm_logp_dlogp(X, labels, weights, beta):
            val, grad = logp_dlogp(family, beta, X, labels, weights)
            return np.asarray(val).astype(val_dtype), grad.astype(grad_dtype)

        return glm_logp_dlogp, KERNEL_VERSION

    @register_funcify_default_op_cache_key(GLMRows)
    def _numba_rows(op, node=None, **kwargs):
        family = op.family
        dtype = np.dtype(node.outputs[0].dtype)

        @numba_njit
        def glm_rows(X, labels, weights, beta):
            return rows_fn(family, beta, X, labels, weights).astype(dtype)

        return glm_rows, KERNEL_VERSION

    @register_funcify_default_op_cache_key(GLMVJP)
    def _numba_vjp(op, node=None, **kwargs):
        family = op.family
        dtype = np.dtype(node.outputs[0].dtype)

        @numba_njit
        def glm_vjp(X, labels, weights, beta, cot):
            return vjp_fn(family, beta, X, labels, weights, cot.astype(np.float64)).astype(dtype)

        return glm_vjp, KERNEL_VERSION


_register_numba()
