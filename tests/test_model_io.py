"""Fits with nutpie (the default sampler): reproducibility, saving / loading, predictions,
marginal effects and group levels, on one compiled model."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.special import expit

import softbayes as sb
from softbayes.backend import Refitter, fit_description
from softbayes.io.attrs import FitAttrs
from softbayes.io.fits import description_from_fit
from softbayes.terms.description import ModelDescription

FORMULA = "share ~ x + scale(z) + h + flag + (1|g)"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    n = 240
    g = rng.choice([f"site{i}" for i in range(8)], size=n)
    h = pd.Categorical(rng.choice(["lo", "mid", "hi"], size=n), categories=["lo", "mid", "hi"])
    x = rng.normal(size=n)
    z = rng.uniform(10, 30, size=n)
    flag = rng.random(n) < 0.4
    eta = 0.2 + 0.9 * x + 0.05 * (z - 20) + 0.4 * (np.asarray(h) == "mid") - 0.3 * flag
    share = rng.beta(expit(eta) * 8, (1 - expit(eta)) * 8)
    df = pd.DataFrame({"share": share, "x": x, "z": z, "h": h, "flag": flag, "g": g,
                       "unused": "junk"})
    return df


@pytest.fixture(scope="module")
def model(data):
    return sb.Model(FORMULA, data)


@pytest.fixture(scope="module")
def fit(model):
    return model.fit(draws=300, tune=300, chains=2, random_seed=21)


@pytest.fixture(scope="module")
def new_data(data):
    new = data.sample(25, random_state=4).copy()
    new["z"] = new["z"] + 7.5  # outside the training range: scale() must keep its state
    new["x"] = np.linspace(-3, 3, len(new))
    return new.drop(columns=["share", "unused"])


def test_default_sampler_is_nutpie_and_same_seed_same_draws(model, fit):
    assert fit.attrs["softbayes_sampler"] == "nutpie"
    again = model.fit(draws=300, tune=300, chains=2, random_seed=21)
    for name in fit.posterior.data_vars:
        np.testing.assert_array_equal(fit.posterior[name].values, again.posterior[name].values)
    other = model.fit(draws=300, tune=300, chains=2, random_seed=22)
    assert not np.array_equal(fit.posterior["x"].values, other.posterior["x"].values)


def test_priors_table_and_attrs(model, fit):
    table = model.priors
    assert list(table.index) == ["Intercept", "x", "scale(z)", "h", "flag", "1|g"]
    assert table.loc["x", "prior"].startswith("Normal(mu=0, sigma=")
    sd_x = model.data["x"].std(ddof=1)
    assert model.priors_dict()["x"]["sigma"] == pytest.approx(2.5 / sd_x)
    assert model.priors_dict()["Intercept"] == {"dist": "Normal", "mu": 0.0, "sigma": 2.5}
    assert model.priors_dict()["1|g"] == {"dist": "HalfNormal", "sigma": 2.5}
    stored = json.loads(fit.attrs["softbayes_priors"])
    assert stored["x"]["kwargs"]["sigma"] == pytest.approx(2.5 / sd_x)
    assert fit.attrs["softbayes_formula"] == FORMULA
    assert json.loads(fit.attrs["softbayes_label_columns"]) == ["share"]
    assert "unused" not in fit.training_data.data_vars
    # The uncentred intercept: the linear predictor at all-zero predictors.
    at_zero = pd.DataFrame({"x": [0.0], "z": [model.data["z"].mean()],
                            "h": pd.Categorical(["hi"], categories=["lo", "mid", "hi"]),
                            "flag": [False], "g": ["site0"]})
    lin = sb.predict(fit, at_zero, kind="linear").values[..., 0]
    np.testing.assert_allclose(lin, fit.posterior["Intercept"].values
                               + fit.posterior["1|g"].sel({"1|g__factor_dim": "site0"}).values)


@pytest.mark.filterwarnings("ignore:Consolidated metadata")
@pytest.mark.parametrize("fmt", ["netcdf", "zarr"])
def test_save_load_round_trip_predicts_identically(fit, new_data, tmp_path, fmt):
    expected = sb.predict(fit, new_data)
    expected_pp = sb.predictive_draws(fit, new_data, random_seed=5)
    if fmt == "netcdf":
        path = tmp_path / "fit.nc"
        fit.to_netcdf(path)
    else:
        path = tmp_path / "fit.zarr"
        fit.to_zarr(path, mode="w")
    loaded = sb.load_fit(path)
    got = sb.predict(loaded, new_data)
    np.testing.assert_array_equal(got.values, expected.values)
    np.testing.assert_array_equal(sb.predictive_draws(loaded, new_data, random_seed=5).values,
                                  expected_pp.values)
    # Through xarray directly, lazily opened.
    with xr.open_datatree(path, engine="zarr" if fmt == "zarr" else None) as tree:
        np.testing.assert_array_equal(sb.predict(tree, new_data).values, expected.values)
    rebuilt = sb.Model.from_fit(loaded)
    assert rebuilt.priors_dict() == sb.Model.from_fit(fit).priors_dict()
    assert list(rebuilt.data.dtypes) == list(sb.Model.from_fit(fit).data.dtypes)


def test_predict_on_training_and_new_data(model, fit, new_data, data):
    train = sb.predict(fit)
    assert train.shape == (2, 300, len(data))
    np.testing.assert_array_equal(sb.predict(fit, data).values, train.values)
    np.testing.assert_array_equal(model.predict(fit, new_data).values,
                                  sb.predict(fit, new_data).values)
    lin = sb.predict(fit, new_data, kind="linear")
    np.testing.assert_allclose(sb.predict(fit, new_data).values, expit(lin.values))
    # scale(z) keeps the training mean and sd.
    z = data["z"]
    x_new = (new_data["z"] - z.mean()) / z.std(ddof=0)  # formulae scales with ddof=0
    post = fit.posterior
    lin0 = sb.predict(fit, new_data.assign(z=z.mean()), kind="linear")
    np.testing.assert_allclose(
        lin.values - lin0.values, post["scale(z)"].values[..., None] * x_new.to_numpy(),
        rtol=1e-8, atol=1e-10,
    )


def test_tampered_training_data_is_detected(fit):
    bad = fit.copy()
    ds = bad["training_data"].to_dataset()
    ds["x"] = ds["x"] + 1.0
    bad["training_data"] = ds
    with pytest.raises(ValueError, match="does not match the fit's recorded hashes"):
        sb.Model.from_fit(bad)


def test_new_group_levels(fit, new_data):
    new = new_data.copy()
    new.loc[new.index[:2], "g"] = "site_new"
    with pytest.raises(ValueError, match=r"1 level\(s\) not seen in training.*new_groups="):
        sb.predict(fit, new)
    zero = sb.predict(fit, new, new_groups="zero", kind="linear")
    post = fit.posterior
    known = sb.predict(fit, new.iloc[2:], kind="linear")
    np.testing.assert_allclose(zero.values[..., 2:], known.values)
    sampled = sb.predict(fit, new, new_groups="sample", random_seed=1, kind="linear")
    diff = sampled.values[..., 0] - zero.values[..., 0]
    # Drawn from N(0, sigma_g): standardized draws have sd 1.
    assert np.std(diff / post["1|g_sigma"].values) == pytest.approx(1.0, abs=0.1)


def test_marginal_effects_matches_analytic_derivative(fit, data):
    me = sb.marginal_effects(fit)
    assert set(me.columns) >= {"variable", "contrast", "estimate", "lower", "upper"}
    row = me.set_index("variable").loc["x"]
    # x enters linearly: dE/dx = beta_x p (1 - p), averaged over rows, per draw.
    p = sb.predict(fit).values
    ame = (fit.posterior["x"].values[..., None] * p * (1 - p)).mean(axis=-1).ravel()
    assert row["estimate"] == pytest.approx(ame.mean(), rel=1e-5)
    lo, hi = np.quantile(ame, [0.03, 0.97])
    assert row["lower"] == pytest.approx(lo, rel=1e-4)
    assert row["upper"] == pytest.approx(hi, rel=1e-4)
    # Categorical contrasts against the model's reference level (formulae's first).
    h = me[me.variable == "h"]
    assert sorted(h.contrast) == ["lo - hi", "mid - hi"]
    flag = me[me.variable == "flag"]
    assert list(flag.contrast) == ["True - False"]
    mid = data.assign(h=pd.Categorical(["mid"] * len(data), categories=["lo", "mid", "hi"]))
    hi_ = data.assign(h=pd.Categorical(["hi"] * len(data), categories=["lo", "mid", "hi"]))
    direct = (sb.predict(fit, mid).values - sb.predict(fit, hi_).values).mean(axis=-1)
    est = h.set_index("contrast").loc["mid - hi", "estimate"]
    assert est == pytest.approx(direct.mean(), rel=1e-10)
    hdi = sb.marginal_effects(fit, variables=["x"], interval="hdi", prob=0.5)
    assert hdi.upper.iloc[0] - hdi.lower.iloc[0] < row["upper"] - row["lower"]


def test_set_labels_reuses_compiled_model(model, fit, data):
    compiled = model.compiled
    assert compiled is not None
    rng = np.random.default_rng(0)
    labels = rng.uniform(size=len(data))
    try:
        model.set_labels(labels)
        assert model.compiled is not compiled  # same compiled functions, new data
        fit = model.fit(draws=100, tune=100, chains=1, random_seed=1, log_likelihood=False)
        np.testing.assert_array_equal(fit.observed_data["share"].values, labels)
        assert "log_likelihood" not in fit.children
        with pytest.raises(ValueError, match="outside"):
            model.set_labels(labels + 1.0)
        np.testing.assert_array_equal(model.labels, labels)
    finally:
        model.set_labels(data["share"].to_numpy())


def test_fit_attrs_round_trip(fit):
    attrs = FitAttrs.from_fit(fit)
    assert attrs.formula == FORMULA and attrs.family == "weighted_bernoulli"
    assert attrs.label_columns == ["share"] and attrs.n_obs == 240
    assert attrs.to_attrs() == {k: v for k, v in fit.attrs.items() if k.startswith("softbayes_")}


def test_description_from_fit_pickles_and_predicts_like_the_model(model, fit, data):
    description = pickle.loads(pickle.dumps(description_from_fit(fit)))
    assert isinstance(description, ModelDescription)
    np.testing.assert_array_equal(description.main.design.X, model.description.main.design.X)
    for kind in ("mean", "log_likelihood"):
        np.testing.assert_array_equal(
            sb.predict(fit, data, kind=kind, model=description).values,
            sb.predict(fit, data, kind=kind, model=model).values)
    # a description on other rows keeps the formula state (scale(z) of the training rows)
    sub = description.with_data(data.iloc[:50])
    np.testing.assert_allclose(sub.main.design.X, model.description.main.design.X[:50])
    again = pickle.loads(pickle.dumps(sub))
    assert again.n_obs == 50
    np.testing.assert_array_equal(again.main.design.X, sub.main.design.X)


def test_refitter_fits_a_description_on_other_rows(fit, data):
    refitter = Refitter(description_from_fit(fit), data.iloc[:120])
    first = refitter.fit(random_seed=5, method="laplace", draws=50, chains=1)
    refitter.set_data(data.iloc[120:])
    second = refitter.fit(random_seed=5, method="laplace", draws=50, chains=1)
    assert first.attrs["softbayes_n_obs"] == 120 == second.attrs["softbayes_n_obs"]
    assert first.attrs["softbayes_data_hash"] != second.attrs["softbayes_data_hash"]
    direct = fit_description(description_from_fit(fit), data.iloc[120:], random_seed=5,
                             method="laplace", draws=50, chains=1)
    np.testing.assert_array_equal(direct.posterior["x"].values, second.posterior["x"].values)
