"""Smoke test of the annotator coverage study (``python -m validation.annotator_coverage``):
its simulation has the beta-binomial moments, and a two-replication run of one cell writes
its table. Not a coverage check (the study itself is in validation/)."""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd
import pytest
from scipy import special as sp

from validation import annotator_coverage as ac


@pytest.mark.parametrize("disagreement", [True, False])
def test_simulated_counts_have_beta_binomial_moments(disagreement):
    base = pd.DataFrame({"x1": np.zeros(200_000), "x2": np.zeros(200_000),
                         "pool": ["pool0"] * 200_000})
    m = 5
    frame = ac.simulate(base, m, disagreement, False, np.random.default_rng(3))
    mu = sp.expit(ac.COEFS["Intercept"])
    inflation = 1 + (m - 1) / (ac.KAPPA + 1) if disagreement else 1.0
    var = m * mu * (1 - mu) * inflation
    k = frame["k"].to_numpy()
    assert abs(k.mean() - m * mu) < 5 * np.sqrt(var / len(k))
    assert abs(k.var() / var - 1) < 0.02
    assert np.array_equal(frame["y"], k / m) and (frame["m"] == m).all()


def test_two_replications_of_one_cell_write_the_table(tmp_path):
    df = ac.run(2, workers=0, fits=("beta_binomial",), cell_list=[(5, True, False)],
                out=tmp_path, draws=100, tune=100, echo=None)
    assert list(df.coefficient) == list(ac.COEFS)
    assert (df.reps == 2).all() and (df.failed == 0).all()
    assert df.coverage.between(0, 1).all() and (df.mean_width > 0).all()
    saved = pd.read_csv(tmp_path / "annotator_coverage.csv")
    assert len(saved) == 3
    md = (tmp_path / "annotator_coverage.md").read_text()
    assert "| 5 | on | no |" in md and "beta-binomial" in md


def test_chance_outside_the_band_matches_a_direct_sum():
    for reps in (60, 200, 400):
        direct = sum(comb(reps, h) * 0.9**h * 0.1 ** (reps - h) for h in range(reps + 1)
                     if not 0.86 <= h / reps <= 0.94)
        assert ac.chance_outside(reps) == pytest.approx(direct, rel=1e-9)
