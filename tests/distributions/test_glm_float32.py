"""``Model(dtype="float32")``: design and labels stored in float32, likelihood within 1e-5."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

import softbayes as sb

FAMILIES = ["weighted_bernoulli", "continuous_bernoulli"]


def _frame(rng, n=400):
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    df["l"] = expit(0.5 * df["x1"] - df["x2"] + rng.normal(0, 0.5, n))
    df.loc[:9, "l"] = 0.0
    df.loc[10:19, "l"] = 1.0
    return df


def _logp_dlogp(model):
    pm_model = model.pymc_model
    f, g = pm_model.compile_logp(), pm_model.compile_dlogp()
    return f, g, pm_model


@pytest.mark.parametrize("family", FAMILIES)
def test_float32_storage_and_accuracy(family):
    rng = np.random.default_rng(0)
    df = _frame(rng)
    m64 = sb.Model("l ~ x1 + x2", df, likelihood=family)
    m32 = sb.Model("l ~ x1 + x2", df, likelihood=family, dtype="float32")
    assert m32.dtype == "float32" and m32.likelihood_kernel == "fused"
    containers = {v.name: v.dtype for v in m32.pymc_model.data_vars}
    assert containers["labels_data"] == "float32"
    x_name = m32.description.main.data_names()["X"]
    assert containers[x_name] == "float32"
    f64, g64, pm64 = _logp_dlogp(m64)
    f32, g32, _ = _logp_dlogp(m32)
    for _ in range(5):
        point = {v.name: rng.normal(0, 1.0, size=pm64.initial_point()[v.name].shape)
                 for v in pm64.value_vars}
        v64, v32 = float(f64(point)), float(f32(point))
        assert abs(v32 - v64) <= 1e-5 * abs(v64)
        d64, d32 = np.asarray(g64(point)), np.asarray(g32(point))
        assert np.max(np.abs(d32 - d64)) <= 1e-5 * np.max(np.abs(d64))


def test_dtype_is_validated():
    df = _frame(np.random.default_rng(1))
    with pytest.raises(ValueError, match="dtype"):
        sb.Model("l ~ x1", df, dtype="float16")
    df["g"] = np.repeat(["a", "b"], len(df) // 2)
    with pytest.raises(ValueError, match="fused kernel"):
        sb.Model("l ~ x1 + (1|g)", df, dtype="float32")
    with pytest.raises(ValueError, match="fused kernel"):
        sb.Model("l ~ x1", df, dtype="float32", fused=False)
    df.loc[df["l"].isin([0.0, 1.0]), "l"] = 0.5
    with pytest.raises(ValueError, match="fused kernel"):
        sb.Model("l ~ x1", df, likelihood="beta", dtype="float32")


@pytest.mark.parametrize("backend", [pytest.param("numba", marks=pytest.mark.slow), "jax"])
def test_float32_fits_on_both_backends_and_is_kept(backend):
    pytest.importorskip(backend)
    rng = np.random.default_rng(2)
    df = _frame(rng, n=300)
    model = sb.Model("l ~ x1 + x2", df, dtype="float32")
    fit = model.fit(draws=100, tune=100, chains=1, random_seed=3, backend=backend,
                    progressbar=False, warn=False, predictive=False)
    assert fit.attrs["softbayes_dtype"] == "float32"
    assert fit.attrs["softbayes_backend"] == backend
    # the posterior mean of a well-identified slope is near the truth (0.5 and -1 with
    # noise on the logit scale: shrunk toward 0, clearly signed)
    assert 0.2 < float(fit["posterior"]["x1"].mean()) < 0.8
    assert sb.Model.from_fit(fit).dtype == "float32"
    assert pickle.loads(pickle.dumps(model.description)).dtype == "float32"
    refit = model.refit(df.sample(200, random_state=1), draws=50, tune=50, chains=1,
                        random_seed=4, backend=backend, progressbar=False, warn=False,
                        predictive=False)
    assert refit.attrs["softbayes_dtype"] == "float32"
    assert refit["log_likelihood"].sizes["obs"] == 200
    # new labels (slope -2) into the float32 containers of the compiled model
    x1 = model.data["x1"].to_numpy()
    relabelled = model.refit(labels=expit(-2.0 * x1 + rng.normal(0, 0.3, x1.size)), draws=50,
                             tune=50, chains=1, random_seed=5, backend=backend,
                             progressbar=False, warn=False, predictive=False)
    assert -2.8 < float(relabelled["posterior"]["x1"].mean()) < -1.2
