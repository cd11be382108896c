"""PyTensor Ops, graph rewrites and numba/JAX dispatch of the fused GLM likelihood kernels.

* :mod:`~softbayes.ops.glm_op` -- the Ops (:class:`GLMRows`, :class:`GLMLogpDlogp`,
  :class:`GLMVJP`) and the kernel names they accept (:data:`FAMILY_CODES`);
* :mod:`~softbayes.ops.reference` -- their reference PyTensor expressions;
* :mod:`~softbayes.ops.rewrites` -- ``sum(rows)`` and its gradient -> one fused node;
* :mod:`~softbayes.ops.numba_dispatch`, :mod:`~softbayes.ops.jax_dispatch` -- backends;
* :mod:`~softbayes.ops.builders` -- fused nodes from arrays or PyTensor variables.

Importing the package registers the rewrites and the backends.
"""

from softbayes.ops import jax_dispatch, numba_dispatch, rewrites
from softbayes.ops.builders import (
    as_data,
    continuous_bernoulli_glm_logp,
    continuous_bernoulli_glm_rows,
    glm_logp,
    glm_rows,
    soft_logistic_glm_logp,
    soft_logistic_glm_rows,
    unit_weights,
)
from softbayes.ops.glm_op import FAMILY_CODES, GLMVJP, GLMLogpDlogp, GLMOp, GLMRows
from softbayes.ops.rewrites import SUFFICIENT_STATISTICS_MIN_SIZE

__all__ = [
    "FAMILY_CODES",
    "GLMVJP",
    "SUFFICIENT_STATISTICS_MIN_SIZE",
    "GLMLogpDlogp",
    "GLMOp",
    "GLMRows",
    "as_data",
    "continuous_bernoulli_glm_logp",
    "continuous_bernoulli_glm_rows",
    "glm_logp",
    "glm_rows",
    "jax_dispatch",
    "numba_dispatch",
    "rewrites",
    "soft_logistic_glm_logp",
    "soft_logistic_glm_rows",
    "unit_weights",
]
