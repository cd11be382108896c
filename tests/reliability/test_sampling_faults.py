"""Sampling faults become findings, not crashes; fits are reproducible and survive a reload.

One small hierarchical Continuous Bernoulli model (``p ~ x + (1|g)``, 8 groups of 3 rows) is
compiled once for the module (nutpie) and sampled a few times, tiny:

* non-convergence (3 tuning steps): ``diagnose_fit`` reports R-hat > 1.01 and low ESS, with
  advice; the fit is still a complete fit;
* divergences (``target_accept=0.05``): reported with advice ("raise target_accept");
* a chain that cannot start (nutpie's "All initialization points failed", injected; a
  real prior at infinity in a slow test): one ``SamplingError`` with advice, not a Rust
  backtrace; the model still fits afterwards;
* a fit whose PSIS-LOO cannot be computed (stuck chains: constant log-likelihood draws):
  the comparison leaves it out with the reason and compares the others;
* perfectly separable labels: the priors keep the posterior proper, the fit is finite;
* a comparison of a good fit with the faulty ones completes, ranks all of them and carries
  the faults in ``Comparison.warnings``;
* reproducibility: the same seed gives identical draws; a fit saved to netCDF reloads and
  predicts identically.

Faults injected are counted in ``test-artifacts/reliability-figures.json``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pymc as pm
import pytest

import softbayes as sb
from softbayes.io.fits import save_fit


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    groups, per = 8, 3
    g = np.repeat([f"g{i}" for i in range(groups)], per)
    x = rng.normal(size=groups * per)
    eta = 0.8 * x + rng.normal(0, 0.5, groups)[np.repeat(np.arange(groups), per)]
    labels = 1 / (1 + np.exp(-eta)) * 0.9 + 0.05
    return pd.DataFrame({"p": labels, "x": x, "g": g})


@pytest.fixture(scope="module")
def model(data):
    return sb.Model("p ~ x + (1|g)", data, likelihood="continuous_bernoulli")


def _fit(model, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(**{"draws": 100, "tune": 100, "chains": 2, "random_seed": 7, **kw})


@pytest.fixture(scope="module")
def good(model):
    return _fit(model, draws=200, tune=300)


@pytest.fixture(scope="module")
def unconverged(model):
    return _fit(model, draws=40, tune=3, random_seed=3)


@pytest.fixture(scope="module")
def diverging(model):
    # a step size adapted to a 5 % acceptance rate diverges; a few seeds make it certain
    for seed in (5, 6, 7, 8):
        fit = _fit(model, target_accept=0.05, random_seed=seed)
        if sb.diagnose_fit(fit).n_divergent:
            break
    return fit


@pytest.fixture(scope="module")
def stuck(good):
    """A fit whose chains never moved: every log-likelihood draw equal (PSIS cannot fit)."""
    fit = good.copy(deep=True)
    ll = fit["log_likelihood"].to_dataset()
    ll["p"] = ll["p"] * 0.0 + ll["p"].isel(chain=0, draw=0)
    fit["log_likelihood"] = ll
    return fit


def _finite_posterior(fit):
    post = fit["posterior"].to_dataset()
    return all(np.isfinite(post[v].values).all() for v in post.data_vars)


def test_non_convergence_is_reported_with_advice(reliability, unconverged):
    reliability.add("faults", "non-convergence (tune=3)")
    d = sb.diagnose_fit(unconverged, name="short")
    assert d.rhat_max > 1.01
    assert any("R-hat" in w and "run longer" in w for w in d.warnings), d.warnings
    assert any("ESS" in w and "Draw more samples" in w for w in d.warnings), d.warnings
    assert not d.ok
    assert _finite_posterior(unconverged)
    assert "log_likelihood" in unconverged.children


def test_divergences_are_reported_with_advice(reliability, diverging):
    reliability.add("faults", "divergences (target_accept=0.05)")
    d = sb.diagnose_fit(diverging, name="div")
    assert d.n_divergent and d.n_divergent > 0
    assert any("divergent" in w and "target_accept" in w for w in d.warnings), d.warnings
    assert _finite_posterior(diverging)


def test_comparison_completes_and_carries_the_faults(reliability, good, unconverged,
                                                     diverging, stuck):
    reliability.add("faults", "comparison with three faulty fits")
    fits = {"good": good, "short": unconverged, "div": diverging, "stuck": stuck}
    cmp = sb.compare(fits, kfold_fallback=None, warn=False)
    # stuck: PSIS-LOO cannot be computed (ArviZ: "All tail values are the same"); it is
    # left out with the reason, the others are compared
    assert "stuck" in cmp.failed and "PSIS-LOO failed" in " ".join(cmp.warnings)
    compared = set(cmp.scores.index)
    assert compared | set(cmp.failed) == set(fits)
    assert {"good", "short"} <= compared
    assert np.isfinite(cmp.scores["log"]).all()
    assert set(cmp.elpd_tables["density"].index) == compared
    text = " | ".join(cmp.warnings)
    assert "short: R-hat" in text
    assert "div:" in text and "divergent" in text
    assert not cmp.fit_diagnostics["short"].ok
    assert "Warnings" in str(cmp)
    with pytest.raises(ValueError, match=r"No fit could be compared.*stuck"):
        sb.compare({"stuck": stuck}, warn=False)


NUTPIE_START_FAILURE = (
    "All initialization points failed\n\nCaused by:\n    Logp function returned error: "
    "ErrorCode(3)\n\nStack backtrace:\n   0: <unknown>\n   1: <unknown>\n"
)


def test_chain_that_cannot_start_is_one_clear_error(reliability, model, good, monkeypatch):
    """nutpie's start failure (a Rust error with a stack backtrace) becomes one SamplingError.

    Injected: the exact error nutpie 0.16 raises when every initial point has a non-finite
    log-density (the real thing, from a prior at infinity, is the slow test below)."""
    import nutpie

    reliability.add("faults", "no chain can start (injected nutpie error)")

    def failing_sample(*args, **kwargs):
        raise RuntimeError(NUTPIE_START_FAILURE)

    monkeypatch.setattr(nutpie, "sample", failing_sample)
    with pytest.raises(pm.exceptions.SamplingError) as info:
        _fit(model, draws=10, tune=10)
    msg = str(info.value)
    assert "No chain could start" in msg and "Check the priors" in msg
    assert "ErrorCode(3)" in msg and "Stack backtrace" not in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__
    monkeypatch.undo()
    again = _fit(model, draws=20, tune=20)  # the model is not left broken
    assert _finite_posterior(again)


def test_separable_labels_fit_is_finite(reliability, model, data):
    reliability.add("faults", "perfectly separable hard labels")
    hard = (data["x"] > 0).astype(float).to_numpy()
    original = model.labels.copy()
    try:
        model.set_labels(hard)  # same compiled sampler, new data
        fit = _fit(model, draws=50, tune=100)
    finally:
        model.set_labels(original)
    assert _finite_posterior(fit)
    slope = fit["posterior"]["x"].values
    assert np.median(slope) > 0  # the data push the slope up; the prior keeps it finite


@pytest.mark.slow
def test_bad_prior_names_the_term(reliability, data):
    """A real model that cannot start: a prior with its mass at phi = exp(800) = inf."""
    reliability.add("faults", "no chain can start (prior at infinity)")
    bad = sb.Model("p ~ x", data, likelihood="beta",
                   priors={"phi": {"dist": "LogNormal", "mu": 800, "sigma": 1}})
    with pytest.raises(pm.exceptions.SamplingError, match=r"No chain could start.*phi"):
        _fit(bad, draws=10, tune=10)


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_gives_identical_draws(model, good):
    again = _fit(model, draws=200, tune=300)
    for var in good["posterior"].data_vars:
        np.testing.assert_array_equal(again["posterior"][var].values,
                                      good["posterior"][var].values, err_msg=var)
    np.testing.assert_array_equal(again["log_likelihood"]["p"].values,
                                  good["log_likelihood"]["p"].values)
    other = _fit(model, draws=200, tune=300, random_seed=8)
    assert not np.array_equal(other["posterior"]["x"].values, good["posterior"]["x"].values)


def test_saved_fit_reloads_and_predicts_identically(tmp_path, good, data):
    path = tmp_path / "fit.nc"
    save_fit(good, path)
    back = sb.load_fit(path)  # checks the stored data against the fit's hashes
    for var in good["posterior"].data_vars:
        np.testing.assert_array_equal(back["posterior"][var].values,
                                      good["posterior"][var].values, err_msg=var)
    assert back.attrs == good.attrs
    new = data.iloc[::3].assign(x=np.linspace(-2, 2, len(data.iloc[::3])))
    for kind in ("mean", "linear"):
        a = sb.predict(good, new, kind=kind)
        b = sb.predict(back, new, kind=kind)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=kind)
    a = sb.predictive_draws(good, new, random_seed=3)
    b = sb.predictive_draws(back, new, random_seed=3)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
