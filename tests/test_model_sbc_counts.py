"""Simulation-based calibration (Talts et al. 2018) of the count families, on the executor.

The method of tests/test_model_sbc.py: per replicate, parameters drawn from the model's
prior, counts simulated in NumPy from them (the family's own ``draws``, given the trials),
the same compiled model refitted with only the labels swapped
(:func:`softbayes.backend.executor.refit_labels_task`), and the rank of the true value among
thinned posterior draws recorded; uniform ranks (chi-square over 10 bins) mean calibrated
inference. The labels as given of ``p(k, m)`` are the proportions ``k / m``: that is what
``draws`` returns and what ``set_labels`` takes. ``SOFTBAYES_SBC_WORKERS=N`` runs the
replications on a local Dask cluster of N processes (the same numbers).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from scipy import stats

import softbayes as sb
from softbayes.backend.executor import Executor, Task, refit_labels_task, task_seed

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
    free = [rv.name for rv in model.pymc_model.free_RVs]
    assert set(free) == {"Intercept_centered", "x"} | (
        {"phi"} if likelihood == "beta_binomial" else set())
    prior = pm.draw([model.pymc_model[n] for n in free], draws=N_REPS, random_seed=rng)
    truths = [{n: float(np.asarray(v)[rep]) for n, v in zip(free, prior, strict=True)}
              for rep in range(N_REPS)]
    fam = model.family
    labels = [fam.draws(rng, eta=t["Intercept_centered"] + t["x"] * xc, trials=m,
                        **({"phi": t["phi"]} if "phi" in t else {}))
              for t in truths]

    workers = os.environ.get("SOFTBAYES_SBC_WORKERS")
    with Executor(workers=int(workers) if workers else None) as ex:
        description = ex.scatter(model.description)
        options = {"structure": f"sbc-{likelihood}", "draws": DRAWS, "tune": DRAWS,
                   "chains": CHAINS, "log_likelihood": False}
        tasks = [Task(refit_labels_task, description, lab, task_seed(SEED, likelihood, rep),
                      label=f"SBC replication {rep + 1} of {likelihood}", options=options)
                 for rep, lab in enumerate(labels)]
        results = ex.run(tasks)
    failed = [r.error for r in results if not r.ok]
    assert not failed, failed[:3]
    n_draws = CHAINS * DRAWS // THIN
    for name in free:
        ranks = [int((r.value.posterior[name].values[:, ::THIN].ravel() < t[name]).sum())
                 for r, t in zip(results, truths, strict=True)]
        counts, _ = np.histogram(ranks, bins=10, range=(0, n_draws + 1))
        p = stats.chisquare(counts).pvalue
        print(f"SBC {likelihood} {name}: rank counts {counts.tolist()}, chi-square p = {p:.3f}")
        assert p > 0.001, (name, counts, p)
