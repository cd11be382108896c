"""Coverage of 90 % posterior intervals of the beta-binomial family on simulated annotator data.

Run ``python -m validation.annotator_coverage --reps 400 --contrast-reps 60 --draws 400
--tune 300 --workers 2 --out validation`` (about half an hour on two cores); writes
``annotator_coverage.csv``, ``annotator_coverage.md`` and the intervals of every
replication, ``annotator_coverage_replications.csv``, to ``--out``, rewritten (atomically)
after every cell, so an interrupted run leaves the finished cells.

Simulation (one fixed design, seeded): n = 120 items, ``x1, x2 ~ N(0, 1)``, items spread
evenly over 10 annotator pools; ``eta = 0.3 + 0.8 x1 - 0.5 x2`` plus, in the cells with a
group-level term, a pool effect ``b_pool ~ N(0, 0.5^2)`` drawn afresh in every replication.
Each item has m annotators and ``k ~ Binomial(m, p)`` of them say yes, where

* disagreement on: ``p ~ Beta(kappa mu, kappa (1 - mu))``, ``mu = sigmoid(eta)``,
  ``kappa = 10`` (annotators disagree beyond binomial sampling; the beta-binomial's
  precision phi = kappa);
* disagreement off: ``p = mu`` exactly (pure binomial counts).

Cells: m in {3, 5, 20} x disagreement on/off x without/with ``(1|pool)``.

Fits, each with the package's default priors, 2 chains x (``--tune`` + ``--draws``) NUTS
draws (nutpie), one compiled model per structure per worker refitted on each replication's
labels (:func:`softbayes.backend.executor.cached_refitter`):

* ``beta_binomial``: ``p(k, m) ~ x1 + x2 [+ (1|pool)]``;
* ``wb_unit``: weighted Bernoulli on the proportion ``k/m`` with unit weights;
* ``wb_m``: weighted Bernoulli on ``k/m`` with weights m (the binomial likelihood, which
  ignores the disagreement).

The weighted-Bernoulli fits are a contrast, fitted to the first ``--contrast-reps``
replications of each cell only (the same data sets as the beta-binomial's).

Target: the three population-level coefficients (Intercept, x1, x2); an interval is the
central 90 % interval of the posterior draws (5 % and 95 % quantiles). Coverage per cell
and coefficient with its Monte Carlo standard error ``sqrt(c (1 - c) / R)``;
``width_ratio`` is the mean interval width relative to the beta-binomial's in the same cell,
``width_vs_empirical`` the mean interval width over ``2 z_0.95`` times the empirical sd of
the posterior means across replications (1 = intervals as wide as the estimates vary).
Replications run through :class:`softbayes.backend.executor.Executor` (serially with
``--workers 0``), each with its own seed (:func:`softbayes.backend.executor.task_seed`).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special as sp
from scipy import stats

import softbayes as sb
from softbayes.backend.executor import Executor, Task, cached_refitter, task_seed

COEFS = {"Intercept": 0.3, "x1": 0.8, "x2": -0.5}
N_ITEMS = 120
N_POOLS = 10
POOL_SD = 0.5
KAPPA = 10.0
TRIALS = (3, 5, 20)
DISAGREEMENT = (True, False)
GROUPS = (False, True)
FITS = ("beta_binomial", "wb_unit", "wb_m")
FIT_TEXT = {
    "beta_binomial": "beta-binomial p(k, m)",
    "wb_unit": "weighted Bernoulli, unit weights",
    "wb_m": "weighted Bernoulli, weights m",
}
LEVEL = 0.90
Z90 = 1.6448536269514722
TARGET_BAND = (0.86, 0.94)


def cells(trials=TRIALS, disagreement=DISAGREEMENT, groups=GROUPS):
    """The cells ``(m, disagreement, group)`` in run order."""
    return [(m, d, g) for g in groups for d in disagreement for m in trials]


def cell_name(m, disagreement, group) -> str:
    return f"m{m}-{'disagree' if disagreement else 'binomial'}-{'pool' if group else 'flat'}"


def design(seed):
    """The fixed design: ``x1``, ``x2`` and the pool of each item."""
    rng = np.random.default_rng([seed, 0])
    return pd.DataFrame({
        "x1": rng.standard_normal(N_ITEMS),
        "x2": rng.standard_normal(N_ITEMS),
        "pool": [f"pool{i % N_POOLS}" for i in range(N_ITEMS)],
    })


def simulate(base, m, disagreement, group, rng):
    """One replication's frame: the design with ``m``, ``k`` and ``y = k / m``."""
    eta = COEFS["Intercept"] + COEFS["x1"] * base["x1"].to_numpy() + COEFS["x2"] * base[
        "x2"].to_numpy()
    if group:
        b = rng.normal(0.0, POOL_SD, N_POOLS)
        eta = eta + b[base["pool"].str.slice(4).astype(int).to_numpy()]
    mu = sp.expit(eta)
    p = rng.beta(KAPPA * mu, KAPPA * sp.expit(-eta)) if disagreement else mu
    k = rng.binomial(m, p)
    out = base.copy()
    out["m"] = float(m)
    out["k"] = k.astype(float)
    out["y"] = k / m
    return out


def descriptions(base, group, m=TRIALS[0], fits=FITS):
    """The model description of each fit (one structure per fit and group-term setting)."""
    frame = simulate(base, m, True, group, np.random.default_rng(1))
    rhs = "x1 + x2" + (" + (1|pool)" if group else "")
    models = {
        "beta_binomial": lambda: sb.Model(f"p(k, m) ~ {rhs}", frame, likelihood="beta_binomial"),
        "wb_unit": lambda: sb.Model(f"y ~ {rhs}", frame),
        "wb_m": lambda: sb.Model(f"y ~ {rhs}", frame, weights="m"),
    }
    return {name: models[name]().description for name in fits}


def replicate(descs, data, seed, *, cell, group_key, draws, tune, fits):
    """One replication of ``cell`` (an executor task): simulate, refit the structures of
    ``fits``, return ``{(fit, coefficient): (lower, upper, mean)}``."""
    base, m, disagreement, group = data
    frame = simulate(base, m, disagreement, group, np.random.default_rng(seed))
    descs = dict(descs)
    out = {}
    for name in fits:
        desc = descs[name]
        refitter = cached_refitter(f"annotator-coverage-{group_key}-{name}", desc)
        refitter.set_data(frame)
        fit = refitter.fit(draws=draws, tune=tune, chains=2, random_seed=seed, cores=1,
                           log_likelihood=False)
        post = fit["posterior"]
        for coef in COEFS:
            v = np.asarray(post[coef].values, float).ravel()
            lo, hi = np.quantile(v, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
            out[(name, coef)] = (float(lo), float(hi), float(v.mean()))
    return out


def summarize(cell, results, fits):
    """Rows of the coverage table for one cell from its task results."""
    m, disagreement, group = cell
    ok = [r.value for r in results if r.ok]
    rows = []
    widths = {}
    for name in fits:
        for coef, truth in COEFS.items():
            iv = np.array([v[(name, coef)] for v in ok if (name, coef) in v]).reshape(-1, 3)
            hit = (iv[:, 0] <= truth) & (truth <= iv[:, 1])
            c = float(hit.mean()) if len(iv) else np.nan
            width = float(np.mean(iv[:, 1] - iv[:, 0])) if len(iv) else np.nan
            widths[(name, coef)] = width
            emp = float(np.std(iv[:, 2], ddof=1)) if len(iv) > 1 else np.nan
            rows.append({
                "m": m, "disagreement": disagreement, "group": group,
                "cell": cell_name(m, disagreement, group), "fit": name, "coefficient": coef,
                "truth": truth, "reps": len(iv), "failed": len(results) - len(ok),
                "coverage": c, "mc_se": float(np.sqrt(c * (1 - c) / len(iv))) if len(iv)
                else np.nan,
                "mean_width": width,
                "width_vs_empirical": width / (2 * Z90 * emp) if emp else np.nan,
                "bias": float(np.mean(iv[:, 2]) - truth) if len(iv)
                else np.nan,
            })
    for row in rows:
        ref = widths.get(("beta_binomial", row["coefficient"]))
        row["width_ratio"] = row["mean_width"] / ref if ref else np.nan
    return rows


def _atomic_write(path: Path, text: str):
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def markdown(df, reps, seconds, draws, tune, workers, complete):
    reps, contrast_reps = reps
    se = np.sqrt(LEVEL * (1 - LEVEL) / reps)
    lines = [
        "# Coverage of 90 % intervals on simulated annotator counts: beta-binomial",
        "",
        f"Generated by `python -m validation.annotator_coverage --reps {reps} --contrast-reps "
        f"{contrast_reps} --draws {draws} --tune {tune} --workers {workers}` ({seconds:.0f} s"
        f"{'' if complete else ', INCOMPLETE: the cells below are those finished'}). "
        "See the module docstring of `validation/annotator_coverage.py` for the simulation: "
        f"n = {N_ITEMS} items, β = {tuple(COEFS.values())}, disagreement Beta(κμ, κ(1-μ)) "
        f"with κ = {KAPPA:g} or none (pure binomial), {N_POOLS} pools with effects "
        f"N(0, {POOL_SD}²) in the `(1|pool)` cells, default priors, 2 chains × ({tune} + "
        f"{draws}) draws. {reps} replications per cell for the beta-binomial, the first "
        f"{contrast_reps} of them for the weighted-Bernoulli contrast; the Monte Carlo SE "
        f"of a coverage of 0.90 is {se:.3f} ({np.sqrt(LEVEL * (1 - LEVEL) / contrast_reps):.3f}"
        f" for the contrast); target band {TARGET_BAND[0]:.2f}-{TARGET_BAND[1]:.2f}.",
        "",
        "Cells: coverage of the central 90 % posterior interval (± MC SE) and, in brackets, "
        "the mean interval width over 2 × 1.645 × the empirical sd of the posterior means "
        "across replications (1 = as wide as the estimates vary); for the weighted "
        "Bernoulli fits also the width relative to the beta-binomial's.",
        "",
    ]
    fits = [f for f in FITS if f in set(df.fit)]
    for name in fits:
        sub = df[df.fit == name]
        lines += [f"## {FIT_TEXT[name]}", "",
                  "| m | disagreement | (1\\|pool) | " + " | ".join(COEFS) + " | reps |",
                  "|---|---|---|" + "---|" * len(COEFS) + "---|"]
        for cell in dict.fromkeys(sub.cell):
            c = sub[sub.cell == cell]
            first = c.iloc[0]
            vals = []
            for coef in COEFS:
                r = c[c.coefficient == coef].iloc[0]
                txt = f"{r.coverage:.3f} ± {r.mc_se:.3f} [{r.width_vs_empirical:.2f}]"
                if name != "beta_binomial":
                    txt += f" ({r.width_ratio:.2f}×)"
                vals.append(txt)
            lines.append(f"| {first.m} | {'on' if first.disagreement else 'off'} | "
                         f"{'yes' if first.group else 'no'} | " + " | ".join(vals)
                         + f" | {first.reps} |")
        lines.append("")
    bb = df[df.fit == "beta_binomial"]
    if len(bb):
        lines += _check(bb, reps)
    return "\n".join(lines + _reading(df))


def _reading(df):
    """Sentences on the weighted-Bernoulli contrast, with the numbers of this run."""
    out = []
    unit, wbm = df[df.fit == "wb_unit"], df[df.fit == "wb_m"]
    if len(unit):
        out.append(
            f"* Weighted Bernoulli with unit weights: intervals {unit.width_ratio.min():.2f}-"
            f"{unit.width_ratio.max():.2f}× as wide as the beta-binomial's, coverage "
            f"{unit.coverage.min():.2f}-{unit.coverage.max():.2f}: it treats each proportion "
            "k/m as one soft label and ignores that m annotators stand behind it.")
    if len(wbm):
        off, on = wbm[~wbm.disagreement], wbm[wbm.disagreement]
        parts = [f"coverage {off.coverage.min():.2f}-{off.coverage.max():.2f} without "
                 "disagreement, where it is the right (binomial) likelihood"] if len(off) else []
        if len(on):
            worst = on.loc[on.coverage.idxmin()]
            parts.append(f"as low as {worst.coverage:.2f} with disagreement ({worst.cell} "
                         f"{worst.coefficient}), where its intervals are "
                         f"{on.width_ratio.min():.2f}-{on.width_ratio.max():.2f}× the "
                         "beta-binomial's: the annotators' disagreement is noise it does not "
                         "model")
        out.append("* Weighted Bernoulli with weights m: " + "; ".join(parts) + ".")
    return ["## Reading", "", *out, ""] if out else []


def chance_outside(reps, level=LEVEL, band=TARGET_BAND) -> float:
    """P(an observed coverage of ``reps`` replications falls outside ``band``) when the
    intervals cover exactly ``level``: the binomial tails."""
    lo = np.ceil(band[0] * reps - 1e-9)  # hits needed to reach the band
    hi = np.floor(band[1] * reps + 1e-9)
    return float(stats.binom.cdf(lo - 1, reps, level) + stats.binom.sf(hi, reps, level))


def _check(bb, reps):
    """The check of the beta-binomial's coverage against the band, with the number of pairs
    expected outside it by Monte Carlo chance alone."""
    inside = bb.coverage.between(*TARGET_BAND)
    p_out = chance_outside(reps)
    outside = bb[~inside]
    lines = [
        "## Check",
        "",
        f"Beta-binomial coverage within {TARGET_BAND[0]:.2f}-{TARGET_BAND[1]:.2f}: "
        f"{int(inside.sum())} of {len(bb)} (cell, coefficient) pairs; range "
        f"{bb.coverage.min():.3f}-{bb.coverage.max():.3f}. With exactly {LEVEL:.0%} coverage "
        f"and {reps} replications a pair falls outside the band with probability "
        f"{p_out:.3f} (binomial tails), so {len(bb) * p_out:.1f} of {len(bb)} pairs are "
        "expected outside by chance alone.",
        "",
    ]
    lines += [f"* outside: {r.cell} {r.coefficient}: {r.coverage:.3f} ± {r.mc_se:.3f} "
              f"(width / empirical sd {r.width_vs_empirical:.2f})"
              for r in outside.itertuples()]
    return [*lines, ""] if len(outside) else lines


def run(reps, *, seed=20261130, draws=400, tune=400, workers=2, out=None, fits=FITS,
        cell_list=None, contrast_reps=None, echo=print):
    """The coverage table as a data frame; with ``out`` the CSV and Markdown are rewritten
    after every cell. Fits other than ``beta_binomial`` run on the first ``contrast_reps``
    replications only (default: all)."""
    contrast_reps = reps if contrast_reps is None else min(int(contrast_reps), reps)
    base = design(seed)
    cell_list = cells() if cell_list is None else cell_list
    rows, rep_rows, t0 = [], [], time.time()
    descs = {g: descriptions(base, g, fits=fits) for g in sorted({c[2] for c in cell_list})}
    ex = Executor(workers=workers) if workers else Executor()
    try:
        # (name, description) pairs, not a dict: Dask scatters a dict under its own keys,
        # so the two structures' dicts (same fit names) would overwrite each other
        refs = {g: ex.scatter(tuple(d.items())) for g, d in descs.items()}
        for cell in cell_list:
            m, disagreement, group = cell
            name = cell_name(*cell)
            data = ex.scatter((base, m, disagreement, group))
            tasks = [Task(replicate, refs[group], data, task_seed(seed, name, r),
                          f"{name} rep {r}",
                          {"cell": name, "group_key": f"{'pool' if group else 'flat'}",
                           "draws": draws, "tune": tune,
                           "fits": fits if r < contrast_reps else ("beta_binomial",)})
                     for r in range(reps)]
            t_cell = time.time()
            results = ex.run(tasks)
            failed = [r for r in results if not r.ok]
            if failed and echo:
                echo(f"  {name}: {len(failed)} failed, e.g. {failed[0].error}")
            rows += summarize(cell, results, fits)
            rep_rows += [{"cell": name, "replication": r, "fit": f, "coefficient": c,
                          "lower": v[0], "upper": v[1], "mean": v[2]}
                         for r, res in enumerate(results) if res.ok
                         for (f, c), v in res.value.items()]
            if echo:
                echo(f"  {name}: {time.time() - t_cell:.0f} s")
            if out is not None:
                done = len(rows) == len(cell_list) * len(fits) * len(COEFS)
                _write(out, pd.DataFrame(rows), pd.DataFrame(rep_rows), (reps, contrast_reps),
                       time.time() - t0, draws, tune, workers, complete=done)
    finally:
        ex.close()
    return pd.DataFrame(rows)


def _write(out, df, reps_df, reps, seconds, draws, tune, workers, complete):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "annotator_coverage.csv", df.to_csv(index=False))
    _atomic_write(out / "annotator_coverage_replications.csv",
                  reps_df.to_csv(index=False, float_format="%.5g"))
    _atomic_write(out / "annotator_coverage.md",
                  markdown(df, reps, seconds, draws, tune, workers, complete))


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m validation.annotator_coverage",
        description="Coverage of 90%% intervals of the beta-binomial family (and the weighted "
        "Bernoulli for contrast) on simulated annotator counts. Writes "
        "annotator_coverage.csv and annotator_coverage.md.",
    )
    ap.add_argument("--reps", type=int, default=400, help="replications per cell")
    ap.add_argument("--contrast-reps", type=int, default=60,
                    help="replications per cell of the weighted-Bernoulli fits")
    ap.add_argument("--draws", type=int, default=400, help="draws per chain (2 chains)")
    ap.add_argument("--tune", type=int, default=300, help="tuning steps per chain")
    ap.add_argument("--workers", type=int, default=2, help="local Dask workers (0: serial)")
    ap.add_argument("--fits", default=",".join(FITS), help=f"subset of {','.join(FITS)}")
    ap.add_argument("--trials", default=",".join(map(str, TRIALS)), help="values of m")
    ap.add_argument("--out", default="validation", help="output folder (default validation)")
    ap.add_argument("--seed", type=int, default=20261130)
    args = ap.parse_args(argv)
    fits = tuple(f for f in args.fits.split(",") if f)
    unknown = sorted(set(fits) - set(FITS))
    if unknown:
        ap.error(f"--fits: unknown {unknown}; choose from {list(FITS)}")
    trials = tuple(int(t) for t in args.trials.split(","))
    df = run(args.reps, seed=args.seed, draws=args.draws, tune=args.tune,
             workers=args.workers, out=args.out, fits=fits, cell_list=cells(trials),
             contrast_reps=args.contrast_reps)
    print(df.to_string())


if __name__ == "__main__":
    main()
