"""Settings of the speed benchmark: what it measures, at which sizes, and its tolerances."""

from __future__ import annotations

FAMILIES = ("weighted_bernoulli", "continuous_bernoulli")
EVAL_IMPLS = {
    "fused": "softbayes fused kernel (numba)",
    "fused_f32": "fused kernel, float32 X and labels (numba)",
    "model": "softbayes.Model's graph, pm.Data (numba)",
    "fused_jax": "fused Op on PyTensor's JAX backend",
    "reference": "softbayes reference graph (numba)",
    "naive": "naive pm.Potential (numba)",
    "naive_jax": "naive pm.Potential (JAX backend)",
}
ENGINES = {
    "softbayes-nutpie": "softbayes fused kernel, PyMC model, nutpie (numba)",
    "softbayes-model": "softbayes.Model(...).fit() (nutpie, fused kernel)",
    "softbayes-model-f32": "softbayes.Model(..., dtype='float32').fit()",
    "softbayes-model-jax": "softbayes.Model(...).fit(backend='jax')",
    "softbayes-model-numba": "softbayes.Model(...).fit(backend='numba')",
    "naive-default": "naive pm.Potential, pm.sample() default",
    "duplicated-default": "seed's duplicated data (2n rows), pm.sample() default",
    "naive-nutpie-jax": "naive pm.Potential, nutpie JAX backend",
    "numpyro": "NumPyro NUTS (pure NumPyro model)",
    "softbayes-numpyro": "softbayes fused kernel, pm.sample(nuts_sampler='numpyro')",
    "softbayes-model-numpyro": "softbayes.Model(...).fit(sampler='numpyro')",
}
DEFAULTS = {
    "sizes": [10_000, 100_000, 1_000_000],
    "d": 10,
    "n_sample": 100_000,
    "draws": 500,
    "tune": 500,
    "chains": 2,
    "min_time": 1.0,
}
QUICK = {
    "sizes": [1_000, 5_000],
    "d": 10,
    "n_sample": 2_000,
    "draws": 200,
    "tune": 200,
    "chains": 2,
    "min_time": 0.1,
}
PRIOR_SD = 2.5
AGREE_SD = 0.05  # posterior means agree within this many posterior sds ...
AGREE_MCSE = 4.0  # ... or within this many Monte Carlo standard errors of the difference
