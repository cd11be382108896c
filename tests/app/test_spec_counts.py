"""Specs with counts of trials (``[data] trials``) and ``[models.options] calibrate``: what the
models see, and errors naming the key and the line. No fitting."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from spec_helpers import cli, write

from softbayes.app.spec import SpecError, check_spec, load_spec
from softbayes.data.datasets import ANNOTATORS_TRUTH, BUILTIN_DATASETS, load_dataset

ROOT = Path(__file__).resolve().parents[2]

SPEC = """\
title = "counts"
seed = 3

[data]
path = "c.csv"
labels = "k"
trials = "m"

[sampler]
draws = 10
tune = 10
chains = 1

[[models]]
name = "bb"
likelihood = "beta_binomial"
formula = "~ x"

[[models]]
name = "wb"
likelihood = "weighted_bernoulli"
formula = "~ x"

[models.options]
calibrate = "dispersion"
"""


@pytest.fixture
def counts_folder(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    rng = np.random.default_rng(1)
    m = rng.integers(1, 9, 40)
    pd.DataFrame({"k": rng.binomial(m, 0.4), "m": m, "x": rng.normal(size=40),
                  "p_a": 0.5, "p_b": 0.5}).to_csv(d / "c.csv", index=False)
    return d


def test_trials_give_counts_to_count_families_and_proportions_to_others(counts_folder):
    spec = load_spec(write(counts_folder, SPEC))
    assert [m.formula for m in spec.models] == ["p(k, m) ~ x", "p(k, m) ~ x"]
    data, built = check_spec(spec)
    bb, wb = built["bb"][1].description, built["wb"][1].description
    np.testing.assert_array_equal(bb.labels, data["k"])  # the counts k
    np.testing.assert_array_equal(bb.row_trials(bb.data), data["m"])
    np.testing.assert_allclose(wb.labels, data["k"] / data["m"])  # the proportions k / m
    assert wb.weights is None  # p(k, m) gives no weights unless [data] weights asks
    assert spec.models[1].fit_kwargs()["calibrate"] == "dispersion"
    assert "calibrate" not in spec.models[0].fit_kwargs()
    # calibrate is part of what determines a fit (its cache key)
    other = load_spec(write(counts_folder, SPEC.replace('"dispersion"', '"sandwich"')))
    assert spec.cache_key(spec.models[1], "h") != other.cache_key(other.models[1], "h")


@pytest.mark.parametrize(
    ("edit", "key", "needle", "message"),
    [
        (('trials = "m"', 'trials = "n"'), "data.trials", 'trials = "n"', "not in the data"),
        (('trials = "m"', 'trials = "k"'), "data.trials", 'trials = "k"',
         "not a label column"),
        (('trials = "m"', "trials = 5"), "data.trials", "trials = 5", "expected a string"),
        (('labels = "k"', 'labels = ["p_a", "p_b"]'), "data.trials", 'trials = "m"',
         "one label column"),
        (('trials = "m"\n', ""), "models[1].likelihood", 'likelihood = "beta_binomial"',
         "trials"),
        (('calibrate = "dispersion"', 'calibrate = "always"'), "models[2].options.calibrate",
         'calibrate = "always"', "choose one of"),
        (('formula = "~ x"\n\n[[models]]', 'formula = "~ x"\n\n[models.options]\n'
          'calibrate = "sandwich"\n\n[[models]]'), "models[1].options.calibrate",
         'calibrate = "sandwich"', "not 'beta_binomial'"),
        (('formula = "~ x"\n\n[[models]]', 'formula = "k ~ x"\n\n[[models]]'),
         "models[1].formula", 'formula = "k ~ x"', "p(k, m)"),
    ],
)
def test_count_spec_errors_name_key_and_line(counts_folder, edit, key, needle, message):
    text = SPEC.replace(*edit)
    assert text != SPEC
    path = write(counts_folder, text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if needle in s)
    with pytest.raises(SpecError) as info:
        check_spec(load_spec(path))
    assert info.value.key == key, str(info.value)
    assert info.value.line == line, str(info.value)
    assert message in str(info.value)
    r = cli("check", path)
    assert r.exit_code == 2 and f"key {key}" in r.output and "Traceback" not in r.output


def test_bad_counts_in_the_data_name_the_rows(counts_folder):
    df = pd.read_csv(counts_folder / "c.csv")
    df.loc[3, "k"] = df.loc[3, "m"] + 1
    df.to_csv(counts_folder / "c.csv", index=False)
    with pytest.raises(SpecError) as info:
        check_spec(load_spec(write(counts_folder, SPEC)))
    assert "0 <= k <= m" in str(info.value) and "index 3" in str(info.value)
    assert info.value.key == "data.trials"


def test_annotators_spec_and_data():
    spec = load_spec(ROOT / "models" / "annotators.toml")
    _, built = check_spec(spec)
    assert filecmp.cmp(ROOT / "models" / "annotators.toml",
                       ROOT / "softbayes" / "app" / "specs" / "annotators.toml", shallow=False)
    likelihoods = [m.likelihood for m in spec.models]
    assert {"beta_binomial", "weighted_bernoulli", "beta", "ordered_beta",
            "continuous_bernoulli"} <= set(likelihoods)
    calibrated = [m for m in spec.models if m.fit_kwargs().get("calibrate")]
    assert [m.likelihood for m in calibrated] == ["weighted_bernoulli"]
    a1, a2 = load_dataset("annotators"), load_dataset("annotators")
    pd.testing.assert_frame_equal(a1, a2)  # fixed seed
    info = BUILTIN_DATASETS["annotators"]
    k, m = a1[info.labels[0]], a1[info.trials]
    assert ((0 <= k) & (k <= m) & (m >= 3) & (m <= 20)).all()
    np.testing.assert_allclose(a1["share_yes"], k / m)
    assert set(a1["annotator_pool"].cat.categories) == set(ANNOTATORS_TRUTH["pool_effect"])
    assert len(built) == len(spec.models)
