"""Simulation-based calibration (:mod:`sbc_helpers`) of the count families.

Counts are simulated by the family's own ``draws``, given the trials. The labels as given
of ``p(k, m)`` are the proportions ``k / m``: that is what ``draws`` returns and what a
refit with other labels takes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sbc_helpers import check_sbc, prior_truths

import softbayes as sb

N_REPS = 150
N_OBS = 60
DRAWS = 300
CHAINS = 2
THIN = 6  # 2 chains x 300 draws -> 100 draws, ranks 0..100
SEED = 4343


@pytest.mark.slow
@pytest.mark.parametrize("likelihood", ["beta_binomial", "binomial"])
def test_simulation_based_calibration_of_counts(likelihood):
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=N_OBS)
    xc = x - x.mean()
    m = rng.integers(2, 13, size=N_OBS).astype(float)  # 2 to 12 annotators per item
    model = sb.Model("p(k, m) ~ x", pd.DataFrame({"k": 0, "m": m, "x": x}),
                     likelihood=likelihood)
    names, truths = prior_truths(model, N_REPS, rng)
    assert set(names) == {"Intercept_centered", "x"} | (
        {"phi"} if likelihood == "beta_binomial" else set())
    fam = model.family
    labels = [fam.draws(rng, eta=t["Intercept_centered"] + t["x"] * xc, trials=m,
                        **({"phi": t["phi"]} if "phi" in t else {}))
              for t in truths]
    check_sbc(model, truths, labels, tag=likelihood, seed=SEED, names=names, draws=DRAWS,
              chains=CHAINS, thin=THIN)
