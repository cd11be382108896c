"""Simulation-based calibration (Talts et al. 2018) of the simplex-density families.

The method of ``tests/test_model_sbc.py``: for each replicate, parameters drawn from the
priors (set here and drawn here), K = 3 labels simulated by the family's own ``draws``, the
*same compiled model* refitted with only the labels swapped (``Model.set_labels``), and the
rank of the true value among thinned posterior draws recorded. Calibrated inference (and
draws consistent with the log density) gives uniform ranks: chi-square test over 10 bins
for every parameter component.

The priors are narrower than the defaults so that Dirichlet draws almost never underflow
to an exact zero share (refused without the squeeze, whose likelihood is another model); a
replicate whose labels hold one is drawn again, which may happen at most twice (conditioning
on so rare an event leaves the ranks uniform to well within the test's power).
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import softbayes as sb
from softbayes.terms.families import get_family

N_REPS = 100
N_OBS = 40
DRAWS, TUNE, CHAINS = 300, 300, 2
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
    names = ["Intercept_centered", "x"] + (["phi"] if "phi" in fam.parameters else [])
    ranks = {(n, j): [] for n in names for j in range(1 if n == "phi" else 2)}
    redraws = 0
    for rep in range(N_REPS):
        while True:
            truth = {"Intercept_centered": rng.normal(0, SD, 2), "x": rng.normal(0, SD, 2)}
            eta = truth["Intercept_centered"] + np.outer(x, truth["x"])
            params = {"eta": np.column_stack([np.zeros(N_OBS), eta])}
            if "phi" in fam.parameters:
                truth["phi"] = np.atleast_1d(rng.lognormal(*LOG_PHI))
                params["phi"] = np.full(N_OBS, truth["phi"][0])
            labels = fam.draws(rng, **params)
            if (labels > 0).all() or family == "continuous_categorical":
                break
            redraws += 1
        assert redraws <= MAX_REDRAWS
        model.set_labels(labels)
        fit = model.fit(draws=DRAWS, tune=TUNE, chains=CHAINS, random_seed=rep,
                        log_likelihood=False)
        for (name, j), r in ranks.items():
            draws = fit.posterior[name].values[:, ::THIN]
            draws = draws.reshape(-1) if name == "phi" else draws[..., j].reshape(-1)
            r.append(int((draws < truth[name][j]).sum()))
    n_draws = CHAINS * DRAWS // THIN
    for key, r in ranks.items():
        counts, _ = np.histogram(r, bins=10, range=(0, n_draws + 1))
        p = stats.chisquare(counts).pvalue
        print(f"SBC {family} {key}: rank counts {counts.tolist()}, chi-square p = {p:.3f}")
        assert p > 0.001, (key, counts, p)
