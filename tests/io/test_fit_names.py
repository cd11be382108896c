"""Names and coordinates of a fit's groups: the likelihood variable named after the label
columns, the observations' coords, and the centred intercepts kept apart from the posterior."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import softbayes as sb
from softbayes.io.fits import (
    INTERNAL_GROUP,
    LOGLIK_VAR,
    dataset_to_frame,
    fit_likelihood_var,
    frame_to_dataset,
    hide_internal,
    internal_variables,
    likelihood_var,
    obs_coords,
    posterior_dataset,
)


def _frame(n=12, **extra):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    for k, v in extra.items():
        df[k] = v
    return df


def _describe(formula, df, **kw):
    return sb.Model(formula, df, **kw).description


def test_likelihood_var_is_the_label_column():
    y = np.linspace(0.1, 0.9, 12)
    assert likelihood_var(_describe("share ~ x", _frame(share=y))) == "share"
    # a count response: the counts' column
    df = _frame(k=np.arange(12) % 5, m=np.full(12, 5))
    assert likelihood_var(_describe("p(k, m) ~ x", df, likelihood="binomial")) == "k"


def test_multiclass_likelihood_var_joins_the_columns():
    p = np.full(12, 1 / 3)
    df = _frame(a=p, b=p, c=p)
    desc = _describe("c(a, b, c) ~ x", df, likelihood="soft_categorical")
    assert likelihood_var(desc) == "a__b__c"


@pytest.mark.parametrize(("column", "family"), [
    ("phi", "beta"),                        # the family's precision parameter
    ("Intercept", "weighted_bernoulli"),
    ("labels_data", "weighted_bernoulli"),  # a data container's name
    ("obs", "weighted_bernoulli"),          # the observations' dim
    ("`my label`", "weighted_bernoulli"),   # not a plain name
])
def test_names_that_could_clash_fall_back_to_labels(column, family):
    df = _frame(**{column.strip("`"): np.linspace(0.1, 0.9, 12)})
    assert likelihood_var(_describe(f"{column} ~ x", df, likelihood=family)) == LOGLIK_VAR


def test_fit_likelihood_var_reads_the_attr_or_defaults_to_labels():
    tree = xr.DataTree()
    assert fit_likelihood_var(tree) == "labels"
    tree.attrs["softbayes_log_likelihood_var"] = "share"
    assert fit_likelihood_var(tree) == "share"


@pytest.mark.parametrize(("index", "expected"), [
    (pd.RangeIndex(3), [0, 1, 2]),
    (pd.Index([7, 3, 5]), [7, 3, 5]),
    (pd.Index(["a", "b", "c"]), ["a", "b", "c"]),
    (pd.Index([1, 1, 2]), [0, 1, 2]),                 # not unique
    (pd.Index([0.5, 1.5, 2.5]), [0, 1, 2]),           # floats: not safe to align on
    (pd.date_range("2020-01-01", periods=3), [0, 1, 2]),
    (pd.MultiIndex.from_tuples([(0, "a"), (0, "b"), (1, "a")]), [0, 1, 2]),
    (pd.Index(["a", 1, "c"], dtype=object), [0, 1, 2]),  # mixed
])
def test_obs_coords_use_the_index_only_when_safe(index, expected):
    df = pd.DataFrame({"y": [0.1, 0.2, 0.3]}, index=index)
    assert list(obs_coords(df)) == expected


def test_training_data_keeps_the_rows_index():
    df = pd.DataFrame({"y": [0.1, 0.2, 0.3], "x": [1.0, 2.0, 3.0]}, index=[10, 30, 20])
    back = dataset_to_frame(frame_to_dataset(df))
    assert list(back.index) == [10, 30, 20]
    pd.testing.assert_frame_equal(back, df)
    plain = dataset_to_frame(frame_to_dataset(df.reset_index(drop=True)))
    assert isinstance(plain.index, pd.RangeIndex)


def test_centred_intercepts_move_apart_and_come_back():
    y = np.linspace(0.1, 0.9, 12)
    desc = _describe("y ~ x", _frame(y=y), likelihood="beta", phi_formula="~ z")
    names = internal_variables(desc)
    assert names == ["Intercept_centered", "phi_Intercept_centered"]
    rng = np.random.default_rng(1)
    post = xr.Dataset({n: (("chain", "draw"), rng.normal(size=(2, 5)))
                       for n in [*names, "Intercept", "x"]})
    post.attrs["sampling_time"] = 1.0
    fit = xr.DataTree.from_dict({"posterior": post})
    hide_internal(fit, desc)
    assert set(fit["posterior"].data_vars) == {"Intercept", "x"}
    assert fit["posterior"].attrs["sampling_time"] == 1.0
    assert set(fit[INTERNAL_GROUP].data_vars) == set(names)
    back = posterior_dataset(fit)
    xr.testing.assert_equal(back[list(post.data_vars)], post[list(post.data_vars)])
    # a posterior written again with fresh centred draws replaces the kept ones
    fresh = back.assign(Intercept_centered=back["Intercept_centered"] + 1.0)
    fit["posterior"] = fresh
    np.testing.assert_array_equal(posterior_dataset(fit)["Intercept_centered"],
                                  fresh["Intercept_centered"])
    hide_internal(fit, desc)
    np.testing.assert_array_equal(fit[INTERNAL_GROUP]["Intercept_centered"],
                                  fresh["Intercept_centered"])


def test_no_intercept_no_internal_variables():
    desc = _describe("y ~ 0 + x", _frame(y=np.linspace(0.1, 0.9, 12)))
    assert internal_variables(desc) == []
