"""Data and option problems give ValueErrors that name the columns, rows and the fix."""

import importlib.util

import numpy as np
import pandas as pd
import pytest

import softbayes as sb
from softbayes.terms.design import parse_formula


@pytest.fixture
def df():
    rng = np.random.default_rng(0)
    n = 40
    return pd.DataFrame({
        "p": rng.uniform(0.05, 0.95, n),
        "x": rng.normal(size=n),
        "z": rng.uniform(1, 2, n),
        "g": rng.choice(["a", "b", "c"], n),
        "pa": 0.2, "pb": 0.3, "pc": 0.5,
    }, index=np.arange(100, 100 + n))


def test_missing_values_name_columns_and_rows(df):
    df.loc[[103, 110], "x"] = np.nan
    df.loc[[105], "g"] = None
    with pytest.raises(ValueError) as err:
        sb.Model("p ~ x + (1|g)", df)
    msg = str(err.value)
    assert "'x': 2 rows (index 103, 110)" in msg
    assert "'g': 1 rows (index 105)" in msg
    assert "dropna" in msg


def test_missing_labels(df):
    df.loc[101, "p"] = np.nan
    with pytest.raises(ValueError, match=r"'p': 1 rows \(index 101\)"):
        sb.Model("p ~ x", df)


def test_label_out_of_range_names_column_count_rows(df):
    df.loc[[102, 107], "p"] = [1.5, -0.2]
    with pytest.raises(ValueError) as err:
        sb.Model("p ~ x", df, likelihood="continuous_bernoulli")
    msg = str(err.value)
    assert "label column 'p'" in msg
    assert "2 of 40 rows" in msg and "2, 7" in msg  # row positions
    assert "outside [0, 1]" in msg


def test_probability_vectors_must_sum_to_one(df):
    df.loc[104, "pa"] = 0.4
    with pytest.raises(ValueError, match=r"c\(pa, pb, pc\).*1 of 40 row.*sum to 1"):
        sb.Model("c(pa, pb, pc) ~ x", df, likelihood="soft_categorical")


def test_unknown_column(df):
    with pytest.raises(ValueError, match=r"column\(s\) \['nope'\] that are not in the data"):
        sb.Model("p ~ x + log(nope)", df)
    with pytest.raises(ValueError, match=r"\['q'\] that are not in the data"):
        sb.Model("q ~ x", df)
    with pytest.raises(ValueError, match=r"\['w'\]"):
        sb.Model("p ~ x", df, weights="w")


def test_too_few_rows(df):
    small = df.iloc[:3]
    with pytest.raises(ValueError, match=r"Too few rows: 3 observations for 4 .*coefficients "
                                         r"\(Intercept, x, z, log\(z\)\)"):
        sb.Model("p ~ x + z + log(z)", small)
    with pytest.raises(ValueError, match=r"Too few rows: 2 observations for 2 .*phi"):
        sb.Model("p ~ 1", df.iloc[:2], likelihood="beta")


def test_beta_exact_zeros_and_ones(df):
    df.loc[[101, 103], "p"] = 0.0
    df.loc[[108], "p"] = 1.0
    with pytest.raises(ValueError) as err:
        sb.Model("p ~ x", df, likelihood="beta")
    msg = str(err.value)
    assert "3 of 40 labels are exactly 0 or 1 (2 zeros, 1 ones; index 101, 103, 108)" in msg
    assert "squeeze=True" in msg and "(y(n-1)+1/2)/n" in msg
    assert "continuous_bernoulli" in msg
    model = sb.Model("p ~ x", df, likelihood="beta", squeeze=True)
    n = len(df)
    assert model.labels[1] == pytest.approx((0.0 * (n - 1) + 0.5) / n)
    assert model.labels[8] == pytest.approx((1.0 * (n - 1) + 0.5) / n)
    assert model.labels_info == {"squeeze": 1, "n_squeezed": 3}


def test_squeeze_is_recorded_in_fit_attrs(df):
    df.loc[[101], "p"] = 1.0
    model = sb.Model("p ~ x", df, likelihood="beta", squeeze=True)
    fit = model.fit(draws=50, tune=50, chains=1, random_seed=0, sampler="pymc",
                    log_likelihood=False)
    assert fit.attrs["softbayes_squeeze"] == 1
    assert fit.attrs["softbayes_n_squeezed"] == 1
    assert '"squeeze": true' in fit.attrs["softbayes_options"]
    np.testing.assert_allclose(fit.observed_data["p"].values, model.labels)


def test_options_for_the_wrong_family(df):
    with pytest.raises(ValueError, match="threshold= applies to likelihood='bernoulli'"):
        sb.Model("p ~ x", df, threshold=0.3)
    with pytest.raises(ValueError, match="squeeze= applies to likelihood='beta'"):
        sb.Model("p ~ x", df, likelihood="continuous_bernoulli", squeeze=True)
    with pytest.raises(ValueError, match="phi_formula= applies to likelihood='beta'"):
        sb.Model("p ~ x", df, phi_formula="~ z")
    with pytest.raises(ValueError, match="weights= is supported by"):
        sb.Model("p ~ x", df, likelihood="beta", weights=np.ones(len(df)))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        sb.Model("p ~ x", df, likelihood="bernoulli", threshold=1.0)
    with pytest.raises(ValueError, match="Unknown likelihood 'gaussian'"):
        sb.Model("p ~ x", df, likelihood="gaussian")


def test_bernoulli_threshold_is_explicit(df):
    with pytest.warns(UserWarning, match=r"40 of 40 labels .* thresholded at 0.7"):
        model = sb.Model("p ~ x", df, likelihood="bernoulli", threshold=0.7)
    np.testing.assert_array_equal(model.labels, (df.p.to_numpy() >= 0.7).astype(float))
    assert model.labels_info == {"threshold": 0.7, "n_thresholded": 40}


def test_formula_and_family_must_agree(df):
    with pytest.raises(ValueError, match="needs K >= 2 label columns"):
        sb.Model("p ~ x", df, likelihood="soft_categorical")
    with pytest.raises(ValueError, match="takes one label column"):
        sb.Model("c(pa, pb, pc) ~ x", df)
    with pytest.raises(ValueError, match="left-hand side must name the label column"):
        sb.Model("log(p) ~ x", df)
    with pytest.raises(ValueError, match="one '~'"):
        sb.Model("p + x", df)


def test_parse_formula():
    assert parse_formula("c(a, `b c`, d_1) ~ x + (1|g)") == (["a", "b c", "d_1"],
                                                             "x + (1|g)", True)
    assert parse_formula("`my share` ~ 1") == (["my share"], "1", False)


def test_priors_override_and_errors(df):
    model = sb.Model("p ~ x + g + (1|g)", df, priors={
        "x": {"dist": "StudentT", "nu": 3, "mu": 0, "sigma": 1},
        "g": {"dist": "Normal", "mu": 0, "sigma": [1.0, 2.0]},
        "1|g": {"dist": "HalfStudentT", "nu": 3, "sigma": 0.5},
    })
    table = model.priors
    assert table.loc["x", "prior"] == "StudentT(nu=3, mu=0, sigma=1)"
    assert table.loc["x", "source"] == "user"
    assert table.loc["g", "prior"] == "Normal(mu=0, sigma=[1, 2])"
    assert table.loc["1|g", "parameter"] == "1|g_sigma"
    assert table.loc["Intercept", "source"].startswith("default")
    with pytest.raises(ValueError, match=r"unknown term\(s\) \['y'\].*'x'"):
        sb.Model("p ~ x", df, priors={"y": {"dist": "Normal", "mu": 0, "sigma": 1}})
    with pytest.raises(ValueError, match="Unknown prior distribution 'Gaussian'"):
        sb.Model("p ~ x", df, priors={"x": {"dist": "Gaussian", "sigma": 1}})
    with pytest.raises(ValueError, match="'dist' entry"):
        sb.Model("p ~ x", df, priors={"x": {"sigma": 1}})
    with pytest.raises(ValueError, match="does not fit the parameter's shape"):
        sb.Model("p ~ g", df, priors={"g": {"dist": "Normal", "mu": 0, "sigma": [1, 2, 3]}})


def test_sampler_errors(df):
    model = sb.Model("p ~ x", df)
    with pytest.raises(ValueError, match="Unknown sampler 'stan'"):
        model.fit(sampler="stan")
    for name in ("numpyro", "blackjax"):
        if importlib.util.find_spec(name) is None:
            with pytest.raises(ImportError, match=rf"sampler='{name}' needs the {name} package"):
                model.fit(sampler=name)


def test_prediction_data_problems(df):
    fit_free = sb.Model("p ~ x + log(z)", df)
    new = df.drop(columns=["z"])
    with pytest.raises(ValueError, match=r"\['z'\] that are not in the data"):
        fit_free.check_new_data(new)
    new = df.copy()
    new.loc[100, "z"] = np.nan
    with pytest.raises(ValueError, match=r"'z': 1 rows \(index 100\)"):
        fit_free.check_new_data(new)


def test_non_finite_design_column(df):
    df.loc[[106], "z"] = -1.0
    with pytest.raises(ValueError,
                       match=r"\['log\(z\)'\] are NaN or infinite in 1 rows \(index 106"):
        sb.Model("p ~ log(z)", df)
