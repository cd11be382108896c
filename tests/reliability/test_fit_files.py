"""Fit files are untrusted input: every softbayes attr is checked before anything is built.

Each malformed attr below is written into a copy of a real fit file (with h5py, as an
attacker or a broken tool would) and read back with ``sb.load_fit`` and ``softbayes
compare``: a ``FitFileError`` (a ValueError) / exit status 2 naming the file and the attr,
never a bare Python error, and no unpickling, command or removal on the way (audit guard).
Unknown ``softbayes_*`` attrs warn and are dropped. A fit written before these checks existed
(tests/fixtures/legacy_fit_*.nc, committed) still loads and predicts the same numbers as a
recomputation from its stored posterior in NumPy.

Counts go to the ``reliability`` fixture, section ``hostile_fit_attrs``.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from scipy.stats import beta as beta_dist
from typer.testing import CliRunner

import softbayes as sb
from softbayes.app.cli import app
from softbayes.io.fits import FIT_ATTRS, FitFileError, save_fit, validate_fit

DATA = Path(__file__).resolve().parents[1] / "fixtures"
NO_PICKLE = ("pickle.find_class",)


# --------------------------------------------------------------------------- legacy fits


def _legacy(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no unknown-attr warning, nothing deprecated
        return sb.load_fit(DATA / name)


def test_legacy_weighted_fit_loads_and_predicts(audit_guard):
    with audit_guard(forbid=NO_PICKLE):
        fit = _legacy("legacy_fit_weighted.nc")
        model = sb.Model.from_fit(fit)
    assert model.formula == "share ~ scale(x) + C(g)"
    train = fit["training_data"].to_dataset()
    x = train["x"].values
    g = np.asarray([str(v) for v in train["g"].values])
    # the design by hand: scale() with ddof=0, treatment dummies with the first level dropped
    X = np.column_stack([np.ones_like(x), (x - x.mean()) / x.std(), g == "b", g == "c"])
    np.testing.assert_allclose(X, fit["constant_data"]["X"].values, rtol=1e-12)
    post = fit.posterior
    beta = np.concatenate([post["Intercept"].values[..., None],
                           post["scale(x)"].values[..., None], post["C(g)"].values], axis=-1)
    expected = expit(np.einsum("cdk,nk->cdn", beta, X))
    np.testing.assert_allclose(sb.predict(fit).values, expected, rtol=1e-10)
    np.testing.assert_allclose(model.predict(fit).values, expected, rtol=1e-10)
    new = pd.DataFrame({"x": [0.0, 1.0], "g": ["c", "a"]})
    Xn = np.column_stack([np.ones(2), (new["x"] - x.mean()) / x.std(), [0, 0], [1, 0]])
    np.testing.assert_allclose(sb.predict(fit, new).values,
                               expit(np.einsum("cdk,nk->cdn", beta, Xn)), rtol=1e-10)


def test_legacy_beta_fit_with_phi_formula_loads_and_predicts(audit_guard):
    with audit_guard(forbid=NO_PICKLE):
        fit = _legacy("legacy_fit_beta.nc")
    assert fit.attrs["softbayes_phi_formula"] == "x"
    x = fit["training_data"]["x"].values
    post = fit.posterior
    mu = expit(post["Intercept"].values[..., None] + post["x"].values[..., None] * x)
    np.testing.assert_allclose(sb.predict(fit).values, mu, rtol=1e-10)
    phi = np.exp(post["phi_Intercept"].values[..., None] + post["phi_x"].values[..., None] * x)
    np.testing.assert_allclose(fit["constant_data"]["X_phi"].values,
                               np.column_stack([np.ones_like(x), x]), rtol=1e-12)
    # the phi formula enters through the Beta log-density of the stored labels
    frame = fit["training_data"].to_dataset().to_dataframe().reset_index(drop=True)
    y = frame["share"].to_numpy()
    expected = beta_dist.logpdf(y, mu * phi, (1 - mu) * phi)
    np.testing.assert_allclose(sb.predict(fit, frame, kind="log_likelihood").values, expected,
                               rtol=1e-8)


def test_every_attr_of_a_current_fit_is_known(base_fit):
    fit, _ = base_fit
    unknown = [k for k in fit.attrs if k.startswith("softbayes_")
               and k[len("softbayes_"):] not in FIT_ATTRS]
    assert unknown == []
    info = validate_fit(fit)
    assert info["formula"] == "share ~ x + z" and info["family"] == "weighted_bernoulli"


# --------------------------------------------------------------------------- tampered attrs


@pytest.fixture(scope="module")
def base_fit(tmp_path_factory):
    d = tmp_path_factory.mktemp("fits")
    rng = np.random.default_rng(5)
    n = 40
    x = rng.normal(size=n)
    df = pd.DataFrame({"x": x, "z": rng.normal(size=n), "g": rng.choice(["a", "b"], n),
                       "share": np.clip(expit(x) + rng.normal(scale=0.05, size=n), .02, .98)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sb.Model("share ~ x + z", df).fit(draws=40, chains=1, method="laplace",
                                                random_seed=3)
    path = save_fit(fit, d / "base.nc")
    return fit, path


#: case -> (attr (a root attr, or "group/variable:attr"), value, words of the message)
TAMPERED = {
    "unknown family": ("softbayes_family", "gaussian", ["not one of"]),
    "family of the wrong type": ("softbayes_family", 3, ["expected text"]),
    "formula that is a number": ("softbayes_formula", 42, ["expected text"]),
    "formula with two tildes": ("softbayes_formula", "share ~ x ~ z", ["refused"]),
    "priors not JSON": ("softbayes_priors", "cos.system('x')", ["not valid JSON"]),
    "priors not an object": ("softbayes_priors", "[1, 2]", ["JSON object"]),
    "prior dist that is not a name": (
        "softbayes_priors", '{"x": {"dist": "__class__", "kwargs": {}}}',
        ["PyMC distribution name"]),
    "prior dist with a dot": (
        "softbayes_priors", '{"x": {"dist": "os.system", "kwargs": {}}}',
        ["PyMC distribution name"]),
    "prior parameter that is text": (
        "softbayes_priors", '{"x": {"dist": "Normal", "kwargs": {"mu": "os.system"}}}',
        ["finite number"]),
    "prior parameter NaN": (
        "softbayes_priors", '{"x": {"dist": "Normal", "kwargs": {"sigma": NaN}}}', ["NaN"]),
    "prior with an extra key": (
        "softbayes_priors", '{"x": {"dist": "Normal", "kwargs": {}, "module": "os"}}',
        ["keys dist, kwargs, source"]),
    "prior parameter name with dunder": (
        "softbayes_priors", '{"x": {"dist": "Normal", "kwargs": {"__class__": 1}}}',
        ["not a name"]),
    "JSON nested too deeply": ("softbayes_priors", "[" * 100_000 + "]" * 100_000,
                               ["nested too deeply"]),
    "options with an unknown key": (
        "softbayes_options", '{"weights": null, "pickle": "x"}', ["unknown option"]),
    "threshold out of range": ("softbayes_options", '{"threshold": 5}', ["strictly between"]),
    "weights that are not a column name": ("softbayes_options", '{"weights": [1, 2]}',
                                           ["column name"]),
    "label columns not a list": ("softbayes_label_columns", '"share"', ["JSON list"]),
    "no label columns": ("softbayes_label_columns", "[]", ["at least 1"]),
    "negative n_obs": ("softbayes_n_obs", -1, ["count"]),
    "n_obs as text": ("softbayes_n_obs", "40", ["integer"]),
    "draws as a fraction": ("softbayes_draws", 1.5, ["integer"]),
    "hash that is not a digest": ("softbayes_data_hash", "abc", ["SHA-256"]),
    "unknown log-likelihood kind": ("softbayes_log_likelihood_kind", "pickle", ["not one of"]),
    "log-likelihood variable that is not a name": (
        "softbayes_log_likelihood_var", "labels; rm -rf", ["plain name"]),
    "unknown method": ("softbayes_method", "exec", ["not one of"]),
    "threshold attr out of range": ("softbayes_threshold", 2.0, ["strictly between"]),
    "phi formula on another family": ("softbayes_phi_formula", "z",
                                      ["precision phi", "beta,"]),
    "phi formula with a left-hand side": ("softbayes_phi_formula", "share ~ z", ["refused"]),
    "sandwich covariance not numbers": ("softbayes_sandwich_covariance", '[["a"]]',
                                        ["numbers"]),
    "attr that is an array": ("softbayes_chains", np.array([1, 2]), ["integer"]),
    "training column of an unknown kind": ("training_data/x:kind", "pickle", ["not one of"]),
    "training column with a bad dtype": ("training_data/x:pandas_dtype", "object; os",
                                         ["dtype name"]),
    "training column name with NUL": ("training_data/x:column", "x\x01\x02" * 400,
                                      ["longer than"]),
}


def _write(src, dst, where, value):
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        if ":" in where:
            obj, key = where.split(":")
            f[obj].attrs[key] = value
        else:
            f.attrs[where] = value
    return dst


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_attr_is_refused_naming_file_and_key(reliability, audit_guard, base_fit,
                                                       tmp_path, case):
    where, value, needles = TAMPERED[case]
    key = where.split(":")[0]
    _, src = base_fit
    path = _write(src, tmp_path / "tampered.nc", where, value)
    with audit_guard(forbid=NO_PICKLE):
        for check in (True, False):
            with pytest.raises(FitFileError) as info:
                sb.load_fit(path, check=check)
            msg = str(info.value)
            assert "tampered.nc" in msg and key in msg, msg
            for needle in needles:
                assert needle in msg, msg
        result = CliRunner().invoke(app, ["compare", str(path)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "tampered.nc" in errors[0] and key in errors[0], result.output
    assert "Traceback" not in result.output
    reliability.add("hostile_fit_attrs", f"load_fit and softbayes compare: {case}")


def test_tampered_attr_in_memory_is_refused(reliability, base_fit):
    fit, _ = base_fit
    for case, (where, value, needles) in TAMPERED.items():
        if ":" in where:
            continue
        bad = fit.copy()
        bad.attrs = {**fit.attrs, where: value}
        with pytest.raises(FitFileError, match=where) as info:
            sb.Model.from_fit(bad)
        assert info.value.source == "the fit" and info.value.key == where
        for needle in needles:
            assert needle in str(info.value)
        reliability.add("hostile_fit_attrs", f"Model.from_fit: {case}")


def test_missing_attrs_needed_to_rebuild(base_fit):
    fit, _ = base_fit
    for key in ("softbayes_formula", "softbayes_priors", "softbayes_options"):
        bad = fit.copy()
        bad.attrs = {k: v for k, v in fit.attrs.items() if k != key}
        with pytest.raises(FitFileError, match=f"{key}.*missing"):
            sb.Model.from_fit(bad)


def test_unknown_attrs_warn_and_are_dropped(reliability, base_fit, tmp_path):
    _, src = base_fit
    path = _write(src, tmp_path / "future.nc", "softbayes_pickled_model", "gASVAAAA")
    with pytest.warns(UserWarning, match="softbayes_pickled_model") as record:
        fit = sb.load_fit(path)
    assert "future.nc" in str(record[0].message)
    assert "softbayes_pickled_model" not in fit.attrs
    assert fit.attrs["softbayes_formula"] == "share ~ x + z"  # the rest is intact
    reliability.add("hostile_fit_attrs", "unknown attr warns and is dropped")


def test_priors_keep_working_after_validation(base_fit):
    fit, _ = base_fit
    stored = json.loads(fit.attrs["softbayes_priors"])
    rebuilt = sb.Model.from_fit(fit)
    assert set(rebuilt.priors_dict()) == set(stored)
