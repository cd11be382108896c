"""Time to posterior: the wall time of one fit call of a soft-label logistic regression, by engine.

``python -m benchmarks.posterior_time`` (from the repository root). Each measurement runs in a
fresh Python process, as a user's script would: the same simulated data (benchmarks.models,
weighted-Bernoulli labels), prior Normal(0, 2.5) on every coefficient, 2 chains x (500 tune +
500 draws). Engines:

* ``softbayes`` -- ``softbayes.Model(formula, data, priors=...).fit(...)``, every other
  setting at its default; in the same process, a second fit of another formula (one
  predictor fewer);
* ``pymc`` -- the same model written by hand in PyMC (a ``pm.Potential`` of the soft-label
  cross-entropy), ``pm.sample()`` with its defaults (nutpie when installed);
* ``numpyro`` -- NumPyro NUTS on the same log-density (``pip install -e ".[bench]"``).

Every engine is run twice, each time in a new process: the second process shows what an
on-disk compile cache saves for the same model structure. Import time is reported apart from
the fit call. Posterior means must agree across engines (largest difference in posterior sds).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np

ENGINES = ("softbayes", "pymc", "numpyro")
DRAWS = TUNE = 500
CHAINS = 2
PRIOR_SD = 2.5


def _formula(d, drop=0):
    return "label ~ " + " + ".join(f"x{j}" for j in range(1, d - drop))


def _softbayes(X, labels, seed):
    import pandas as pd

    import softbayes as sb

    d = X.shape[1]
    df = pd.DataFrame(X[:, 1:], columns=[f"x{j}" for j in range(1, d)]).assign(label=labels)
    priors = {name: {"dist": "Normal", "mu": 0.0, "sigma": PRIOR_SD}
              for name in ["Intercept", *df.columns[:-1]]}
    t0 = time.perf_counter()
    fit = sb.Model(_formula(d), df, priors=priors).fit(draws=DRAWS, tune=TUNE, chains=CHAINS,
                                                         random_seed=seed)
    fit_s = time.perf_counter() - t0
    post = fit["posterior"]
    means = [float(post["Intercept"].mean())] + [float(post[f"x{j}"].mean())
                                                 for j in range(1, d)]
    sds = [float(post["Intercept"].std())] + [float(post[f"x{j}"].std()) for j in range(1, d)]
    t0 = time.perf_counter()
    fewer = {k: v for k, v in priors.items() if k != f"x{d - 1}"}
    sb.Model(_formula(d, drop=1), df, priors=fewer).fit(draws=DRAWS, tune=TUNE, chains=CHAINS,
                                                         random_seed=seed + 1)
    return {"fit_s": fit_s, "second_formula_s": time.perf_counter() - t0, "means": means,
            "sds": sds}


def _pymc(X, labels, seed):
    import pymc as pm

    from benchmarks.models import build_model

    model = build_model("naive", "weighted_bernoulli", X, labels)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = pm.sample(draws=DRAWS, tune=TUNE, chains=CHAINS, random_seed=seed,
                          progressbar=False, model=model)
    b = idata["posterior"]["b"]
    return {"fit_s": time.perf_counter() - t0, "means": b.mean(("chain", "draw")).values.tolist(),
            "sds": b.std(("chain", "draw")).values.tolist(),
            "sampler": str(idata["posterior"].attrs.get("inference_library", "?"))}


def _numpyro(X, labels, seed):
    from benchmarks.engines import ENGINE_FUNCS

    a = argparse.Namespace(draws=DRAWS, tune=TUNE, chains=CHAINS, seed=seed)
    t0 = time.perf_counter()
    draws, how = ENGINE_FUNCS["numpyro"](X, labels, a)
    flat = draws.reshape(-1, draws.shape[-1])
    return {"fit_s": time.perf_counter() - t0, "means": flat.mean(0).tolist(),
            "sds": flat.std(0).tolist(), "sampler": how}


def one(engine, n, d, seed) -> dict:
    """One measurement, in this (fresh) process."""
    t0 = time.perf_counter()
    from benchmarks.models import simulate

    X, labels, _ = simulate(n, d, seed, "weighted_bernoulli")
    import_s = time.perf_counter() - t0
    out = {"_softbayes": _softbayes, "_pymc": _pymc, "_numpyro": _numpyro}[f"_{engine}"](
        X, labels, seed)
    return {"engine": engine, "n": n, "d": d, "import_s": import_s, **out}


def _spawn(engine, n, d, seed) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.posterior_time", "--one", engine, str(n), str(d),
           str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        return {"engine": engine, "n": n, "d": d, "error": proc.stderr.strip()[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _agreement(rows) -> float:
    ok = [r for r in rows if "means" in r]
    if len(ok) < 2:
        return float("nan")
    means, sds = np.array([r["means"] for r in ok]), np.array([r["sds"] for r in ok])
    return float(np.max(np.abs(means - means[0]) / sds[0]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--one", nargs=4, metavar=("ENGINE", "N", "D", "SEED"), help=argparse.SUPPRESS)
    p.add_argument("--sizes", default="300,10000,100000", help="comma-separated n")
    p.add_argument("--dims", default="5,10", help="comma-separated d (incl. the intercept)")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--seed", type=int, default=11)
    a = p.parse_args(argv)
    if a.one:
        engine, n, d, seed = a.one
        print(json.dumps(one(engine, int(n), int(d), int(seed))))
        return 0
    engines = [e for e in a.engines.split(",")
               if e != "numpyro" or importlib.util.find_spec("numpyro") is not None]
    print(f"time to posterior, {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}; "
          f"2 chains x ({TUNE} + {DRAWS}); each cell a fresh process (first / second)")
    print("| n | d | engine | fit call, 1st process | fit call, 2nd process | import | "
          "2nd formula, same process | sampler |")
    print("|---|---|---|---|---|---|---|---|")
    for n in map(int, map(float, a.sizes.split(","))):
        for d in map(int, a.dims.split(",")):
            firsts = []
            for engine in engines:
                r1, r2 = _spawn(engine, n, d, a.seed), _spawn(engine, n, d, a.seed)
                firsts.append(r1)
                if "error" in r1 or "error" in r2:
                    err = (r1.get("error") or r2["error"])[-120:]
                    print(f"| {n} | {d} | {engine} | failed: {err} |")
                    continue
                second = r1.get("second_formula_s")
                print(f"| {n} | {d} | {engine} | {r1['fit_s']:.2f} s | {r2['fit_s']:.2f} s | "
                      f"{r1['import_s']:.2f} s | "
                      f"{'' if second is None else f'{second:.2f} s'} | "
                      f"{r1.get('sampler', 'nutpie')} |")
            print(f"|  |  | agreement | largest difference of posterior means: "
                  f"{_agreement(firsts):.3f} posterior sd |  |  |  |  |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
