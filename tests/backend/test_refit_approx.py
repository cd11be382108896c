"""Refits without recompiling, approximations for large n, JAX samplers."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pytensor
import pytest

import softbayes as sb
from softbayes.backend import approx
from softbayes.io.fits import likelihood_var

D = 10
PRIORS = {f"x{j}": {"dist": "Normal", "mu": 0, "sigma": 2.5} for j in range(D)}
PRIORS["Intercept"] = {"dist": "Normal", "mu": 0, "sigma": 2.5}
BETA = np.array([0.8, -0.6, 0.5, -0.4, 0.3, 0.35, -0.45, 0.55, -0.7, 0.9])


def _data(n, seed, d=D, groups=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    df = pd.DataFrame(x, columns=[f"x{j}" for j in range(d)])
    eta = 0.3 + x @ BETA[:d]
    if groups:
        df["g"] = rng.choice(list("abcd"), n)
        eta = eta + df["g"].map({"a": -0.3, "b": 0.0, "c": 0.2, "d": 0.4}).to_numpy()
    p = 1.0 / (1.0 + np.exp(-eta))
    # soft labels: the probability, blurred, clipped into [0, 1]
    df["l"] = np.clip(p + rng.normal(0.0, 0.15, n), 0.0, 1.0)
    return df


def _formula(d=D, groups=False):
    return "l ~ " + " + ".join(f"x{j}" for j in range(d)) + (" + (1|g)" if groups else "")


def _means(fit, names):
    return np.array([float(fit.posterior[v].mean()) for v in names])


def _sds(fit, names):
    return np.array([float(fit.posterior[v].std()) for v in names])


@pytest.fixture(scope="module")
def small():
    """A small model fitted once with nutpie (one compilation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sb.Model(_formula(3), _data(400, 0, d=3),
                     priors={k: v for k, v in PRIORS.items() if k in ("x0", "x1", "x2")})
        fit = m.fit(draws=1000, tune=1000, chains=2, random_seed=1)
    return m, fit


# -- part 3: refits ----------------------------------------------------------------------------
def test_laplace_agrees_with_nuts_on_small_data(small):
    m, nuts = small
    lap = m.fit(method="laplace", draws=2000, chains=2, random_seed=2)
    names = ["Intercept", "x0", "x1", "x2"]
    sd = _sds(nuts, names)
    assert np.all(np.abs(_means(lap, names) - _means(nuts, names)) < 0.1 * sd)
    assert np.all(np.abs(_sds(lap, names) / sd - 1.0) < 0.10)
    assert lap.attrs["softbayes_method"] == "laplace"
    assert nuts.attrs["softbayes_method"] == "nuts"
    assert lap.posterior.sizes == {"chain": 2, "draw": 2000}
    assert lap.log_likelihood["l"].shape == (2, 2000, 400)
    pred = m.predict(lap, _data(7, 9, d=3))
    assert pred.shape[-1] == 7


def test_set_data_reuses_the_compiled_model(small, monkeypatch):
    m = copy.copy(small[0])  # a copy whose set_data leaves the fixture's model alone
    compiled = m.compiled
    assert compiled is not None
    import nutpie  # an optional sampler

    def no_compile(*a, **k):
        raise AssertionError("recompiled")

    monkeypatch.setattr(nutpie, "compile_pymc_model", no_compile)
    new = _data(250, 5, d=3)
    m.set_data(new)
    assert m.n_obs == len(new) and m.compiled is not None and m.compiled is not compiled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = m.fit(draws=300, tune=300, chains=1, random_seed=3)
    assert fit.log_likelihood["l"].shape == (1, 300, len(new))
    assert fit.attrs["softbayes_n_obs"] == len(new)
    # the posterior follows the new data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh = sb.Model(_formula(3), new.reset_index(drop=True),
                         priors=m.priors_dict())
        lap_new = m.fit(method="laplace", draws=500, chains=1, random_seed=4)
        lap_fresh = fresh.fit(method="laplace", draws=500, chains=1, random_seed=4)
    np.testing.assert_allclose(_means(lap_new, ["x0", "x1", "x2"]),
                               _means(lap_fresh, ["x0", "x1", "x2"]), atol=0.02)


def test_set_data_with_groups_and_unseen_levels():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sb.Model(_formula(2, groups=True), _data(300, 0, d=2, groups=True))
    new = _data(200, 5, d=2, groups=True)
    new = new[new.g != "d"]  # a level may be absent (it keeps its prior)
    m.set_data(new)
    assert m.pymc_model["labels_data"].get_value().shape == (len(new),)
    idx = m.pymc_model["1|g__index_data"].get_value()
    assert idx.shape == (len(new),) and idx.max() < 3
    # unseen levels are refused; a failed swap leaves the model as it was
    bad = _data(20, 6, d=2, groups=True)
    bad.loc[0, "g"] = "zz"
    with pytest.raises(ValueError, match="not in the model's data"):
        m.set_data(bad)
    assert m.n_obs == len(new)


def test_refit_with_new_labels_and_pymc_sampler():
    df = _data(300, 1, d=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sb.Model(_formula(2), df)
        f1 = m.refit(df.iloc[:200], draws=200, tune=200, chains=1, random_seed=1,
                     sampler="pymc")
        f2 = m.refit(labels=np.clip(m.labels[::-1].copy(), 0, 1), draws=200, tune=200,
                     chains=1, random_seed=1, sampler="pymc")
    assert f1.attrs["softbayes_n_obs"] == 200 == f2.attrs["softbayes_n_obs"]
    assert f1.attrs["softbayes_labels_hash"] != f2.attrs["softbayes_labels_hash"]


# -- part 4: minibatch scaling ----------------------------------------------------------------
def test_minibatch_log_likelihood_is_unbiased():
    df = _data(2000, 2, d=3)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(df))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sb.Model(_formula(3), df, weights=w)
    pmm = m.pymc_model
    pot = next(p for p in pmm.potentials if p.name == likelihood_var(m.description))
    point = {v.name: np.full(np.shape(val), 0.2) for v, val in
             zip(pmm.value_vars, pmm.initial_point().values(), strict=True)}
    graph = pmm.replace_rvs_by_values([pot])[0]
    full_fn = pmm.compile_fn(graph, point_fn=True)
    full = float(full_fn(point))
    repl = approx.minibatch_replacements(m.description, pmm, 100)
    mb = pytensor.graph.replace.graph_replace(graph, repl, strict=False)
    mb_fn = pmm.compile_fn(mb, point_fn=True)
    vals = np.array([float(mb_fn(point)) for _ in range(2000)])
    assert np.unique(vals).size > 1000  # the batches change
    se = vals.std() / np.sqrt(vals.size)
    assert abs(vals.mean() - full) < 4 * se
    # the unscaled sum would be n / batch_size = 20 times smaller
    assert abs(vals.mean() / full - 1) < 0.05


def test_minibatch_needs_a_weighted_family():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sb.Model(_formula(2), _data(100, 3, d=2), likelihood="continuous_bernoulli")
    with pytest.raises(ValueError, match="weighted likelihood"):
        approx.minibatch_replacements(m.description, m.pymc_model, 10)


def test_log_likelihood_on_a_subsample_of_draws_for_large_n():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sb.Model(_formula(2), _data(500, 4, d=2))
    fit = approx.fit_approx(m.description, m.pymc_model, "laplace", draws=100, chains=2,
                            random_seed=1, max_log_likelihood_values=500 * 2 * 10)
    assert fit.posterior.sizes["draw"] == 100
    assert fit.log_likelihood["l"].shape == (2, 10, 500)
    assert fit.attrs["softbayes_log_likelihood_draws"] == 10


def test_bad_method_and_pathfinder_message():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sb.Model(_formula(2), _data(100, 3, d=2))
    with pytest.raises(ValueError, match="Unknown method"):
        m.fit(method="vi")
    with pytest.raises(ValueError, match="method='nuts' only"):
        m.fit(method="laplace", calibrate="sandwich")
    with pytest.raises(TypeError, match="unexpected argument"):
        m.fit(method="pathfinder", num_paths=4)


def test_pathfinder_agrees_with_nuts_on_small_data(small):
    m, nuts = small
    pf = m.fit(method="pathfinder", draws=2000, chains=2, random_seed=3)
    names = ["Intercept", "x0", "x1", "x2"]
    sd = _sds(nuts, names)
    assert np.all(np.abs(_means(pf, names) - _means(nuts, names)) < 0.1 * sd)
    assert np.all(np.abs(_sds(pf, names) / sd - 1.0) < 0.10)
    assert pf.attrs["softbayes_method"] == "pathfinder"
    assert pf.attrs["softbayes_pathfinder_khat"] < 0.7
    assert 0 < pf.attrs["softbayes_pathfinder_iterate"] < pf.attrs[
        "softbayes_pathfinder_path_length"]
    assert pf.posterior.sizes == {"chain": 2, "draw": 2000}
    assert pf.log_likelihood["l"].shape == (2, 2000, 400)
    # importance resampling: the same posterior (duplicates allowed)
    rs = m.fit(method="pathfinder", draws=1000, chains=1, random_seed=4, psis_resample=True,
               log_likelihood=False)
    assert rs.attrs["softbayes_pathfinder_psis_resample"] == 1
    assert np.all(np.abs(_means(rs, names) - _means(nuts, names)) < 0.15 * sd)


def test_bfgs_inverse_hessian_secant_and_quadratic():
    rng = np.random.default_rng(0)
    d = 5
    q = rng.normal(size=(d, d))
    a = q @ q.T + d * np.eye(d)  # Hessian of a quadratic
    steps = [rng.normal(size=d) for _ in range(d)]
    pairs = [(s_, a @ s_) for s_ in steps]
    h = approx.bfgs_inverse_hessian(pairs, d)
    s_new, y_new = pairs[-1]
    np.testing.assert_allclose(h @ y_new, s_new, rtol=1e-10, atol=1e-12)  # secant
    assert np.all(np.linalg.eigvalsh(h) > 0)
    # BFGS on a quadratic with conjugate (A-orthogonal) steps recovers A^{-1} exactly
    conj = []
    for s_ in steps:
        for c in conj:
            s_ = s_ - (c @ a @ s_) / (c @ a @ c) * c
        conj.append(s_)
    h = approx.bfgs_inverse_hessian([(s_, a @ s_) for s_ in conj], d)
    np.testing.assert_allclose(h, np.linalg.inv(a), rtol=1e-8, atol=1e-10)


def _large_case(n):
    import statsmodels.api as sm

    df = _data(n, 11)
    x = df[[f"x{j}" for j in range(D)]].to_numpy()
    glm = sm.GLM(df["l"].to_numpy(), sm.add_constant(x), family=sm.families.Binomial()).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sb.Model(_formula(), df, priors=PRIORS)
    return m, np.asarray(glm.params)


@pytest.mark.slow
def test_laplace_and_advi_match_statsmodels_at_n_1e6():
    m, ref = _large_case(1_000_000)
    names = ["Intercept"] + [f"x{j}" for j in range(D)]
    lap = m.fit(method="laplace", draws=500, chains=2, random_seed=1, log_likelihood=False)
    assert np.max(np.abs(_means(lap, names) / ref - 1)) < 0.01
    adv = m.fit(method="advi", draws=500, chains=2, random_seed=1, log_likelihood=False)
    assert adv.attrs["softbayes_advi_batch_size"] == 10_000
    assert np.max(np.abs(_means(adv, names) / ref - 1)) < 0.01
    pf = m.fit(method="pathfinder", draws=500, chains=2, random_seed=1, log_likelihood=False)
    assert np.max(np.abs(_means(pf, names) / ref - 1)) < 0.01


def test_advi_minibatch_agrees_with_laplace():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sb.Model(_formula(3), _data(20_000, 12, d=3))
    names = ["Intercept", "x0", "x1", "x2"]
    lap = m.fit(method="laplace", draws=1000, chains=1, random_seed=1, log_likelihood=False)
    adv = m.fit(method="advi", draws=1000, chains=1, random_seed=1, log_likelihood=False,
                batch_size=1000, n_iter=2000)
    assert adv.attrs["softbayes_advi_batch_size"] == 1000
    sd = _sds(lap, names)
    assert np.all(np.abs(_means(adv, names) - _means(lap, names)) < 0.5 * sd)
    assert np.all(np.abs(_sds(adv, names) / sd - 1) < 0.25)


# -- part 5: JAX samplers on CPU --------------------------------------------------------------
@pytest.mark.parametrize(
    "sampler", ["numpyro", pytest.param("blackjax", marks=pytest.mark.slow)]
)
def test_jax_samplers_run_on_cpu(sampler):
    pytest.importorskip(sampler)
    jax = pytest.importorskip("jax")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sb.Model(_formula(2), _data(200, 8, d=2))
        fit = m.fit(draws=100, tune=100, chains=1, random_seed=1, sampler=sampler)
    assert fit.attrs["softbayes_sampler"] == sampler
    assert fit.posterior.sizes["draw"] == 100
    assert fit.log_likelihood["l"].shape == (1, 100, 200)
    assert jax.default_backend() in ("cpu", "gpu", "cuda")
