"""Formulas, default priors and stored training data, without sampling."""

import numpy as np
import pandas as pd
import pytest

import softbayes as sb
from softbayes.io.fits import data_hash, dataset_to_frame, frame_to_dataset


@pytest.fixture
def df():
    rng = np.random.default_rng(1)
    n = 80
    return pd.DataFrame({
        "p": rng.uniform(0.05, 0.95, n),
        "x": rng.normal(2.0, 3.0, n),
        "z": rng.uniform(1, 5, n),
        "g": rng.choice(["a", "b", "c"], n),
        "h": pd.Categorical(rng.choice(["lo", "hi"], n), categories=["lo", "hi"]),
        "flag": rng.random(n) < 0.3,
        "n_raters": rng.integers(1, 6, n),
    })


def test_default_prior_rule(df):
    model = sb.Model("p ~ x + g + log(z) + (1|g) + (x|h)", df)
    pri = model.priors_dict()
    assert pri["Intercept"] == {"dist": "Normal", "mu": 0.0, "sigma": 2.5}
    assert pri["x"]["sigma"] == pytest.approx(2.5 / df.x.std(ddof=1))
    dummies = np.column_stack([(df.g == "b"), (df.g == "c")]).astype(float)
    assert pri["g"]["sigma"] == pytest.approx(list(2.5 / dummies.std(axis=0, ddof=1)))
    assert pri["log(z)"]["sigma"] == pytest.approx(2.5 / np.log(df.z).std(ddof=1))
    assert pri["1|g"] == {"dist": "HalfNormal", "sigma": 2.5}
    assert pri["1|h"] == {"dist": "HalfNormal", "sigma": 2.5}
    assert pri["x|h"]["sigma"] == pytest.approx(2.5 / df.x.std(ddof=1))
    names = set(model.pymc_model.named_vars)
    assert {"Intercept_centered", "Intercept", "x", "g", "log(z)", "1|g_sigma", "1|g_offset",
            "1|g", "x|h_sigma", "x|h_offset", "x|h", "p", "labels_data"} <= names
    assert model.pymc_model.named_vars_to_dims["g"] == ("g_dim",)
    assert model.pymc_model.named_vars_to_dims["x|h"] == ("x|h__factor_dim",)


def test_beta_precision_priors(df):
    pri = sb.Model("p ~ x", df, likelihood="beta").priors_dict()
    assert pri["phi"] == {"dist": "LogNormal", "mu": 3.0, "sigma": 1.5}
    pri = sb.Model("p ~ x", df, likelihood="beta", phi_formula="~ z").priors_dict()
    assert "phi" not in pri
    assert pri["phi_Intercept"] == {"dist": "Normal", "mu": 3.0, "sigma": 1.5}
    assert pri["phi_z"]["sigma"] == pytest.approx(1.5 / df.z.std(ddof=1))


def test_soft_categorical_shapes(df):
    labels = np.random.default_rng(0).dirichlet([1, 2, 3], size=len(df))
    df[["k1", "k2", "k3"]] = labels
    model = sb.Model("c(k1, k2, k3) ~ x + g + (1|g)", df, likelihood="soft_categorical")
    m = model.pymc_model
    assert m.named_vars_to_dims["g"] == ("g_dim", "class_reduced")
    assert m.named_vars_to_dims["1|g_offset"] == ("1|g__factor_dim", "class_reduced")
    assert list(m.coords["class_reduced"]) == ["k2", "k3"]
    assert model.priors_dict()["x"]["sigma"] == pytest.approx(2.5 / df.x.std(ddof=1))


def test_no_intercept_and_transforms(df):
    model = sb.Model("p ~ 0 + g + x:flag + I(x**2) + poly(z, 2)", df)
    assert "Intercept" not in model.priors_dict()
    assert list(model.priors.index) == ["g", "x:flag", "I(x ** 2)", "poly(z, 2)"]
    assert "Intercept" not in model.pymc_model.named_vars


def test_training_data_round_trip_keeps_dtypes_and_hash(df):
    df = df.assign(s=df.g.astype(object))
    back = dataset_to_frame(frame_to_dataset(df))
    pd.testing.assert_frame_equal(back, df, check_dtype=True)
    assert data_hash(back) == data_hash(df)
    changed = df.copy()
    changed.loc[3, "x"] += 1e-12
    assert data_hash(changed) != data_hash(df)


def test_weights_as_array_are_stored(df):
    w = np.arange(1.0, len(df) + 1)
    model = sb.Model("p ~ x", df, weights=w)
    np.testing.assert_array_equal(model.weights, w)
    assert "__weights__" in model.data.columns
