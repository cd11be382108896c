"""Speed of soft-label regression: per-evaluation cost and end-to-end sampling efficiency.

Everything runs in one process on the same simulated data (intercept + ``d - 1`` standard
normal covariates, ``beta ~ N(0, 0.5)``):

1. **logp + gradient per evaluation** of the weighted-Bernoulli (soft-label logistic) and
   continuous-Bernoulli likelihoods at several ``n``: softbayes' fused kernel
   (:mod:`softbayes.ops`), softbayes' reference graph (``WeightedBernoulli`` /
   ``ContinuousBernoulli``), the naive ``pm.Potential`` a user would write, the naive graph
   on PyTensor's JAX backend (where JAX is installed) and one NumPy ``X @ beta`` (the floor:
   one pass over ``X``). Each is compiled once (default PyTensor mode: numba) and called many
   times, interleaved round by round; the median time per call is reported, and its ratio
   to the floor.
2. **Sampling**, weighted-Bernoulli regression at ``n_sample`` rows, prior ``Normal(0, 2.5)``:
   min bulk ESS per wall-second (compilation included) for each engine, the time to first
   draw of a new model, and whether the posterior means agree with the first engine's.

Timings on a shared machine are noisy: compare ratios taken in one run. ``--quick`` shrinks
every size for a smoke run. Results go to ``<out>/speed.json`` and ``<out>/speed.md``.

This module is the command line; the work is in :mod:`benchmarks.evaluation`,
:mod:`benchmarks.sampling` and :mod:`benchmarks.report`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from benchmarks.config import DEFAULTS, ENGINES, FAMILIES, QUICK


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="softbayes speed benchmark: logp+gradient per evaluation (vs one pass "
        "over X) and end-to-end ESS per second of several NUTS engines, on the same "
        "simulated soft-label data, in one process. Writes speed.json and speed.md.",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--out", default="reports/benchmarks",
                   help="output folder (default reports/benchmarks)")
    p.add_argument("--sizes", type=lambda s: [int(float(x)) for x in s.split(",")],
                   help="n for the per-evaluation timings, comma separated "
                   f"(default {','.join(map(str, DEFAULTS['sizes']))})")
    p.add_argument("--d", type=int, help=f"columns of X incl. intercept (default {DEFAULTS['d']})")
    p.add_argument("--families", default=",".join(FAMILIES),
                   help="likelihoods for the per-evaluation timings (default both)")
    p.add_argument("--n-sample", type=int, dest="n_sample",
                   help=f"rows for the sampling runs (default {DEFAULTS['n_sample']})")
    p.add_argument("--draws", type=int, help=f"draws per chain (default {DEFAULTS['draws']})")
    p.add_argument("--tune", type=int, help=f"tuning steps per chain (default {DEFAULTS['tune']})")
    p.add_argument("--chains", type=int, help=f"chains (default {DEFAULTS['chains']})")
    p.add_argument("--engines", default=",".join(ENGINES),
                   help="sampling engines, comma separated, in order (the first is the "
                   "agreement reference); default all: " + ", ".join(ENGINES))
    p.add_argument("--min-time", type=float, dest="min_time",
                   help="seconds of timed calls per implementation and size "
                   f"(default {DEFAULTS['min_time']})")
    p.add_argument("--skip-eval", action="store_true", help="no per-evaluation timings")
    p.add_argument("--skip-sampling", action="store_true", help="no sampling runs")
    p.add_argument("--seed", type=int, default=20261126)
    p.add_argument("--verbose", action="store_true", help="tracebacks of failed engines")
    a = p.parse_args(argv)
    base = QUICK if a.quick else DEFAULTS
    for k, v in base.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.families = [f.strip() for f in a.families.split(",") if f.strip()]
    a.engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    bad = [f for f in a.families if f not in FAMILIES] + [e for e in a.engines if e not in ENGINES]
    if bad:
        p.error(f"unknown families/engines: {bad}")
    return a


def main(argv=None):
    a = parse_args(argv)
    # Before anything imports JAX: one XLA CPU device per chain (NumPyro's parallel chains).
    # The benchmark modules are imported only now, like the package's own CLI does, so that
    # --help answers without importing PyMC (and JAX starts with these flags).
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={a.chains}")
    from benchmarks.evaluation import run_eval
    from benchmarks.report import machine_info, markdown, versions
    from benchmarks.sampling import run_sampling

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t_start = time.perf_counter()
    result = {"meta": {"started": started, "args": vars(a), "machine": machine_info(),
                       "versions": versions()}}
    if not a.skip_eval:
        log("logp + gradient per evaluation:")
        result["eval"] = run_eval(a, log)
    if not a.skip_sampling:
        log(f"sampling, n = {a.n_sample}:")
        result["sampling"], result["true_beta"] = run_sampling(a, log)
        ok = [r for r in result["sampling"] if r.get("status") == "ok"]
        result["all_agree"] = bool(ok) and all(r.get("agrees") for r in ok)
    result["meta"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") \
        else []
    result["meta"]["total_s"] = time.perf_counter() - t_start
    (out / "speed.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    md = markdown(result)
    (out / "speed.md").write_text(md)
    print(md)
    log(f"wrote {out / 'speed.json'} and {out / 'speed.md'} "
        f"({result['meta']['total_s']:.0f} s)")
    if "all_agree" in result and not result["all_agree"]:
        return 1
    return 0
