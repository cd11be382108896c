"""Cost of one logp + gradient of the continuous categorical against the soft categorical.

``python -m benchmarks.simplex`` builds two PyMC models of the same simulated probability-vector
labels (``n`` rows, ``K`` classes, logits ``X @ B`` with ``X`` of ``d`` columns): one with
:class:`softbayes.ContinuousCategorical` (a normalized density on the simplex, whose log
normalizer is a divided difference of ``exp`` per row) and one with
:class:`softbayes.SoftCategorical` (the cross-entropy, a ``log_softmax`` per row). Each model's
logp and gradient in ``B`` are compiled once (PyTensor's default mode) and called in
interleaved rounds; the median time per call and the ratio come from one run.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pymc as pm

import softbayes as sb
from benchmarks.evaluation import compile_logp_dlogp, time_interleaved
from softbayes.distributions.continuous_categorical import continuous_categorical_draws


def build(kind, X, labels):
    """The regression model of ``kind`` ("continuous_categorical" or "soft_categorical")."""
    k = labels.shape[1]
    with pm.Model() as model:
        beta = pm.Normal("beta", 0.0, 1.0, shape=(X.shape[1], k))
        logits = pm.math.dot(X, beta)
        if kind == "continuous_categorical":
            sb.ContinuousCategorical("y", logits=logits, observed=labels)
        else:
            sb.SoftCategorical("y", logits=logits, observed=labels)
    return model


def run(n, k, d, min_time, seed):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, d - 1))])
    beta = rng.normal(0.0, 0.5, size=(d, k))
    labels = continuous_categorical_draws(rng, X @ beta)
    kinds = ("continuous_categorical", "soft_categorical")
    point = beta.copy()
    fns = {}
    for kind in kinds:
        fn = compile_logp_dlogp(build(kind, X, labels))
        fns[kind] = lambda fn=fn: fn(point)
    seconds, calls = time_interleaved(fns, min_time)
    return {
        "n": n,
        "K": k,
        "d": d,
        "seconds": seconds,
        "calls": calls,
        "ratio": seconds["continuous_categorical"] / seconds["soft_categorical"],
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.simplex", description=__doc__)
    p.add_argument("--n", type=lambda s: int(float(s)), default=100_000)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--d", type=int, default=3, help="columns of X incl. intercept")
    p.add_argument("--min-time", type=float, default=3.0, dest="min_time")
    p.add_argument("--seed", type=int, default=20261130)
    p.add_argument("--json", help="also write the result to this file")
    a = p.parse_args(argv)
    res = run(a.n, a.k, a.d, a.min_time, a.seed)
    s = res["seconds"]
    print(f"logp + gradient, n = {a.n}, K = {a.k}, d = {a.d} (load average "
          f"{res['load_average']}):")
    for kind, sec in s.items():
        print(f"  {kind:24s} {1e3 * sec:9.2f} ms  ({res['calls'][kind]} calls)")
    print(f"  ratio continuous/soft    {res['ratio']:9.1f}x")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return res


if __name__ == "__main__":
    main()
