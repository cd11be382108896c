"""Identical rows collapsed for sampling: the same log-density, per-row log-likelihood kept."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

import softbayes as sb
from softbayes.backend.build import AGGREGATE_MIN_SHARE, build_sampling_model
from softbayes.backend.refit import Refitter

FAMILIES = ["weighted_bernoulli", "continuous_bernoulli"]


def _frame(rng, n=600, levels=(0.0, 1.0, 2.0, 3.0)):
    """Rows with few distinct covariate values (many duplicated design rows)."""
    df = pd.DataFrame({"g": rng.choice(levels, size=n), "h": rng.choice([0.0, 1.0], size=n)})
    df["l"] = expit(0.3 * df["g"] - df["h"] + rng.normal(0, 0.7, n))
    df.loc[:19, "l"] = 0.0
    df.loc[20:39, "l"] = 1.0
    return df


def _logp_pairs(m_a, m_b, rng, n_points=5):
    fa, fb = m_a.compile_logp(), m_b.compile_logp()
    out = []
    for _ in range(n_points):
        point = {v.name: rng.normal(0, 1.5, size=m_a.initial_point()[v.name].shape)
                 for v in m_a.value_vars}
        out.append((float(fa(point)), float(fb(point))))
    return out


def _brute_force_rows(family, df, post):
    """Per-row log-likelihood of each draw from the formula's raw columns (NumPy)."""
    draws = {k: post[k].values.reshape(-1)[:, None] for k in ("Intercept", "g", "h")}
    eta = draws["Intercept"] + draws["g"] * df["g"].to_numpy() + draws["h"] * df["h"].to_numpy()
    lab = df["l"].to_numpy()
    if family == "weighted_bernoulli":
        return lab * eta - np.logaddexp(0.0, eta)
    return lab * eta - np.log(np.expm1(eta) / eta)


@pytest.fixture(scope="module")
def fits():
    rng = np.random.default_rng(0)
    df = _frame(rng)
    out = {}
    for family in FAMILIES:
        model = sb.Model("l ~ g + h", df, likelihood=family)
        out[family] = model, model.fit(draws=30, tune=30, chains=1, random_seed=1,
                                       progressbar=False, warn=False, predictive=False)
    return df, out


@pytest.mark.parametrize("family", FAMILIES)
def test_aggregated_model_has_the_same_logp(family):
    rng = np.random.default_rng(1)
    df = _frame(rng)
    refitter = Refitter(sb.Model("l ~ g + h", df, likelihood=family).description)
    agg = refitter.sampling_model
    assert agg is not refitter.pymc_model
    assert agg["labels_data"].get_value().shape == (8,)  # 4 x 2 distinct design rows
    for a, b in _logp_pairs(agg, refitter.pymc_model, rng):
        assert a == pytest.approx(b, rel=1e-10)


@pytest.mark.parametrize("family", FAMILIES)
def test_log_likelihood_keeps_one_entry_per_original_row(fits, family):
    df, models = fits
    _, fit = models[family]
    ll = next(iter(fit["log_likelihood"].data_vars.values()))
    assert ll.sizes["obs"] == len(df)
    assert next(iter(fit["observed_data"].data_vars.values())).sizes["obs"] == len(df)
    brute = _brute_force_rows(family, df, fit["posterior"])
    np.testing.assert_allclose(ll.values.reshape(brute.shape), brute, rtol=1e-9, atol=1e-12)


def test_no_aggregation_when_rows_are_distinct_or_family_is_not_linear_in_the_label():
    rng = np.random.default_rng(2)
    df = _frame(rng)
    df["x"] = rng.normal(size=len(df))  # every design row distinct
    assert build_sampling_model(sb.Model("l ~ g + x", df).description) is None
    d = sb.Model("l ~ g + x", df).description
    assert build_sampling_model(d, always=True) is not None
    df.loc[df["l"].isin([0.0, 1.0]), "l"] = 0.5
    assert build_sampling_model(sb.Model("l ~ g + h", df, likelihood="beta").description) \
        is None
    assert 0.0 < AGGREGATE_MIN_SHARE < 1.0


@pytest.mark.parametrize("family", FAMILIES)
def test_refits_rebuild_the_aggregated_containers(family):
    rng = np.random.default_rng(3)
    df = _frame(rng)
    refitter = Refitter(sb.Model("l ~ g + h", df, likelihood=family).description)
    assert refitter.sampling_model is not refitter.pymc_model
    new_rows = _frame(rng, n=300, levels=(0.0, 1.0, 2.0))
    refitter.set_data(new_rows)
    agg = refitter.sampling_model
    assert agg["labels_data"].get_value().shape == (6,)
    for a, b in _logp_pairs(agg, refitter.pymc_model, rng):
        assert a == pytest.approx(b, rel=1e-10)
    refitter.set_labels(rng.random(len(new_rows)))
    for a, b in _logp_pairs(refitter.sampling_model, refitter.pymc_model, rng):
        assert a == pytest.approx(b, rel=1e-10)


def test_refit_of_an_aggregated_model_keeps_per_row_log_likelihood(fits):
    _, models = fits
    model, _ = models["weighted_bernoulli"]
    rng = np.random.default_rng(4)
    new_rows = _frame(rng, n=250)
    fit = copy.copy(model).refit(new_rows, draws=30, tune=30, chains=1, random_seed=2,
                      progressbar=False, warn=False, predictive=False)
    ll = next(iter(fit["log_likelihood"].data_vars.values()))
    brute = _brute_force_rows("weighted_bernoulli", new_rows, fit["posterior"])
    np.testing.assert_allclose(ll.values.reshape(brute.shape), brute, rtol=1e-9, atol=1e-12)
