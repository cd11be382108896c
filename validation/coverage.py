"""Coverage of 90 % intervals with and without calibration.

Run ``python -m validation.coverage --reps 400 --out validation`` (about two minutes on one
core); writes ``coverage.csv`` and ``coverage.md`` to ``--out``. ``--workers N`` (a local
Dask cluster) or ``--scheduler ADDRESS`` runs the 36 cells (setting x family x method) as
tasks in parallel, with the same numbers.

Simulation: n = 500 rows, ``x1, x2 ~ N(0, 1)`` drawn afresh in every replication,
``eta = 0.3 + 1.0 x1 - 0.5 x2``, ``mu = sigmoid(eta)``, and labels whose mean is exactly
``mu``:

* ``beta10``, ``beta100``: ``l ~ Beta(kappa mu, kappa (1 - mu))`` (dispersion 1/(kappa+1));
* ``exact``: ``l = mu`` (no noise);
* ``binom1``, ``binom5``, ``binom50``: annotator averages ``Binomial(m, mu) / m``
  (dispersion 1/m; m = 1 is hard labels, where the plain Bernoulli is right).

Fits: the posterior mode (Newton on the analytic gradient / Hessian of
:mod:`softbayes.backend.calibration`), prior ``Normal(0, 2.5)`` on every coefficient (the default
scale for standardized predictors), with Gaussian (Laplace) spreads:

* ``none``: ``H^-1`` (H = minus the Hessian of the log posterior at the mode);
* ``dispersion``: the posterior with the log-likelihood multiplied by ``1/phi_hat`` (its own
  mode and Laplace spread);
* ``sandwich``: ``H^-1 J H^-1`` at the mode.

Targets: ``weighted_bernoulli`` -- the three true coefficients; ``continuous_bernoulli``
(whose coefficients live on another scale) -- the true ``E[l | x] = mu(x)`` at three fixed
test points, from the CB-mean interval ``A'(z theta_hat +- 1.645 sd)``; its
``cb_pseudo`` rows score the same intervals against the CB's best approximation of
``mu(x)`` (the pseudo-true CB mean, from a fit to n = 200 000 noiseless rows), which is what
a misspecified-but-calibrated model can at best cover. Coverage is averaged over the three
targets; ``width`` is the mean reported sd over the empirical sd of the estimates across
replications (1 = right; uncalibrated WB on precise labels: several times too wide).

``--mcmc-check R`` (default 3) compares, on R replications of ``beta100`` and ``binom5``,
the Laplace intervals with ``pm.sample`` (NUTS) intervals of a small PyMC model with the same
likelihood and prior (``none``, ``dispersion``: tempered posterior; ``sandwich``: the NUTS
draws adjusted with :func:`softbayes.backend.calibration.adjust_draws`): the largest endpoint
difference as a fraction of the interval width.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special as sp

from softbayes.backend import calibration as cal
from softbayes.backend.executor import Executor, Task
from softbayes.math.continuous_bernoulli import cb_mean

BETA = np.array([0.3, 1.0, -0.5])
TEST_POINTS = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, -1.0], [1.0, -1.0, 0.5]])
PRIOR_SD = 2.5
Z90 = 1.6448536269514722
N = 500
SETTINGS = ("beta10", "beta100", "exact", "binom1", "binom5", "binom50")
FAMILIES = ("weighted_bernoulli", "continuous_bernoulli")
METHODS = ("none", "dispersion", "sandwich")
SETTING_TEXT = {
    "beta10": "Beta noise, κ = 10 (φ = 1/11)",
    "beta100": "Beta noise, κ = 100 (φ = 1/101)",
    "exact": "l = μ exactly (no noise)",
    "binom1": "hard labels, m = 1 (φ = 1)",
    "binom5": "annotator mean, m = 5 (φ = 1/5)",
    "binom50": "annotator mean, m = 50 (φ = 1/50)",
}


def simulate(setting, rng, n=N):
    X = np.column_stack([np.ones(n), rng.standard_normal((n, 2))])
    mu = sp.expit(X @ BETA)
    if setting.startswith("beta"):
        kappa = float(setting[4:])
        lab = rng.beta(kappa * mu, kappa * (1.0 - mu))
    elif setting == "exact":
        lab = mu.copy()
    elif setting.startswith("binom"):
        m = int(setting[5:])
        lab = rng.binomial(m, mu) / m
    else:
        raise ValueError(setting)
    return X, lab


def fit_one(family, X, lab, method):
    """(estimate, covariance, phi) of the coefficients; None if refused (noiseless)."""
    prec = np.full(X.shape[1], 1.0 / PRIOR_SD**2)
    theta = cal.find_mode(family, lab, X, prior_precision=prec)
    phi = cal.estimate_dispersion(family, lab, X=X, theta=theta)
    if method == "none":
        q = cal.glm_quantities(family, lab, X, theta)
        return theta, np.linalg.inv(q["info"] + np.diag(prec)), phi
    if phi < cal.NOISELESS_DISPERSION:
        return None, None, phi
    if method == "dispersion":
        w = np.full(len(lab), 1.0 / phi)
        th_w = cal.find_mode(family, lab, X, w, prior_precision=prec, theta0=theta)
        q = cal.glm_quantities(family, lab, X, th_w, w)
        return th_w, np.linalg.inv(q["info"] + np.diag(prec)), phi
    cov, _, _ = cal.sandwich_covariance(family, lab, X, theta, prior_precision=prec)
    return theta, cov, phi


def pseudo_true_cb(seed=12345, n=200_000):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.standard_normal((n, 2))])
    theta = cal.find_mode("continuous_bernoulli", sp.expit(X @ BETA), X)
    return cb_mean(TEST_POINTS @ theta)


def cell(description, setting, seed, *, reps, cb_pseudo):
    """Task function of one cell (``description = (family, method)``, a ``setting``):
    ``reps`` replications from ``default_rng([seed, setting index])`` (the same data for
    every method); the table's rows of that cell."""
    family, method = description
    rng = np.random.default_rng([seed, SETTINGS.index(setting)])
    true_mean = sp.expit(TEST_POINTS @ BETA)
    est, sds, cov_true, cov_pseudo, phis, refused = [], [], [], [], [], 0
    for _ in range(reps):
        X, lab = simulate(setting, rng)
        theta, cov, phi = fit_one(family, X, lab, method)
        phis.append(phi)
        if theta is None:
            refused += 1
            continue
        if family == "weighted_bernoulli":
            e, sd = theta, np.sqrt(np.diag(cov))
            cov_true.append(np.abs(e - BETA) <= Z90 * sd)
        else:
            e = TEST_POINTS @ theta
            sd = np.sqrt(np.einsum("ij,jk,ik->i", TEST_POINTS, cov, TEST_POINTS))
            lo, hi = cb_mean(e - Z90 * sd), cb_mean(e + Z90 * sd)
            cov_true.append((lo <= true_mean) & (true_mean <= hi))
            cov_pseudo.append((lo <= cb_pseudo) & (cb_pseudo <= hi))
        est.append(e)
        sds.append(sd)
    used = reps - refused
    base = {"setting": setting, "family": family, "calibration": method, "reps": reps,
            "refused": refused, "phi_hat_median": float(np.median(phis))}
    if used == 0:
        return [{**base, "target": "true", "coverage": np.nan, "mc_se": np.nan,
                 "width_ratio": np.nan}]
    emp_sd = np.std(np.array(est), axis=0, ddof=1) if used > 1 else np.nan
    width = float(np.mean(np.mean(sds, axis=0) / emp_sd)) if used > 1 else np.nan
    targets = [("true", cov_true)]
    if family == "continuous_bernoulli":
        targets.append(("cb_pseudo", cov_pseudo))
    rows = []
    for target, hits in targets:
        c = float(np.mean(hits))
        rows.append({**base, "target": target, "coverage": c,
                     "mc_se": float(np.sqrt(c * (1 - c) / used)), "width_ratio": width})
    return rows


def run(reps, seed=20261126, progress=True, settings=SETTINGS, families=FAMILIES,
        executor=None):
    """The coverage table as a data frame (one row per setting x family x method x target).

    Each cell is one task on ``executor`` (a :class:`softbayes.backend.executor.Executor`;
    default serial): the same numbers wherever the cells run.
    """
    cb_pseudo = pseudo_true_cb()
    tasks = [Task(cell, (family, method), setting, seed, label=f"{setting} {family} {method}",
                  options={"reps": reps, "cb_pseudo": cb_pseudo})
             for setting in settings for family in families for method in METHODS]
    ex = executor or Executor(echo=print if progress else None)
    results = ex.run(tasks)
    failed = [f"{r.label}: {r.error}" for r in results if not r.ok]
    if failed:
        raise RuntimeError("coverage cells failed: " + "; ".join(failed))
    return pd.DataFrame([row for r in results for row in r.value])


# -- MCMC check --------------------------------------------------------------------------------
def mcmc_check(n_reps=3, draws=2000, seed=7, settings=("beta100", "binom5")):
    import pymc as pm
    import pytensor.tensor as pt

    from softbayes.math.continuous_bernoulli import cb_logp
    from softbayes.math.soft_labels import soft_bernoulli_logp

    out = []
    for family in FAMILIES:
        with pm.Model() as model:
            Xd = pm.Data("X", np.zeros((N, 3)))
            ld = pm.Data("l", np.full(N, 0.5))
            rate = pm.Data("rate", 1.0)
            theta = pm.Normal("theta", 0.0, PRIOR_SD, shape=3)
            eta = pt.dot(Xd, theta)
            term = soft_bernoulli_logp(ld, eta) if family == "weighted_bernoulli" else cb_logp(
                ld, eta)
            pm.Potential("loglik", rate * pt.sum(term))
        for s_i, setting in enumerate(settings):
            rng = np.random.default_rng([seed, s_i])
            for r in range(n_reps):
                X, lab = simulate(setting, rng)
                laplace = {m: fit_one(family, X, lab, m) for m in METHODS}
                phi = laplace["none"][2]
                mc = {}
                for method, w in (("none", 1.0), ("dispersion", 1.0 / phi)):
                    with model:
                        pm.set_data({"X": X, "l": lab, "rate": w})
                        idata = pm.sample(draws=draws, tune=1000, chains=2, cores=1,
                                          random_seed=int(seed * 100 + r), progressbar=False,
                                          compute_convergence_checks=False)
                    mc[method] = idata["posterior"]["theta"].values.reshape(-1, 3)
                flat = mc["none"]
                th_hat, cov_sand = laplace["sandwich"][0], laplace["sandwich"][1]
                A = cal.adjustment_matrix(np.cov(flat, rowvar=False), cov_sand)
                mc["sandwich"] = cal.adjust_draws(flat, th_hat, A)
                for method in METHODS:
                    est, cov, _ = laplace[method]
                    d = mc[method]
                    if family == "weighted_bernoulli":
                        sd = np.sqrt(np.diag(cov))
                        lo_l, hi_l = est - Z90 * sd, est + Z90 * sd
                        q = np.quantile(d, [0.05, 0.95], axis=0)
                    else:
                        e = TEST_POINTS @ est
                        sd = np.sqrt(np.einsum("ij,jk,ik->i", TEST_POINTS, cov, TEST_POINTS))
                        lo_l, hi_l = cb_mean(e - Z90 * sd), cb_mean(e + Z90 * sd)
                        q = np.quantile(cb_mean(d @ TEST_POINTS.T), [0.05, 0.95], axis=0)
                    width = hi_l - lo_l
                    err = np.maximum(np.abs(q[0] - lo_l), np.abs(q[1] - hi_l)) / width
                    out.append({"family": family, "setting": setting, "replication": r,
                                "calibration": method, "phi_hat": phi,
                                "max_endpoint_diff_over_width": float(err.max())})
    return pd.DataFrame(out)


# -- report ------------------------------------------------------------------------------------
def markdown(df, mc, reps, seconds):
    lines = [
        "# Coverage of 90 % intervals: soft-label families × calibration",
        "",
        f"Generated by `python -m validation.coverage --reps {reps}` ({seconds:.0f} s). "
        "See the module docstring of `validation/coverage.py` for the simulation. "
        f"n = {N}, 3 coefficients (β = {tuple(BETA.tolist())}), prior Normal(0, 2.5), "
        f"{reps} replications per cell; Monte Carlo SE of a coverage near 0.90 is "
        f"{np.sqrt(0.09 / reps):.3f}.",
        "",
        "Cells: coverage of the nominal 90 % intervals (width ratio = mean reported sd / "
        "empirical sd of the estimates; 1 is right). `refused`: the labels are noiseless, "
        "calibration raises `NoiselessLabelsError`. `weighted_bernoulli`: the three true "
        "coefficients. `continuous_bernoulli`: the true E[l | x] at three test points "
        "(`true`), and the CB's pseudo-true mean (`cb_pseudo`, its best approximation).",
        "",
        "| setting | family | target | median φ̂ | none | dispersion | sandwich |",
        "|---|---|---|---|---|---|---|",
    ]
    for setting in SETTINGS:
        for family in FAMILIES:
            sub = df[(df.setting == setting) & (df.family == family)]
            for target in sub.target.unique():
                cells = []
                for method in METHODS:
                    r = sub[(sub.calibration == method) & (sub.target == target)]
                    if r.empty or np.isnan(r.coverage.iloc[0]):
                        cells.append("refused")
                    else:
                        cells.append(f"{r.coverage.iloc[0]:.3f} ({r.width_ratio.iloc[0]:.2f}×)")
                phi = sub.phi_hat_median.iloc[0]
                lines.append(f"| {SETTING_TEXT[setting]} | {family} | {target} | {phi:.3g} | "
                             + " | ".join(cells) + " |")
    lines += [
        "",
        "## Reading (of the committed 400-replication run)",
        "",
        "* `weighted_bernoulli`, uncalibrated: covers ~100 % whenever the labels are less "
        "noisy than coin flips, with intervals sqrt(1/φ) too wide (2.2× at m = 5, 3.2× at "
        "κ = 10, 7.5× at m = 50, 10× at κ = 100); right for hard labels (m = 1).",
        "* `weighted_bernoulli`, `dispersion` and `sandwich`: within 0.86-0.94 in every noisy "
        "setting, width ratio ≈ 1. Noiseless labels are refused (φ̂ ≈ 1e-6), never a "
        "zero-width posterior.",
        "* `continuous_bernoulli`: its mean curve A'(xθ) is not the logistic curve σ(xβ) "
        "the labels were drawn from, so with precise labels *any* correctly sized interval "
        "misses the true E[l | x] (`true` rows: 0.00-0.05 calibrated at κ = 100 and m = 50); "
        "the uncalibrated CB covers there only because it is 3.5-9× too wide. Against the "
        "CB's own best approximation (`cb_pseudo`) both calibrations are near nominal "
        "(`dispersion` 0.88-0.91; `sandwich` 0.85-0.91, slightly low with precise labels, "
        "the known small-sample bias of HC0). For hard or very noisy labels (φ̂ > 1) the "
        "uncalibrated CB is too narrow (0.53 at m = 1) and calibration fixes it.",
        "* Laplace vs MCMC: interval endpoints differ by at most 5 % of the interval width in "
        "every checked cell (table below), so the mode + Gaussian spread used above stands "
        "for the sampled posterior.",
    ]
    if mc is not None and len(mc):
        lines += [
            "",
            "## Laplace (mode + Gaussian spread) vs MCMC",
            "",
            "Largest |endpoint difference| / interval width over the three targets, per "
            "replication, between the Laplace intervals above and `pm.sample` (NUTS, 2 × "
            "2000 draws) of a PyMC model with the same likelihood and prior (tempered for "
            "`dispersion`; NUTS draws adjusted to the sandwich covariance for `sandwich`).",
            "",
            "| family | setting | calibration | max over replications | mean |",
            "|---|---|---|---|---|",
        ]
        g = mc.groupby(["family", "setting", "calibration"])["max_endpoint_diff_over_width"]
        for (fam, setting, method), v in g:
            lines.append(f"| {fam} | {setting} | {method} | {v.max():.3f} | {v.mean():.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m validation.coverage",
        description="Coverage of 90% intervals for soft-label families with and without "
        "calibration (none / dispersion / sandwich). Writes coverage.csv and coverage.md.",
    )
    ap.add_argument("--reps", type=int, default=400, help="replications per cell (400: ±3%%)")
    ap.add_argument("--out", default="validation", help="output folder (default validation)")
    ap.add_argument("--seed", type=int, default=20261126)
    ap.add_argument("--mcmc-check", type=int, default=3, metavar="R",
                    help="replications of the Laplace-vs-NUTS check (0: skip)")
    ap.add_argument("--workers", type=int, default=None, metavar="N",
                    help="run the cells on a local Dask cluster of N processes")
    ap.add_argument("--scheduler", default=None, metavar="ADDRESS",
                    help="run the cells on the Dask scheduler at ADDRESS")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with Executor(workers=args.workers, scheduler=args.scheduler, echo=print) as ex:
        df = run(args.reps, args.seed, executor=ex)
    mc = mcmc_check(args.mcmc_check) if args.mcmc_check > 0 else None
    seconds = time.time() - t0
    df.to_csv(out / "coverage.csv", index=False)
    if mc is not None:
        mc.to_csv(out / "coverage_mcmc.csv", index=False)
    text = markdown(df, mc, args.reps, seconds)
    (out / "coverage.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
