"""PyTensor Ops, graph rewrites and numba/JAX dispatch of the fused GLM likelihood kernels."""
