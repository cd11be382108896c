"""The sampling engines of the speed benchmark: one function per engine, same data and prior."""

from __future__ import annotations

import time
import warnings

import numpy as np
import nutpie
import pandas as pd
import pymc as pm

import softbayes as sb
from benchmarks.config import PRIOR_SD
from benchmarks.models import build_model


def _posterior_b(idata):
    post = idata["posterior"]
    b = post["b"]
    return np.asarray(b.transpose("chain", "draw", ...).values, dtype=float)


def _eng_softbayes_nutpie(X, labels, a, ttfd_only=False):
    model = build_model("fused", "weighted_bernoulli", X, labels)
    compiled = nutpie.compile_pymc_model(model)
    if ttfd_only:
        nutpie.sample(compiled, draws=1, tune=1, chains=1, progress_bar=False, seed=a.seed)
        return None, "nutpie"
    idata = nutpie.sample(compiled, draws=a.draws, tune=a.tune, chains=a.chains, cores=a.chains,
                          seed=a.seed, progress_bar=False)
    return _posterior_b(idata), "nutpie"


def _eng_naive_nutpie_jax(X, labels, a, ttfd_only=False):
    model = build_model("naive", "weighted_bernoulli", X, labels)
    compiled = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax")
    if ttfd_only:
        nutpie.sample(compiled, draws=1, tune=1, chains=1, progress_bar=False, seed=a.seed)
        return None, "nutpie (jax)"
    idata = nutpie.sample(compiled, draws=a.draws, tune=a.tune, chains=a.chains, cores=a.chains,
                          seed=a.seed, progress_bar=False)
    return _posterior_b(idata), "nutpie (jax)"


def _pm_sample(model, a, ttfd_only, **kwargs):
    draws, tune, chains = (1, 1, 1) if ttfd_only else (a.draws, a.tune, a.chains)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=chains,
                          random_seed=a.seed, progressbar=False, model=model,
                          compute_convergence_checks=False, **kwargs)
    lib = idata["posterior"].attrs.get("inference_library", "?")
    return (None if ttfd_only else _posterior_b(idata)), str(lib)


def _eng_naive_default(X, labels, a, ttfd_only=False):
    return _pm_sample(build_model("naive", "weighted_bernoulli", X, labels), a, ttfd_only)


def _eng_duplicated_default(X, labels, a, ttfd_only=False):
    return _pm_sample(build_model("duplicated", "weighted_bernoulli", X, labels), a, ttfd_only)


def _eng_softbayes_numpyro(X, labels, a, ttfd_only=False):
    chains = 1 if ttfd_only else a.chains
    return _pm_sample(build_model("fused", "weighted_bernoulli", X, labels), a, ttfd_only,
                      nuts_sampler="numpyro",
                      nuts={"chain_method": _numpyro_chain_method(chains, pymc=True)})


#: Extra facts an engine measured on the side, by engine name (merged into its record).
EXTRA: dict[str, dict] = {}


def _softbayes_frame(X, labels):
    cols = [f"x{j}" for j in range(1, X.shape[1])]
    df = pd.DataFrame(X[:, 1:], columns=cols)
    df["label"] = labels
    return df, cols


def _eng_softbayes_model(X, labels, a, ttfd_only=False, sampler="nutpie", name="softbayes-model",
                         dtype="float64", backend=None):
    df, cols = _softbayes_frame(X, labels)
    priors = {"Intercept": {"dist": "Normal", "mu": 0.0, "sigma": PRIOR_SD},
              **{c: {"dist": "Normal", "mu": 0.0, "sigma": PRIOR_SD} for c in cols}}
    model = sb.Model("label ~ " + " + ".join(cols), df, priors=priors, dtype=dtype)
    draws, tune, chains = (1, 1, 1) if ttfd_only else (a.draws, a.tune, a.chains)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        fit = model.fit(draws=draws, tune=tune, chains=chains, cores=chains, sampler=sampler,
                        random_seed=a.seed, log_likelihood=False, backend=backend)
        first_draw = time.perf_counter() - t0
        if ttfd_only:
            # A second fit of the same model structure on other rows (a bootstrap resample,
            # as in K-fold or bootstrap refits): the data are swapped into the compiled model.
            rng = np.random.default_rng(a.seed + 1)
            rows = rng.integers(0, len(df), len(df))
            t0 = time.perf_counter()
            model.refit(df.iloc[rows].reset_index(drop=True), draws=1, tune=1, chains=1,
                        cores=1, sampler=sampler, random_seed=a.seed, log_likelihood=False,
                        backend=backend)
            EXTRA[name] = {"first_draw_s": first_draw,
                           "second_fit_first_draw_s": time.perf_counter() - t0}
    if ttfd_only:
        return None, str(fit.attrs.get("softbayes_sampler", "?"))
    post = fit["posterior"]
    parts = [np.asarray(post["Intercept"].transpose("chain", "draw").values, float)[..., None]]
    for c in cols:
        parts.append(np.asarray(post[c].transpose("chain", "draw").values, float)[..., None])
    return np.concatenate(parts, axis=-1), str(fit.attrs.get("softbayes_sampler", "?"))


def _eng_softbayes_model_f32(X, labels, a, ttfd_only=False):
    return _eng_softbayes_model(X, labels, a, ttfd_only, name="softbayes-model-f32",
                                dtype="float32")


def _eng_softbayes_model_jax(X, labels, a, ttfd_only=False):
    return _eng_softbayes_model(X, labels, a, ttfd_only, name="softbayes-model-jax",
                                backend="jax")


def _eng_softbayes_model_numba(X, labels, a, ttfd_only=False):
    return _eng_softbayes_model(X, labels, a, ttfd_only, name="softbayes-model-numba",
                                backend="numba")


def _eng_softbayes_model_numpyro(X, labels, a, ttfd_only=False):
    return _eng_softbayes_model(X, labels, a, ttfd_only, sampler="numpyro",
                                name="softbayes-model-numpyro")


def _numpyro_chain_method(chains, pymc=False):
    import jax

    if jax.local_device_count() >= chains:
        return "parallel"
    # one accelerator: all chains in one vectorized program (NumPyro's advice for GPUs)
    if jax.default_backend() != "cpu":
        return "vectorized"
    return "parallel" if pymc else "sequential"  # PyMC knows no "sequential"


def _eng_numpyro(X, labels, a, ttfd_only=False):
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    numpyro.enable_x64()
    d = X.shape[1]
    Xj, lj = jnp.asarray(X), jnp.asarray(labels)

    def model(X, labels):
        b = numpyro.sample("b", dist.Normal(0.0, PRIOR_SD).expand([d]).to_event(1))
        eta = X @ b
        numpyro.factor("ll", jnp.sum(labels * eta - jax.nn.softplus(eta)))

    draws, tune, chains = (1, 1, 1) if ttfd_only else (a.draws, a.tune, a.chains)
    method = _numpyro_chain_method(chains)
    mcmc = MCMC(NUTS(model), num_warmup=tune, num_samples=draws, num_chains=chains,
                chain_method=method, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(a.seed), Xj, lj)
    if ttfd_only:
        return None, f"numpyro ({method})"
    samples = mcmc.get_samples(group_by_chain=True)["b"]
    return np.asarray(samples, dtype=float), f"numpyro ({method} chains)"


ENGINE_FUNCS = {
    "softbayes-nutpie": _eng_softbayes_nutpie,
    "softbayes-model": _eng_softbayes_model,
    "softbayes-model-f32": _eng_softbayes_model_f32,
    "softbayes-model-jax": _eng_softbayes_model_jax,
    "softbayes-model-numba": _eng_softbayes_model_numba,
    "naive-default": _eng_naive_default,
    "duplicated-default": _eng_duplicated_default,
    "naive-nutpie-jax": _eng_naive_nutpie_jax,
    "numpyro": _eng_numpyro,
    "softbayes-numpyro": _eng_softbayes_numpyro,
    "softbayes-model-numpyro": _eng_softbayes_model_numpyro,
}
NEEDS = {"naive-nutpie-jax": "jax", "numpyro": "numpyro", "softbayes-numpyro": "numpyro",
         "softbayes-model-numpyro": "numpyro"}
