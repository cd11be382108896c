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

Every engine runs twice, each time in a new process: the first with an empty softbayes cache
folder (``SOFTBAYES_CACHE_DIR``, a new temporary folder), the second with the folder the first
left, which shows what the on-disk compile cache saves for the same model structure. At
n = 100 000 softbayes also gets a third process that times the first draw of a new ``Model``
(``draws=tune=1``, one chain, no log-likelihood). ``--repeat R`` repeats every measurement R
times and reports medians. Import time -- what a user's script imports at its top: ``softbayes``
with ``softbayes.Model`` (loaded lazily), ``pymc``, ``jax`` with ``numpyro`` -- is reported
apart from the fit call; what an engine imports on its own during the call (softbayes: nutpie
and JAX) counts in the call. Posterior means must agree across engines (largest difference,
in posterior sds). The targets are checked at the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

ENGINES = ("softbayes", "pymc", "numpyro")
DRAWS = TUNE = 500
CHAINS = 2
PRIOR_SD = 2.5
#: Targets (seconds): n = 300 fit call, its second formula and second process; first draw at
#: n = 100 000.
FIT_TARGET, SECOND_TARGET, FIRST_DRAW_TARGET = 2.5, 1.5, 3.0
SMALL_N, LARGE_N = 300, 100_000


def _formula(d, drop=0):
    return "label ~ " + " + ".join(f"x{j}" for j in range(1, d - drop))


def _frame(X, labels):
    import pandas as pd

    d = X.shape[1]
    df = pd.DataFrame(X[:, 1:], columns=[f"x{j}" for j in range(1, d)]).assign(label=labels)
    priors = {name: {"dist": "Normal", "mu": 0.0, "sigma": PRIOR_SD}
              for name in ["Intercept", *df.columns[:-1]]}
    return df, priors


def _softbayes(X, labels, seed):
    import softbayes as sb

    d = X.shape[1]
    df, priors = _frame(X, labels)
    t0 = time.perf_counter()
    fit = sb.Model(_formula(d), df, priors=priors).fit(draws=DRAWS, tune=TUNE, chains=CHAINS,
                                                         random_seed=seed)
    fit_s = time.perf_counter() - t0
    post = fit["posterior"]
    names = ["Intercept", *(f"x{j}" for j in range(1, d))]
    means = [float(post[v].mean()) for v in names]
    sds = [float(post[v].std()) for v in names]
    t0 = time.perf_counter()
    fewer = {k: v for k, v in priors.items() if k != f"x{d - 1}"}
    sb.Model(_formula(d, drop=1), df, priors=fewer).fit(draws=DRAWS, tune=TUNE, chains=CHAINS,
                                                         random_seed=seed + 1)
    backend = fit.attrs.get("softbayes_backend")
    return {"fit_s": fit_s, "second_formula_s": time.perf_counter() - t0, "means": means,
            "sds": sds, "sampler": f"nutpie ({backend})" if backend else "?"}


def _softbayes_first_draw(X, labels, seed):
    import softbayes as sb

    df, priors = _frame(X, labels)
    t0 = time.perf_counter()
    fit = sb.Model(_formula(X.shape[1]), df, priors=priors).fit(
        draws=1, tune=1, chains=1, random_seed=seed, log_likelihood=False, warn=False)
    return {"fit_s": time.perf_counter() - t0,
            "sampler": f"nutpie ({fit.attrs.get('softbayes_backend')})"}


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


_RUNS = {"softbayes": _softbayes, "softbayes_first_draw": _softbayes_first_draw,
         "pymc": _pymc, "numpyro": _numpyro}


#: What a user's script of each engine imports at its top: (module, attribute or None).
_IMPORTS = {"softbayes": [("softbayes", "Model")], "softbayes_first_draw": [("softbayes", "Model")],
            "pymc": [("pymc", None)], "numpyro": [("jax", None), ("numpyro", None)]}


def one(engine, n, d, seed) -> dict:
    """One measurement, in this (fresh) process."""
    t0 = time.perf_counter()
    from benchmarks.models import simulate

    for module, attr in _IMPORTS[engine]:
        mod = importlib.import_module(module)
        if attr:
            getattr(mod, attr)

    X, labels, _ = simulate(n, d, seed, "weighted_bernoulli")
    import_s = time.perf_counter() - t0
    out = _RUNS[engine](X, labels, seed)
    return {"engine": engine, "n": n, "d": d, "import_s": import_s, **out}


def _spawn(engine, n, d, seed, cache_dir) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.posterior_time", "--one", engine, str(n), str(d),
           str(seed)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "SOFTBAYES_CACHE_DIR": cache_dir}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        return {"engine": engine, "n": n, "d": d, "error": proc.stderr.strip()[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _median(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return float(np.median(values)) if values else None


def measure(engine, n, d, seed, repeat) -> dict:
    """Medians over ``repeat`` pairs of processes (empty cache, then the cache it left)."""
    firsts, seconds, draws = [], [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="softbayes-cache-") as cache:
            firsts.append(_spawn(engine, n, d, seed, cache))
            seconds.append(_spawn(engine, n, d, seed, cache))
        if engine == "softbayes" and n >= LARGE_N:
            with tempfile.TemporaryDirectory(prefix="softbayes-cache-") as cache:
                draws.append(_spawn("softbayes_first_draw", n, d, seed, cache))
    errors = [r["error"] for r in firsts + seconds + draws if "error" in r]
    if errors:
        return {"engine": engine, "n": n, "d": d, "error": errors[0]}
    return {"engine": engine, "n": n, "d": d, "fit_s": _median(firsts, "fit_s"),
            "second_process_s": _median(seconds, "fit_s"),
            "import_s": _median(firsts, "import_s"),
            "second_formula_s": _median(firsts, "second_formula_s"),
            "first_draw_s": _median(draws, "fit_s"), "sampler": firsts[0].get("sampler", "?"),
            "means": firsts[0]["means"], "sds": firsts[0]["sds"], "runs": len(firsts)}


def _agreement(rows) -> float:
    ok = [r for r in rows if "means" in r]
    if len(ok) < 2:
        return float("nan")
    means, sds = np.array([r["means"] for r in ok]), np.array([r["sds"] for r in ok])
    return float(np.max(np.abs(means - means[0]) / sds[0]))


def _s(v):
    return "" if v is None else f"{v:.2f} s"


def target_checks(rows) -> list[tuple[str, bool, str]]:
    """``(target, holds, figures)`` for each target the measured rows cover."""
    by = {(r["engine"], r["n"], r["d"]): r for r in rows if "error" not in r}
    checks = []
    for (engine, n, d), r in sorted(by.items()):
        if engine != "softbayes":
            continue
        if n == SMALL_N:
            ref = by.get(("numpyro", n, d))
            fit, limit = r["fit_s"], FIT_TARGET if ref is None else min(FIT_TARGET,
                                                                       ref["fit_s"])
            theirs = "" if ref is None else f", NumPyro {ref['fit_s']:.2f} s"
            checks.append((f"n={n}, d={d}: Model.fit <= NumPyro and <= {FIT_TARGET} s",
                           fit <= limit, f"{fit:.2f} s{theirs}"))
            for key, what in (("second_formula_s", "2nd formula, same process"),
                              ("second_process_s", "same structure, 2nd process")):
                checks.append((f"n={n}, d={d}: {what} <= {SECOND_TARGET} s",
                               r[key] <= SECOND_TARGET, f"{r[key]:.2f} s"))
        if n == LARGE_N and r.get("first_draw_s") is not None:
            checks.append((f"n={n}, d={d}: first draw of a new Model <= {FIRST_DRAW_TARGET} s",
                           r["first_draw_s"] <= FIRST_DRAW_TARGET, f"{r['first_draw_s']:.2f} s"))
    return checks


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--one", nargs=4, metavar=("ENGINE", "N", "D", "SEED"), help=argparse.SUPPRESS)
    p.add_argument("--sizes", default="300,10000,100000", help="comma-separated n")
    p.add_argument("--dims", default="5,10", help="comma-separated d (incl. the intercept)")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--repeat", type=int, default=1, help="runs per cell (medians reported)")
    p.add_argument("--seed", type=int, default=11)
    a = p.parse_args(argv)
    if a.one:
        engine, n, d, seed = a.one
        print(json.dumps(one(engine, int(n), int(d), int(seed))))
        return 0
    engines = [e for e in a.engines.split(",")
               if e != "numpyro" or importlib.util.find_spec("numpyro") is not None]
    print(f"time to posterior, {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}; "
          f"2 chains x ({TUNE} + {DRAWS}); each cell a fresh process, medians of {a.repeat}")
    print("| n | d | engine | fit call, 1st process | fit call, 2nd process | import | "
          "2nd formula, same process | first draw, new Model | sampler |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for n in map(int, map(float, a.sizes.split(","))):
        for d in map(int, a.dims.split(",")):
            cell = [measure(engine, n, d, a.seed, max(1, a.repeat)) for engine in engines]
            for r in cell:
                if "error" in r:
                    print(f"| {n} | {d} | {r['engine']} | failed: {r['error'][-120:]} |")
                    continue
                print(f"| {n} | {d} | {r['engine']} | {_s(r['fit_s'])} | "
                      f"{_s(r['second_process_s'])} | {_s(r['import_s'])} | "
                      f"{_s(r['second_formula_s'])} | {_s(r['first_draw_s'])} | "
                      f"{r['sampler']} |")
            print(f"|  |  | agreement | largest difference of posterior means: "
                  f"{_agreement(cell):.3f} posterior sd |  |  |  |  |  |")
            rows += cell
    print("\ntargets:")
    for what, holds, figures in target_checks(rows):
        print(f"- {what}: {'holds' if holds else 'NOT met'} ({figures})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
