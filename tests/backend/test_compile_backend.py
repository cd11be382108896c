"""nutpie's compilation backend (JAX or numba): the choice, JAX posteriors against statsmodels,
refits on the JAX-compiled model, the backend attr and the on-disk compile cache folder."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import softbayes as sb
from softbayes.backend import sample
from softbayes.backend.refit import Refitter, design_cells
from softbayes.backend.sample import (
    BACKENDS,
    CACHE_ENV,
    JAX_MAX_CELLS,
    auto_backend,
    check_backend,
    jax_cache_dir,
)
from softbayes.io.attrs import FitAttrs, FitFileError, attr_key

NAMES = ["Intercept", "x0", "x1", "x2"]
FIT = {"draws": 1000, "tune": 1000, "chains": 2}


def _data(n, seed, beta=(0.8, -0.6, 0.5)):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    df = pd.DataFrame(x, columns=["x0", "x1", "x2"])
    p = 1.0 / (1.0 + np.exp(-(0.3 + x @ np.asarray(beta))))
    df["l"] = np.clip(p + rng.normal(0.0, 0.15, n), 0.0, 1.0)
    return df


def _mle(df, labels=None):
    """Coefficients and standard errors of the soft-label logistic regression by statsmodels:
    a binomial GLM on every row duplicated as (1, weight l) and (0, weight 1 - l)."""
    labels = df["l"].to_numpy() if labels is None else np.asarray(labels)
    X = sm.add_constant(df[["x0", "x1", "x2"]].to_numpy())
    y = np.r_[np.ones(len(df)), np.zeros(len(df))]
    w = np.r_[labels, 1.0 - labels]
    res = sm.GLM(y, np.vstack([X, X]), family=sm.families.Binomial(), freq_weights=w).fit()
    return res.params, res.bse


def _moments(fit):
    post = fit.posterior
    return (np.array([float(post[v].mean()) for v in NAMES]),
            np.array([float(post[v].std()) for v in NAMES]))


def _near_mle(fit, df, labels=None):
    mean, sd = _moments(fit)
    mle, se = _mle(df, labels)
    # wide priors (sd 2.5 against posterior sds near 0.1): the posterior mean is the MLE up
    # to O(1/n) and Monte Carlo error
    np.testing.assert_array_less(np.abs(mean - mle), 0.2 * sd)
    np.testing.assert_allclose(sd, se, rtol=0.15)


PRIORS = {k: {"dist": "Normal", "mu": 0.0, "sigma": 2.5} for k in NAMES}


@pytest.fixture(scope="module")
def jax_fit():
    """One small weighted-Bernoulli model, fitted once with the JAX backend."""
    df = _data(400, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sb.Model("l ~ x0 + x1 + x2", df, priors=PRIORS)
        fit = model.fit(random_seed=1, backend="jax", **FIT)
    return model, fit, df


# -- the choice -------------------------------------------------------------------------------
def test_check_backend_accepts_the_backends_and_none():
    assert check_backend(None) is None
    assert [check_backend(b) for b in BACKENDS] == list(BACKENDS)
    assert check_backend("JAX") == "jax"


@pytest.mark.parametrize("bad", ["cuda", "", 3, ["jax"]])
def test_unknown_backend_is_a_value_error(bad):
    with pytest.raises(ValueError, match="Unknown backend"):
        check_backend(bad)


def test_fit_refuses_an_unknown_backend_before_compiling(monkeypatch):
    model = sb.Model("l ~ x0 + x1 + x2", _data(50, 1))
    import nutpie

    def no_compile(*args, **kwargs):
        raise AssertionError("compiled")

    monkeypatch.setattr(nutpie, "compile_pymc_model", no_compile)
    with pytest.raises(ValueError, match="Unknown backend 'numpy'"):
        model.fit(draws=10, tune=10, chains=1, backend="numpy")


def test_auto_backend_threshold():
    assert auto_backend(300 * 5) == "jax"
    assert auto_backend(JAX_MAX_CELLS) == "jax"
    assert auto_backend(JAX_MAX_CELLS + 1) == "numba"
    assert auto_backend(100_000 * 10) == "numba"


def test_refitter_chooses_by_design_cells(monkeypatch):
    df = _data(120, 1)
    description = sb.Model("l ~ x0 + x1 + x2", df).description
    assert design_cells(description) == 120 * 4  # intercept + 3 predictors, counted by hand
    assert Refitter(description).backend() == "jax"
    assert Refitter(description).backend("numba") == "numba"
    monkeypatch.setattr(sample, "JAX_MAX_CELLS", 120 * 4 - 1)
    assert Refitter(description).backend() == "numba"


def test_design_cells_counts_classes_and_phi_columns():
    rng = np.random.default_rng(2)
    p = rng.dirichlet([2.0, 3.0, 4.0], 50)
    df = pd.DataFrame({"x": rng.normal(size=50), "z": rng.normal(size=50), "a": p[:, 0],
                       "b": p[:, 1], "c": p[:, 2]})
    soft = sb.Model("c(a, b, c) ~ x", df, likelihood="soft_categorical").description
    assert design_cells(soft) == 50 * 2 * 2  # (intercept, x) per non-reference class
    beta = sb.Model("a ~ x", df, likelihood="beta", phi_formula="~ z").description
    assert design_cells(beta) == 50 * (2 + 2)


# -- JAX posteriors ---------------------------------------------------------------------------
def test_jax_fit_matches_statsmodels_and_records_its_backend(jax_fit):
    _, fit, df = jax_fit
    assert fit.attrs[attr_key("backend")] == "jax"
    assert FitAttrs.from_fit(fit).backend == "jax"
    _near_mle(fit, df)


def test_bad_backend_attr_is_refused(jax_fit):
    attrs = dict(jax_fit[1].attrs)
    attrs[attr_key("backend")] = "cuda"
    with pytest.raises(FitFileError, match="backend"):
        FitAttrs.from_attrs(attrs)


def test_jax_refit_on_new_rows_reuses_the_compiled_model(jax_fit, monkeypatch):
    model = copy.copy(jax_fit[0])
    compiled = model.compiled
    assert compiled is not None
    import nutpie

    def no_compile(*args, **kwargs):
        raise AssertionError("recompiled")

    monkeypatch.setattr(nutpie, "compile_pymc_model", no_compile)
    new = _data(300, 7, beta=(-0.5, 0.9, 0.2))  # other rows, another row count, other effects
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.refit(new, random_seed=2, **FIT)
    assert model.compiled is not compiled
    assert fit.attrs[attr_key("backend")] == "jax"
    # the stored formula state keeps the first rows' centring: the coefficients are those of
    # the new rows all the same
    _near_mle(fit, new)


def test_jax_refit_on_new_labels(jax_fit):
    model, _, df = jax_fit
    model = copy.copy(model)
    rng = np.random.default_rng(3)
    labels = np.clip(1.0 - df["l"].to_numpy() + rng.normal(0.0, 0.05, len(df)), 0.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.refit(labels=labels, random_seed=4, **FIT)
    _near_mle(fit, df, labels)


@pytest.mark.slow
def test_jax_and_numba_posteriors_agree(jax_fit):
    model, fit, _ = jax_fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = sb.Model.from_description(model.description).fit(random_seed=5, backend="numba",
                                                                  **FIT)
    assert other.attrs[attr_key("backend")] == "numba"
    (m1, s1), (m2, s2) = _moments(fit), _moments(other)
    np.testing.assert_array_less(np.abs(m1 - m2), 0.15 * s1)
    np.testing.assert_allclose(s1, s2, rtol=0.1)


def _categorical_frame(n=60):
    rng = np.random.default_rng(4)
    p = rng.dirichlet([2.0, 3.0, 4.0], n)
    return pd.DataFrame({"x": rng.normal(size=n), "a": p[:, 0], "b": p[:, 1], "c": p[:, 2]})


def test_explicit_jax_refuses_an_op_without_a_jax_conversion():
    model = sb.Model("c(a, b, c) ~ x", _categorical_frame(), likelihood="continuous_categorical")
    with pytest.raises(NotImplementedError, match="backend='numba'"):
        model.fit(draws=10, tune=10, chains=1, backend="jax")


@pytest.mark.slow
def test_automatic_backend_falls_back_to_numba():
    model = sb.Model("c(a, b, c) ~ x", _categorical_frame(), likelihood="continuous_categorical")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(draws=50, tune=50, chains=1, random_seed=1, log_likelihood=False)
    assert fit.attrs[attr_key("backend")] == "numba"


# -- the cache folder -------------------------------------------------------------------------
def test_cache_folder_from_the_environment(tmp_path, monkeypatch):
    base = tmp_path / "mine"
    base.mkdir(mode=0o750)
    (base / "keep.txt").write_text("x")
    monkeypatch.setenv(CACHE_ENV, str(base))
    path = jax_cache_dir()
    assert path == base / "jax" and path.is_dir()
    # the folder softbayes did not create is left as it was
    assert sorted(p.name for p in base.iterdir()) == ["jax", "keep.txt"]
    assert (base / "keep.txt").read_text() == "x" and (base.stat().st_mode & 0o777) == 0o750
    assert jax_cache_dir() == path  # again: already there


def test_cache_folder_under_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert jax_cache_dir() == tmp_path / "xdg" / "softbayes" / "jax"
    assert (tmp_path / "xdg" / "softbayes" / "jax").is_dir()


def test_cache_folder_that_cannot_be_made_turns_the_cache_off(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "sub"))
    assert jax_cache_dir() is None
    assert blocker.read_text() == "not a folder"


def _run(code, env):
    env = {**{k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}, **env}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_a_fit_without_a_usable_cache_folder_still_runs(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = (
        "import warnings; warnings.simplefilter('ignore')\n"
        "import numpy as np, pandas as pd, jax, softbayes as sb\n"
        "rng = np.random.default_rng(0); x = rng.normal(size=80)\n"
        "df = pd.DataFrame({'x': x, 'l': 1 / (1 + np.exp(-x))})\n"
        "fit = sb.Model('l ~ x', df).fit(draws=50, tune=50, chains=1, random_seed=1,"
        " backend='jax', log_likelihood=False)\n"
        "print(fit.attrs['softbayes_backend'], jax.config.jax_compilation_cache_dir)\n")
    assert _run(code, {CACHE_ENV: str(blocker / "sub")}) == "jax None"


def test_default_sampler_and_import_leave_jax_and_numpyro_unimported():
    code = ("import sys, softbayes\n"
            "from softbayes.backend.sample import resolve_sampler\n"
            "print(resolve_sampler(None), 'jax' in sys.modules, 'numpyro' in sys.modules)\n")
    assert _run(code, {}) == "nutpie False False"
