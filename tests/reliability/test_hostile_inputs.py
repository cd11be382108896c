"""Hostile input through the public Python API: one clear error, never a NumPy/PyTensor one.

Every case must raise exactly one ``ValueError`` (or ``TypeError``) raised *by softbayes*
(the innermost frame of the traceback is a softbayes module, not NumPy, pandas, formulae,
PyTensor or PyMC), whose message names the offending input (column, argument) and, where
rows are at fault, which rows. No sampling: everything fails (or passes) at construction.

The count of hostile inputs tried goes to ``test-artifacts/reliability-figures.json``
(``reliability`` fixture, tests/conftest.py).
"""

from __future__ import annotations

import re
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytest

import softbayes as sb

PACKAGE = Path(sb.__file__).resolve().parent
N = 30


def raised_by_softbayes(err: BaseException) -> bool:
    """True when the innermost frame of the traceback is in the softbayes package."""
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(PACKAGE)


def expect_error(reliability, case, fn, *needles, types=(ValueError, TypeError)):
    """Run ``fn``; it must raise one of ``types`` from softbayes, naming every needle."""
    reliability.add("hostile_inputs", case)
    with pytest.raises(types) as info:
        fn()
    err = info.value
    msg = str(err)
    frames = "".join(traceback.format_tb(err.__traceback__)[-2:])
    assert raised_by_softbayes(err), f"{case}: raised outside softbayes:\n{frames}{msg}"
    for needle in needles:
        if isinstance(needle, re.Pattern):
            assert needle.search(msg), f"{case}: {needle.pattern!r} not in: {msg}"
        else:
            assert needle in msg, f"{case}: {needle!r} not in: {msg}"
    return msg


@pytest.fixture
def df():
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "p": rng.uniform(0.05, 0.95, N),
        "x": rng.normal(size=N),
        "z": rng.normal(size=N),
        "w": rng.uniform(1, 5, N),
        "g": rng.choice(["a", "b", "c"], N),
        "pa": 0.2, "pb": 0.3, "pc": 0.5,
    })


# --------------------------------------------------------------------------- softbayes.Model

MODEL_CASES = {
    # case: (edit of the data frame, Model kwargs, needles in the message)
    "empty data frame": (lambda d: d.iloc[:0], {}, ["no rows"]),
    "one row": (lambda d: d.iloc[:1], {}, ["Too few rows: 1 observations"]),
    "labels as strings": (
        lambda d: d.assign(p=d.p.map(lambda v: f"{v:.2f}")), {}, ["'p'", "numeric"]),
    "labels as percentages": (
        lambda d: d.assign(p=d.p * 100), {}, ["'p'", "divide by 100", "30 of 30 rows"]),
    "labels as integer percentages": (
        lambda d: d.assign(p=(d.p * 100).round().astype(int)), {}, ["'p'", "divide by 100"]),
    "label above 1 (not percentages)": (
        lambda d: d.assign(p=np.where(d.index == 4, 1.5, d.p)), {},
        ["'p'", "1 of 30 rows", "row positions 4", "outside [0, 1]"]),
    "negative label": (
        lambda d: d.assign(p=np.where(d.index == 7, -0.1, d.p)), {},
        ["'p'", "row positions 7"]),
    "NaN label": (
        lambda d: d.assign(p=np.where(d.index == 3, np.nan, d.p)), {},
        ["'p'", "1 rows (index 3)"]),
    "inf label": (
        lambda d: d.assign(p=np.where(d.index == 5, np.inf, d.p)), {},
        ["'p'", "NaN or inf", "row positions 5"]),
    "pandas NA label (nullable Float64)": (
        lambda d: d.assign(p=pd.array([*d.p[:-1], None], dtype="Float64")), {},
        ["'p'", "index 29"]),
    "complex labels": (lambda d: d.assign(p=d.p.astype(complex)), {}, ["'p'", "numeric"]),
    "NaN predictor": (
        lambda d: d.assign(x=np.where(d.index == 2, np.nan, d.x)), {}, ["'x'", "index 2"]),
    "inf predictor": (
        lambda d: d.assign(x=np.where(d.index == 9, np.inf, d.x)), {},
        ["['x']", "index 9"]),
    "log of a negative predictor": (
        lambda d: d, {"formula": "p ~ log(z)"}, ["log(z)", "NaN or infinite"]),
    "NaN weight column": (
        lambda d: d.assign(w=np.where(d.index == 1, np.nan, d.w)), {"weights": "w"},
        ["'w'", "index 1"]),
    "inf weight column": (
        lambda d: d.assign(w=np.where(d.index == 6, np.inf, d.w)), {"weights": "w"},
        ["'w'", "row positions 6"]),
    "negative weight": (
        lambda d: d.assign(w=np.where(d.index == 8, -1.0, d.w)), {"weights": "w"},
        ["'w'", "negative", "row positions 8"]),
    "weights as strings": (
        lambda d: d.assign(w=d.w.astype(str)), {"weights": "w"}, ["'w'", "numeric"]),
    "all-zero weights": (lambda d: d.assign(w=0.0), {"weights": "w"}, ["all 30 weights are zero"]),
    "weights array of the wrong length": (
        lambda d: d, {"weights": np.ones(N - 1)}, ["weights", f"({N})", f"({N - 1},)"]),
    "weights for a density family": (
        lambda d: d, {"weights": "w", "likelihood": "continuous_bernoulli"},
        ["weights= is supported by"]),
    "duplicated predictor column": (
        lambda d: pd.concat([d, d[["x"]]], axis=1), {}, ["several columns named ['x']"]),
    "duplicated label column": (
        lambda d: pd.concat([d, d[["p"]]], axis=1), {}, ["several columns named ['p']"]),
    "missing predictor column": (
        lambda d: d.drop(columns="x"), {}, ["['x']", "not in the data"]),
    "missing label column": (lambda d: d.drop(columns="p"), {}, ["['p']", "not in the data"]),
    "missing weights column": (lambda d: d, {"weights": "nope"}, ["['nope']"]),
    "label used as predictor": (lambda d: d, {"formula": "p ~ x + p"}, ["also appear"]),
    "numbers stored as text": (
        lambda d: d.assign(x=d.x.astype(str)), {}, ["'x'", "pd.to_numeric"]),
    "numbers with dtype object": (
        lambda d: d.assign(x=d.x.astype(object)), {}, ["'x'", "pd.to_numeric"]),
    "numbers mixed with text": (
        lambda d: d.assign(x=[*d.x[:-1].tolist(), "n/a"]), {}, ["'x'", "mixes numbers and text"]),
    "identifier column as predictor": (
        lambda d: d.assign(x=[f"id{i}" for i in range(N)]), {},
        ["'x'", "30 distinct values", "identifier"]),
    "complex predictor": (lambda d: d.assign(x=d.x.astype(complex)), {}, ["'x'", "complex"]),
    "date predictor": (
        lambda d: d.assign(x=pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(N), "D")),
        {}, ["'x'", "dates"]),
    "categorical with a single level": (
        lambda d: d.assign(g="a"), {"formula": "p ~ g"}, ["'g'", "single level"]),
    "too many levels for the rows": (
        lambda d: d.iloc[:3].assign(g=["a", "b", "c"]), {"formula": "p ~ g + x"},
        ["Too few rows"]),
    "probability vectors not summing to 1": (
        lambda d: d.assign(pa=np.where(d.index == 2, 0.9, d.pa)),
        {"formula": "c(pa, pb, pc) ~ x", "likelihood": "soft_categorical"},
        ["c(pa, pb, pc)", "row positions 2", "sum to 1"]),
    "Beta labels at exactly 0 or 1": (
        lambda d: d.assign(p=np.where(d.index < 2, 1.0, d.p)), {"likelihood": "beta"},
        ["exactly 0 or 1", "squeeze=True"]),
    "formula without a tilde": (lambda d: d, {"formula": "p + x"}, ["one '~'"]),
    "formula with an unknown function": (
        lambda d: d, {"formula": "p ~ frobnicate(x)"}, ["frobnicate", "extra_namespace"]),
    "formula that is not a string": (lambda d: d, {"formula": 3}, ["formula must be a string"]),
    "data that is not a data frame": (lambda d: d.to_dict(), {}, ["pandas DataFrame"]),
    "unknown likelihood": (lambda d: d, {"likelihood": "gaussian"}, ["Unknown likelihood"]),
    "unknown prior term": (
        lambda d: d, {"priors": {"nope": {"dist": "Normal", "mu": 0, "sigma": 1}}},
        ["unknown term(s) ['nope']"]),
    "prior that is not a distribution": (
        lambda d: d, {"priors": {"x": {"dist": "Gaussian", "sigma": 1}}}, ["Gaussian"]),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_model_construction_rejects(reliability, df, case):
    edit, kwargs, needles = MODEL_CASES[case]
    kwargs = dict(kwargs)
    formula = kwargs.pop("formula", "p ~ x")
    data = edit(df)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no NumPy warnings on the way
        expect_error(reliability, f"Model: {case}", lambda: sb.Model(formula, data, **kwargs),
                     *needles)


def test_boolean_labels_are_exact_hard_labels(reliability, df):
    """Booleans are accepted on purpose: True/False are the hard labels 1/0 exactly."""
    reliability.add("hostile_inputs", "Model: labels as booleans")
    data = df.assign(p=df.x > 0)
    model = sb.Model("p ~ z", data)
    np.testing.assert_array_equal(model.labels, (df.x > 0).to_numpy(dtype=float))
    expect_error(reliability, "Model: boolean labels for the Beta family",
                 lambda: sb.Model("p ~ z", data, likelihood="beta"), "exactly 0 or 1")


def test_constant_predictor_warns_and_names_the_column(reliability, df):
    reliability.add("hostile_inputs", "Model: constant predictor")
    with pytest.warns(UserWarning, match=r"\['c'\] are constant"):
        sb.Model("p ~ x + c", df.assign(c=2.0))
    with pytest.warns(UserWarning, match=r"\['c'\] are constant"):
        sb.Model("p ~ c", df.assign(c=2.0))
    with warnings.catch_warnings():  # no intercept: the constant column is the intercept
        warnings.simplefilter("error")
        sb.Model("p ~ 0 + c + x", df.assign(c=1.0))


def test_separable_data_is_accepted(reliability, df):
    """Hard labels perfectly separated by x: no MLE, but the priors keep the posterior proper
    (the fit itself is in tests/reliability/test_sampling_faults.py)."""
    reliability.add("hostile_inputs", "Model: perfectly separable data")
    data = df.assign(p=(df.x > 0).astype(float))
    for family in ("weighted_bernoulli", "continuous_bernoulli", "bernoulli"):
        model = sb.Model("p ~ x", data, likelihood=family)
        assert model.n_obs == N


def test_identifier_group_factor_is_not_refused(df):
    """A grouping factor may have as many levels as rows (no dummy columns are built)."""
    data = df.assign(site=[f"s{i % 15}" for i in range(N)])
    sb.Model("p ~ x + (1|site)", data)


@pytest.mark.parametrize("which", ["labels", "predictor"])
def test_a_million_rows_of_text_fail_fast(reliability, which):
    n = 10**6
    if which == "labels":
        data = pd.DataFrame({"p": np.full(n, "0.5", dtype=object), "x": np.zeros(n)})
        needles = ["'p'", "numeric"]
    else:
        data = pd.DataFrame({"p": np.full(n, 0.5), "x": np.arange(n).astype(str)})
        needles = ["'x'", "pd.to_numeric"]
    t0 = time.perf_counter()
    expect_error(reliability, f"Model: 10^6 rows of text in the {which}",
                 lambda: sb.Model("p ~ x", data), *needles)
    assert time.perf_counter() - t0 < 10.0


# --------------------------------------------------------------------------- distributions

GOOD = np.linspace(0.1, 0.9, 5)

LABEL_CASES = {
    # case: (labels, needles)
    "empty": (np.array([]), ["no rows"]),
    "None": (None, ["got None"]),
    "scalar": (0.5, ["no rows"]),
    "strings": (np.array(["0.1"] * 5), ["numeric"]),
    "list of words": (["a", "b"], ["numeric"]),
    "object mix": (np.array([0.1, "a", 0.3], dtype=object), ["numeric"]),
    "ragged": ([[0.1, 0.9], [0.5]], ["numeric array"]),
    "complex": (GOOD.astype(complex), ["numeric"]),
    "percentages": (GOOD * 100, ["divide by 100", "5 of 5 rows"]),
    "NaN": (np.r_[GOOD[:-1], np.nan], ["NaN or inf", "row positions 4"]),
    "inf": (np.r_[np.inf, GOOD[1:]], ["NaN or inf", "row positions 0"]),
    "-inf": (np.r_[GOOD[:2], -np.inf, GOOD[3:]], ["NaN or inf", "row positions 2"]),
    "outside [0, 1]": (np.r_[GOOD[:-1], 1.0000001], ["outside [0, 1]", "row positions 4"]),
    "3-D": (np.full((2, 2, 2), 0.25), ["shape"]),
    "one column 2-D": (GOOD[:, None], ["at least 2 columns"]),
}


def _weighted_bernoulli(labels, weights=None):
    with pm.Model():
        sb.WeightedBernoulli("wb", labels=labels, logit_p=pm.Normal("b"), weights=weights)


def _soft_bernoulli(labels, weights=None):
    with pm.Model():
        sb.SoftBernoulli("sb", observed=labels, logit_p=pm.Normal("b"), weights=weights)


def _continuous_bernoulli(labels, weights=None):
    with pm.Model():
        sb.ContinuousBernoulli("cb", observed=labels, logit_p=pm.Normal("b"))


def _expand(labels, weights=None):
    sb.expand_soft_labels(np.zeros((5, 2)), labels, weights)


def _validate(labels, weights=None):
    sb.validate_soft_labels(labels, name="lab")


APIS = {
    "validate_soft_labels": (_validate, "lab"),
    "expand_soft_labels": (_expand, "labels"),
    "WeightedBernoulli": (_weighted_bernoulli, "wb"),
    "SoftBernoulli": (_soft_bernoulli, "sb"),
    "ContinuousBernoulli": (_continuous_bernoulli, "cb (observed)"),
}
#: cases where ContinuousBernoulli (a density of any shape, empty allowed) legitimately passes
CB_ACCEPTS = {"empty", "scalar", "one column 2-D", "3-D"}
#: ContinuousBernoulli has no None check of its own: observed=None means "not observed"
CB_SKIP = {"None"}


@pytest.mark.parametrize("case", list(LABEL_CASES))
@pytest.mark.parametrize("api", list(APIS))
def test_distributions_reject_bad_labels(reliability, api, case):
    fn, name = APIS[api]
    labels, needles = LABEL_CASES[case]
    if api == "ContinuousBernoulli" and case in CB_SKIP:
        pytest.skip("observed=None is a latent ContinuousBernoulli, not an error")
    if api == "ContinuousBernoulli" and case in CB_ACCEPTS:
        reliability.add("hostile_inputs", f"{api}: {case}")
        fn(labels)  # any shape of values in [0, 1] is fine for a density on [0, 1]
        return
    expect_error(reliability, f"{api}: labels {case}", lambda: fn(labels), f"{name}:",
                 *needles)


WEIGHT_CASES = {
    "NaN": (np.r_[1, 1, 1, 1, np.nan], ["NaN or inf", "row positions 4"]),
    "inf": (np.r_[np.inf, 1, 1, 1, 1], ["NaN or inf", "row positions 0"]),
    "negative": (np.r_[1, -2.0, 1, 1, 1], ["negative", "row positions 1"]),
    "strings": (np.array(["1"] * 5), ["numeric"]),
    "too short": (np.ones(3), ["(5,)", "(3,)"]),
    "2-D": (np.ones((5, 1)), ["(5, 1)"]),
    "all zero": (np.zeros(5), ["all 5 weights are zero"]),
}


@pytest.mark.parametrize("case", list(WEIGHT_CASES))
@pytest.mark.parametrize("api", ["expand_soft_labels", "WeightedBernoulli", "SoftBernoulli"])
def test_distributions_reject_bad_weights(reliability, api, case):
    fn, _ = APIS[api]
    weights, needles = WEIGHT_CASES[case]
    expect_error(reliability, f"{api}: weights {case}", lambda: fn(GOOD, weights), "weights",
                 *needles)


def test_parameter_and_index_problems(reliability):
    def wrong_logit_shape():
        with pm.Model():
            sb.WeightedBernoulli("wb", labels=GOOD, logit_p=pm.Normal("b", shape=3))

    expect_error(reliability, "WeightedBernoulli: logit_p of the wrong shape", wrong_logit_shape,
                 "logit_p: shape (3,)", "(5,)")

    def wrong_soft_shape():
        with pm.Model():
            sb.SoftBernoulli("sb", observed=GOOD, logit_p=pm.Normal("b", shape=2))

    expect_error(reliability, "SoftBernoulli: logit_p of the wrong shape", wrong_soft_shape,
                 "logit_p: shape (2,)")

    def gap_in_index():
        with pm.Model():
            sb.WeightedBernoulli("wb", labels=GOOD, logit_p=pm.Normal("b"),
                                 obs_index=[0, 0, 1, 1, 3])

    expect_error(reliability, "WeightedBernoulli: obs_index with a gap", gap_in_index,
                 "obs_index", "without gaps")

    def both_params():
        with pm.Model():
            sb.WeightedBernoulli("wb", labels=GOOD, logit_p=0.0, p=0.5)

    expect_error(reliability, "WeightedBernoulli: both p and logit_p", both_params,
                 "exactly one of p and logit_p")

    def cb_neither():
        with pm.Model():
            sb.ContinuousBernoulli("cb", observed=GOOD)

    expect_error(reliability, "ContinuousBernoulli: no parameter", cb_neither,
                 "needs one of `p` or `logit_p`")

    def categorical_1d():
        with pm.Model():
            sb.WeightedCategorical("wc", labels=GOOD, logits=np.zeros((5, 2)))

    expect_error(reliability, "WeightedCategorical: 1-D labels", categorical_1d,
                 "probability vectors of shape (n, K)")

    expect_error(reliability, "expand_soft_labels: X is None",
                 lambda: sb.expand_soft_labels(None, GOOD), "X:")
    expect_error(reliability, "expand_soft_labels: X of the wrong length",
                 lambda: sb.expand_soft_labels(np.zeros((3, 2)), GOOD), "X: has 3 rows", "5")


def test_continuous_bernoulli_masked_array_requests_imputation(reliability):
    """A masked array is the explicit way to ask PyMC to impute missing values."""
    reliability.add("hostile_inputs", "ContinuousBernoulli: masked NaN (explicit imputation)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pm.Model() as m:
            sb.ContinuousBernoulli("cb", observed=np.ma.masked_invalid(np.r_[GOOD, np.nan]),
                                   logit_p=pm.Normal("b"))
    assert "cb_unobserved" in [v.name for v in m.free_RVs]
