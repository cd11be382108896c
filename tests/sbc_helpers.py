"""Simulation-based calibration (Talts et al. 2018) on the executor, shared by the SBC tests.

For each replicate: the parameters drawn from the model's prior (:func:`prior_truths`),
labels simulated in NumPy from them (by the test), the *same compiled model* refitted with
only the labels swapped (:func:`softbayes.backend.executor.refit_labels_task`: one compiled
model per process, nutpie's ``with_data``), and the rank of every true parameter component
among thinned posterior draws recorded. Calibrated inference gives uniform ranks:
:func:`check_sbc` asserts a chi-square test over 10 bins per component.
``SOFTBAYES_SBC_WORKERS=N`` runs the replications on a local Dask cluster of N processes
(the same numbers: seeds are per replication).
"""

from __future__ import annotations

import os

import numpy as np
import pymc as pm
from scipy import stats

from softbayes.backend.executor import Executor, Task, refit_labels_task, task_seed
from softbayes.io.fits import posterior_dataset

#: The smallest chi-square p-value a calibrated component may show (several components and
#: families are tested, so a single 1 % tail is no evidence).
P_MIN = 0.001


def prior_truths(model, n_reps, rng):
    """``(names, truths)``: the model's free variables and ``n_reps`` joint prior draws of
    them (each a dict name -> array of the variable's shape)."""
    names = [rv.name for rv in model.pymc_model.free_RVs]
    draws = pm.draw([model.pymc_model[n] for n in names], draws=n_reps, random_seed=rng)
    return names, [{n: np.asarray(v)[rep] for n, v in zip(names, draws, strict=True)}
                   for rep in range(n_reps)]


def _ranks(fit, truth, names, thin):
    """Rank of each true component among the thinned draws: name -> (components,)."""
    out = {}
    posterior = posterior_dataset(fit)  # the centred intercepts are kept in their own group
    for name in names:
        draws = posterior[name].values[:, ::thin]
        draws = draws.reshape(draws.shape[0] * draws.shape[1], -1)
        out[name] = (draws < np.ravel(truth[name])[None, :]).sum(axis=0)
    return out


def check_sbc(model, truths, labels, *, tag, seed, names, draws, chains, thin):
    """Refit ``model`` to each replicate's ``labels`` and assert uniform ranks of ``names``.

    ``tag`` names the replications (and keys their seeds and compiled model); ``draws`` are
    both the tuning and the kept draws per chain; ranks run from 0 to
    ``chains * draws // thin``.
    """
    workers = os.environ.get("SOFTBAYES_SBC_WORKERS")
    with Executor(workers=int(workers) if workers else None) as ex:
        description = ex.scatter(model.description)
        options = {"structure": f"sbc-{tag}", "draws": draws, "tune": draws,
                   "chains": chains, "log_likelihood": False}
        tasks = [Task(refit_labels_task, description, lab, task_seed(seed, tag, rep),
                      label=f"SBC replication {rep + 1} of {tag}", options=options)
                 for rep, lab in enumerate(labels)]
        results = ex.run(tasks)
    failed = [r.error for r in results if not r.ok]
    assert not failed, failed[:3]
    ranks = [_ranks(r.value, t, names, thin) for r, t in zip(results, truths, strict=True)]
    n_ranks = chains * draws // thin
    for name in names:
        per_rep = np.stack([r[name] for r in ranks])  # (reps, components)
        for j in range(per_rep.shape[1]):
            counts, _ = np.histogram(per_rep[:, j], bins=10, range=(0, n_ranks + 1))
            p = stats.chisquare(counts).pvalue
            print(f"SBC {tag} {name}[{j}]: rank counts {counts.tolist()}, "
                  f"chi-square p = {p:.3f}")
            assert p > P_MIN, (name, j, counts, p)
