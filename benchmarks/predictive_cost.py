"""What the predictive groups add to a fit: CPU seconds of the posterior predictive and of the
prior (its draws and their labels) at n rows, chains x draws.

Run from the repository root: ``python -m benchmarks.predictive_cost [n] [chains] [draws]``.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd

import softbayes as sb
from softbayes.backend.result import add_predictive

FAMILIES = ("continuous_bernoulli", "weighted_bernoulli", "beta", "soft_categorical")


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = np.clip(1 / (1 + np.exp(-(0.5 + x))) + rng.normal(0, 0.05, n), 0.01, 0.99)
    return pd.DataFrame({"y": y, "z": 1 - y, "x": x, "g": rng.integers(0, 5, n).astype(str)})


def main(n=300, chains=4, draws=1000, repeats=5):
    df = _data(n)
    for family in FAMILIES:
        formula = ("c(y, z)" if family == "soft_categorical" else "y") + " ~ x + (1|g)"
        model = sb.Model(formula, df, likelihood=family)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = model.fit(draws=draws, tune=500, chains=chains, random_seed=1,
                            predictive=False, progressbar=False)
        times = []
        for seed in range(repeats):
            t0 = time.process_time()
            add_predictive(fit, model.description, model.pymc_model, random_seed=seed)
            times.append(time.process_time() - t0)
        print(f"{family:22s} n={n} {chains}x{draws}: predictive groups "
              f"{np.median(times):.3f} s CPU (median of {repeats}; first {times[0]:.3f} s)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
