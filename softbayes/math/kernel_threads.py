"""Whether the fused GLM kernels run blocks of rows on several threads (numba's layer).

The kernels of :mod:`softbayes.math.glm_kernels` read :data:`PARALLEL` when they are
compiled. Importing this module also loads numba's threading layer when it is used.
"""

from __future__ import annotations

import os

import numba

__all__ = ["PARALLEL"]


def _threadsafe_layer_available() -> bool:
    # nutpie and PyMC call the compiled logp from one thread per chain at once. numba's
    # workqueue layer aborts on concurrent parallel launches; OpenMP and TBB do not.
    layer = str(numba.config.THREADING_LAYER).lower()
    if layer == "workqueue":
        return False
    for mod in ("numba.np.ufunc.omppool", "numba.np.ufunc.tbbpool"):
        try:
            __import__(mod)
            return True
        except Exception:  # missing library (libgomp / libtbb)
            continue
    return False


#: Whether the kernels run blocks in parallel (needs numba's OpenMP or TBB threading layer;
#: the environment variable ``SOFTBAYES_KERNEL_PARALLEL=0`` turns it off).
PARALLEL = os.environ.get("SOFTBAYES_KERNEL_PARALLEL", "1") != "0" and (
    _threadsafe_layer_available()
)


def _ensure_threading_layer():
    # Compiled code that contains the kernels may be loaded from an on-disk cache (numba's,
    # or PyTensor's for a whole graph) without numba having loaded its threading layer; the
    # parallel code would then call through null pointers. Loading it here is cheap (no
    # threads start until a parallel region runs).
    if PARALLEL:
        from numba.np.ufunc.parallel import _launch_threads

        _launch_threads()


_ensure_threading_layer()
