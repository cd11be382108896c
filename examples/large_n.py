"""
Large n at full size: Laplace and minibatch ADVI against statsmodels
====================================================================

The command-line script behind the large-n figures of the README, with time and memory (it
is not run when the documentation is built; :doc:`plot_05_large_n` is its small version)::

    .venv/bin/python examples/large_n.py --n 10000000 [--methods laplace,advi] [--no-glm]

Simulated soft labels, d = 10 predictors, weighted-Bernoulli likelihood. Prints one JSON
line: seconds per step, the largest relative difference of the posterior means from
statsmodels' fractional logit ``GLM(l, X, family=Binomial())`` and the peak resident
memory (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import warnings

import numpy as np
import pandas as pd

import softbayes as sb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--methods", default="laplace,advi")
    ap.add_argument("--no-glm", action="store_true")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    out = {"n": args.n, "d": args.d}
    rng = np.random.default_rng(args.seed)
    beta = np.linspace(-0.9, 0.9, args.d)
    beta[np.abs(beta) < 0.3] = 0.4
    t = time.time()
    x = rng.standard_normal((args.n, args.d))
    p = 1.0 / (1.0 + np.exp(-(0.3 + x @ beta)))
    lab = np.clip(p + rng.normal(0.0, 0.15, args.n), 0.0, 1.0)
    df = pd.DataFrame(x, columns=[f"x{j}" for j in range(args.d)])
    df["l"] = lab
    out["simulate_s"] = time.time() - t
    names = ["Intercept"] + [f"x{j}" for j in range(args.d)]
    ref = None
    if not args.no_glm:
        import statsmodels.api as sm

        t = time.time()
        ref = np.asarray(sm.GLM(lab, sm.add_constant(x), family=sm.families.Binomial())
                         .fit().params)
        out["statsmodels_s"] = time.time() - t
    del x
    t = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sb.Model("l ~ " + " + ".join(names[1:]), df)
        del df
        model.pymc_model  # noqa: B018
    out["model_build_s"] = time.time() - t
    for method in args.methods.split(","):
        t = time.time()
        fit = model.fit(method=method, draws=500, chains=2, random_seed=1)
        out[f"{method}_s"] = time.time() - t
        out[f"{method}_log_likelihood_draws"] = int(fit.attrs["softbayes_log_likelihood_draws"])
        means = np.array([float(fit.posterior[v].mean()) for v in names])
        if ref is not None:
            out[f"{method}_max_rel_diff_vs_glm"] = float(np.max(np.abs(means / ref - 1)))
        del fit
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(out))


if __name__ == "__main__":
    main()
