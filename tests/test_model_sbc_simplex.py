"""Simulation-based calibration (:mod:`sbc_helpers`) of the simplex-density families.

K = 3 labels simulated by the family's own ``draws``: calibrated inference (and draws
consistent with the log density) gives uniform ranks for every parameter component.

The priors are narrower than the defaults so that Dirichlet draws almost never underflow
to an exact zero share (refused without the squeeze, whose likelihood is another model); a
replicate whose labels hold one is drawn again, which may happen at most twice (conditioning
on so rare an event leaves the ranks uniform to well within the test's power).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sbc_helpers import check_sbc, prior_truths

import softbayes as sb
from softbayes.terms.families import get_family

N_REPS = 100
N_OBS = 40
DRAWS, CHAINS = 300, 2  # draws = tuning steps = kept draws per chain
THIN = 6  # 2 chains x 300 draws -> 100 draws, ranks 0..100
SD = 0.75  # of the intercepts and slopes
PRIORS = {
    "Intercept": {"dist": "Normal", "mu": 0.0, "sigma": SD},
    "x": {"dist": "Normal", "mu": 0.0, "sigma": SD},
}
LOG_PHI = (3.5, 0.4)
PHI_PRIOR = {"dist": "LogNormal", "mu": LOG_PHI[0], "sigma": LOG_PHI[1]}
MAX_REDRAWS = 2


@pytest.mark.slow
@pytest.mark.parametrize("family", ["dirichlet", "continuous_categorical"])
def test_simulation_based_calibration(family):
    rng = np.random.default_rng(515)
    fam = get_family(family)
    x = rng.normal(size=N_OBS)
    x -= x.mean()  # centred: the intercept is the centred intercept the model samples
    start = rng.dirichlet(np.ones(3), size=N_OBS)
    df = pd.DataFrame({"a": start[:, 0], "b": start[:, 1], "c": start[:, 2], "x": x})
    priors = dict(PRIORS, **({"phi": PHI_PRIOR} if "phi" in fam.parameters else {}))
    model = sb.Model("c(a, b, c) ~ x", df, likelihood=family, priors=priors)
    names, spare = prior_truths(model, N_REPS + MAX_REDRAWS, rng)
    truths, labels = [], []
    for truth in spare:
        eta = truth["Intercept_centered"] + np.outer(x, truth["x"])
        params = {"eta": np.column_stack([np.zeros(N_OBS), eta])}
        if "phi" in fam.parameters:
            params["phi"] = np.full(N_OBS, truth["phi"])
        lab = fam.draws(rng, **params)
        if (lab > 0).all() or family == "continuous_categorical":
            truths.append(truth)
            labels.append(lab)
        if len(truths) == N_REPS:
            break
    assert len(truths) == N_REPS  # at most MAX_REDRAWS replicates redrawn
    check_sbc(model, truths, labels, tag=family, seed=515, names=names, draws=DRAWS,
              chains=CHAINS, thin=THIN)
