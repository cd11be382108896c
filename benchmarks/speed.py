"""Speed of soft-label regression: per-evaluation cost and end-to-end sampling efficiency.

Everything runs in one process on the same simulated data (intercept + ``d - 1`` standard
normal covariates, ``beta ~ N(0, 0.5)``):

1. **logp + gradient per evaluation** of the weighted-Bernoulli (soft-label logistic) and
   continuous-Bernoulli likelihoods at several ``n``: softbayes' fused kernel
   (:mod:`softbayes.ops.glm`), softbayes' reference graph (``WeightedBernoulli`` /
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
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

FAMILIES = ("weighted_bernoulli", "continuous_bernoulli")
EVAL_IMPLS = {
    "fused": "softbayes fused kernel (numba)",
    "reference": "softbayes reference graph (numba)",
    "naive": "naive pm.Potential (numba)",
    "naive_jax": "naive pm.Potential (JAX backend)",
}
ENGINES = {
    "softbayes-nutpie": "softbayes fused kernel, PyMC model, nutpie (numba)",
    "softbayes-model": "softbayes.Model(...).fit() (nutpie, fused kernel)",
    "naive-default": "naive pm.Potential, pm.sample() default",
    "duplicated-default": "seed's duplicated data (2n rows), pm.sample() default",
    "naive-nutpie-jax": "naive pm.Potential, nutpie JAX backend",
    "numpyro": "NumPyro NUTS (pure NumPyro model)",
    "softbayes-numpyro": "softbayes fused kernel, pm.sample(nuts_sampler='numpyro')",
    "softbayes-model-numpyro": "softbayes.Model(...).fit(sampler='numpyro')",
}
DEFAULTS = {
    "sizes": [10_000, 100_000, 1_000_000],
    "d": 10,
    "n_sample": 100_000,
    "draws": 500,
    "tune": 500,
    "chains": 2,
    "min_time": 1.0,
}
QUICK = {
    "sizes": [1_000, 5_000],
    "d": 10,
    "n_sample": 2_000,
    "draws": 200,
    "tune": 200,
    "chains": 2,
    "min_time": 0.1,
}
PRIOR_SD = 2.5
AGREE_SD = 0.05  # posterior means agree within this many posterior sds ...
AGREE_MCSE = 4.0  # ... or within this many Monte Carlo standard errors of the difference


# --------------------------------------------------------------------------------------------
# Data and models
# --------------------------------------------------------------------------------------------
def simulate(n, d, seed, family):
    """Design (intercept first), labels and true coefficients."""
    from scipy.special import expit

    from softbayes.math.continuous_bernoulli import cb_icdf

    rng = np.random.default_rng([seed, n, d, FAMILIES.index(family)])
    X = np.column_stack([np.ones(n), rng.normal(size=(n, d - 1))])
    beta = rng.normal(0.0, 0.5, size=d)
    eta = X @ beta
    if family == "weighted_bernoulli":
        labels = expit(eta + 0.5 * rng.normal(size=n))
        hard = rng.random(n) < 0.05  # some labels exactly 0 or 1
        labels[hard] = (rng.random(hard.sum()) < expit(eta[hard])).astype(float)
    else:
        labels = cb_icdf(rng.random(n), eta)
    return X, labels, beta


def build_model(kind, family, X, labels):
    """A PyMC model with ``b ~ Normal(0, 2.5)`` (d,) and one version of the likelihood."""
    import pymc as pm
    import pytensor.tensor as pt

    import softbayes as sb
    from softbayes.data.duplication import expand_soft_labels
    from softbayes.ops.glm import ContinuousBernoulliGLM, WeightedBernoulliGLM

    d = X.shape[1]
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, PRIOR_SD, shape=d)
        if kind == "fused":
            if family == "weighted_bernoulli":
                WeightedBernoulliGLM("ll", X=X, labels=labels, beta=b)
            else:
                ContinuousBernoulliGLM("y", X=X, beta=b, observed=labels)
        elif kind == "reference":
            eta = pt.dot(pt.as_tensor(X), b)
            if family == "weighted_bernoulli":
                sb.WeightedBernoulli("ll", labels=labels, logit_p=eta)
            else:
                sb.ContinuousBernoulli("y", logit_p=eta, observed=labels)
        elif kind == "naive":
            eta = pt.dot(pt.as_tensor(X), b)
            if family == "weighted_bernoulli":
                p = pm.math.sigmoid(eta)
                pm.Potential("ll", pt.sum(labels * pt.log(p) + (1 - labels) * pt.log(1 - p)))
            else:  # the textbook form, l eta + log(eta / expm1(eta)); NaN at eta = 0
                pm.Potential("ll", pt.sum(labels * eta + pt.log(eta / pt.expm1(eta))))
        elif kind == "duplicated":
            if family != "weighted_bernoulli":
                raise ValueError("the duplicated data set is a weighted-Bernoulli device")
            X_dup, y_dup, w_dup, _ = expand_soft_labels(X, labels)
            eta = pt.dot(pt.as_tensor(X_dup), b)
            pm.Potential(
                "ll", pt.sum(w_dup * pm.logp(pm.Bernoulli.dist(logit_p=eta), y_dup))
            )
        else:
            raise ValueError(kind)
    return model


# --------------------------------------------------------------------------------------------
# Per-evaluation timing
# --------------------------------------------------------------------------------------------
def compile_logp_dlogp(model, mode=None):
    import pytensor
    import pytensor.tensor as pt

    logp = model.logp()
    (value,) = model.value_vars
    fn = pytensor.function([value], [logp, pt.grad(logp, value)], mode=mode)
    fn.trust_input = True
    return fn


def time_interleaved(fns, min_time, min_rounds=5, max_rounds=200, batch_s=0.02):
    """Median seconds per call of each function, calls interleaved in rounds."""
    reps = {}
    for k, f in fns.items():
        f()
        t0 = time.perf_counter()
        f()
        dt = max(time.perf_counter() - t0, 1e-7)
        reps[k] = max(1, int(batch_s / dt))
    samples = {k: [] for k in fns}
    spent = dict.fromkeys(fns, 0.0)
    for r in range(max_rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(reps[k]):
                f()
            dt = time.perf_counter() - t0
            spent[k] += dt
            samples[k].append(dt / reps[k])
        if r + 1 >= min_rounds and min(spent.values()) >= min_time:
            break
    return {k: float(np.median(v)) for k, v in samples.items()}, {
        k: len(v) * reps[k] for k, v in samples.items()
    }


def run_eval(args, log):
    import importlib.util

    has_jax = importlib.util.find_spec("jax") is not None
    records = []
    for family in args.families:
        for n in args.sizes:
            X, labels, beta = simulate(n, args.d, args.seed, family)
            x0 = beta * 0.9
            fns, compile_s, values = {}, {}, {}
            impls = ["fused", "reference", "naive"] + (["naive_jax"] if has_jax else [])
            for impl in impls:
                kind = "naive" if impl == "naive_jax" else impl
                mode = "JAX" if impl == "naive_jax" else None
                try:
                    t0 = time.perf_counter()
                    fn = compile_logp_dlogp(build_model(kind, family, X, labels), mode=mode)
                    out = fn(x0)
                    compile_s[impl] = time.perf_counter() - t0
                except Exception as exc:  # keep going: one failure is one missing row
                    log(f"  {family} n={n} {impl}: FAILED {exc!r}")
                    continue
                values[impl] = (float(np.asarray(out[0])), np.asarray(out[1], dtype=float))
                fns[impl] = (lambda f=fn, x=x0: f(x))
            fns["floor"] = lambda X=X, x=x0: X @ x
            med, counts = time_interleaved(fns, args.min_time)
            ref_val, ref_grad = values.get("reference", values.get("fused"))
            for impl, t in med.items():
                rec = {
                    "family": family,
                    "n": n,
                    "d": args.d,
                    "impl": impl,
                    "label": EVAL_IMPLS.get(impl, "NumPy X @ beta (floor)"),
                    "seconds": t,
                    "ratio_to_floor": t / med["floor"],
                    "evaluations": counts[impl],
                    "compile_s": compile_s.get(impl),
                }
                if impl in values:
                    v, g = values[impl]
                    rec["logp_rel_diff_vs_reference"] = abs(v - ref_val) / max(1.0, abs(ref_val))
                    rec["grad_rel_diff_vs_reference"] = float(
                        np.max(np.abs(g - ref_grad)) / max(1.0, np.max(np.abs(ref_grad)))
                    )
                records.append(rec)
            log(
                f"  {family:21s} n={n:>8d}: "
                + ", ".join(f"{k} {1e3 * v:.2f} ms ({v / med['floor']:.1f}x)"
                            for k, v in med.items())
            )
    return records


# --------------------------------------------------------------------------------------------
# Sampling engines
# --------------------------------------------------------------------------------------------
def _posterior_b(idata):
    post = idata["posterior"]
    b = post["b"]
    return np.asarray(b.transpose("chain", "draw", ...).values, dtype=float)


def _eng_softbayes_nutpie(X, labels, a, ttfd_only=False):
    import nutpie

    model = build_model("fused", "weighted_bernoulli", X, labels)
    compiled = nutpie.compile_pymc_model(model)
    if ttfd_only:
        nutpie.sample(compiled, draws=1, tune=1, chains=1, progress_bar=False, seed=a.seed)
        return None, "nutpie"
    idata = nutpie.sample(compiled, draws=a.draws, tune=a.tune, chains=a.chains, cores=a.chains,
                          seed=a.seed, progress_bar=False)
    return _posterior_b(idata), "nutpie"


def _eng_naive_nutpie_jax(X, labels, a, ttfd_only=False):
    import nutpie

    model = build_model("naive", "weighted_bernoulli", X, labels)
    compiled = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax")
    if ttfd_only:
        nutpie.sample(compiled, draws=1, tune=1, chains=1, progress_bar=False, seed=a.seed)
        return None, "nutpie (jax)"
    idata = nutpie.sample(compiled, draws=a.draws, tune=a.tune, chains=a.chains, cores=a.chains,
                          seed=a.seed, progress_bar=False)
    return _posterior_b(idata), "nutpie (jax)"


def _pm_sample(model, a, ttfd_only, **kwargs):
    import pymc as pm

    draws, tune, chains = (1, 1, 1) if ttfd_only else (a.draws, a.tune, a.chains)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=chains,
                          random_seed=a.seed, progressbar=False, model=model,
                          compute_convergence_checks=False, **kwargs)
    lib = idata["posterior"].attrs.get("inference_library", "?")
    return (None if ttfd_only else _posterior_b(idata)), str(lib)


def _eng_naive_default(X, labels, a, ttfd_only=False):
    return _pm_sample(build_model("naive", "weighted_bernoulli", X, labels), a, ttfd_only)


def _eng_duplicated_default(X, labels, a, ttfd_only=False):
    return _pm_sample(build_model("duplicated", "weighted_bernoulli", X, labels), a, ttfd_only)


def _eng_softbayes_numpyro(X, labels, a, ttfd_only=False):
    chains = 1 if ttfd_only else a.chains
    return _pm_sample(build_model("fused", "weighted_bernoulli", X, labels), a, ttfd_only,
                      nuts_sampler="numpyro",
                      nuts={"chain_method": _numpyro_chain_method(chains, pymc=True)})


#: Extra facts an engine measured on the side, by engine name (merged into its record).
_EXTRA: dict[str, dict] = {}


def _softbayes_frame(X, labels):
    import pandas as pd

    cols = [f"x{j}" for j in range(1, X.shape[1])]
    df = pd.DataFrame(X[:, 1:], columns=cols)
    df["label"] = labels
    return df, cols


def _eng_softbayes_model(X, labels, a, ttfd_only=False, sampler="nutpie", name="softbayes-model"):
    import softbayes as sb

    df, cols = _softbayes_frame(X, labels)
    priors = {"Intercept": {"dist": "Normal", "mu": 0.0, "sigma": PRIOR_SD},
              **{c: {"dist": "Normal", "mu": 0.0, "sigma": PRIOR_SD} for c in cols}}
    model = sb.Model("label ~ " + " + ".join(cols), df, priors=priors)
    draws, tune, chains = (1, 1, 1) if ttfd_only else (a.draws, a.tune, a.chains)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(draws=draws, tune=tune, chains=chains, cores=chains, sampler=sampler,
                        random_seed=a.seed, log_likelihood=False)
        if ttfd_only:
            # A second fit of the same model structure on other rows (a bootstrap resample,
            # as in K-fold or bootstrap refits): the data are swapped into the compiled model.
            rng = np.random.default_rng(a.seed + 1)
            rows = rng.integers(0, len(df), len(df))
            t0 = time.perf_counter()
            model.refit(df.iloc[rows].reset_index(drop=True), draws=1, tune=1, chains=1,
                        cores=1, sampler=sampler, random_seed=a.seed, log_likelihood=False)
            _EXTRA[name] = {"second_fit_first_draw_s": time.perf_counter() - t0}
    if ttfd_only:
        return None, str(fit.attrs.get("softbayes_sampler", "?"))
    post = fit["posterior"]
    parts = [np.asarray(post["Intercept"].transpose("chain", "draw").values, float)[..., None]]
    for c in cols:
        parts.append(np.asarray(post[c].transpose("chain", "draw").values, float)[..., None])
    return np.concatenate(parts, axis=-1), str(fit.attrs.get("softbayes_sampler", "?"))


def _eng_softbayes_model_numpyro(X, labels, a, ttfd_only=False):
    return _eng_softbayes_model(X, labels, a, ttfd_only, sampler="numpyro",
                                name="softbayes-model-numpyro")


def _numpyro_chain_method(chains, pymc=False):
    import jax

    if jax.local_device_count() >= chains:
        return "parallel"
    # one accelerator: all chains in one vectorized program (NumPyro's advice for GPUs)
    if jax.default_backend() != "cpu":
        return "vectorized"
    return "parallel" if pymc else "sequential"  # PyMC knows no "sequential"


def _eng_numpyro(X, labels, a, ttfd_only=False):
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    numpyro.enable_x64()
    d = X.shape[1]
    Xj, lj = jnp.asarray(X), jnp.asarray(labels)

    def model(X, labels):
        b = numpyro.sample("b", dist.Normal(0.0, PRIOR_SD).expand([d]).to_event(1))
        eta = X @ b
        numpyro.factor("ll", jnp.sum(labels * eta - jax.nn.softplus(eta)))

    draws, tune, chains = (1, 1, 1) if ttfd_only else (a.draws, a.tune, a.chains)
    method = _numpyro_chain_method(chains)
    mcmc = MCMC(NUTS(model), num_warmup=tune, num_samples=draws, num_chains=chains,
                chain_method=method, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(a.seed), Xj, lj)
    if ttfd_only:
        return None, f"numpyro ({method})"
    samples = mcmc.get_samples(group_by_chain=True)["b"]
    return np.asarray(samples, dtype=float), f"numpyro ({method} chains)"


ENGINE_FUNCS = {
    "softbayes-nutpie": _eng_softbayes_nutpie,
    "softbayes-model": _eng_softbayes_model,
    "naive-default": _eng_naive_default,
    "duplicated-default": _eng_duplicated_default,
    "naive-nutpie-jax": _eng_naive_nutpie_jax,
    "numpyro": _eng_numpyro,
    "softbayes-numpyro": _eng_softbayes_numpyro,
    "softbayes-model-numpyro": _eng_softbayes_model_numpyro,
}
NEEDS = {"naive-nutpie-jax": "jax", "numpyro": "numpyro", "softbayes-numpyro": "numpyro",
         "softbayes-model-numpyro": "numpyro"}


def _diagnostics(draws):
    import arviz as az
    import xarray as xr

    ds = xr.Dataset({"b": (("chain", "draw", "coef"), draws)})
    ess = np.asarray(az.ess(ds, method="bulk")["b"].values, float)
    mcse = np.asarray(az.mcse(ds, method="mean")["b"].values, float)
    flat = draws.reshape(-1, draws.shape[-1])
    return ess, mcse, flat.mean(axis=0), flat.std(axis=0, ddof=1)


def run_sampling(args, log):
    import importlib.util

    X, labels, beta = simulate(args.n_sample, args.d, args.seed, "weighted_bernoulli")
    records = []
    for name in args.engines:
        rec = {"engine": name, "label": ENGINES[name], "n": args.n_sample, "d": args.d,
               "draws": args.draws, "tune": args.tune, "chains": args.chains}
        need = NEEDS.get(name)
        if need and importlib.util.find_spec(need) is None:
            rec.update(status="skipped", note=f"{need} not installed (pip install -e '.[bench]')")
            log(f"  {name}: skipped ({need} not installed)")
            records.append(rec)
            continue
        fn = ENGINE_FUNCS[name]
        try:
            t0 = time.perf_counter()
            fn(X, labels, args, ttfd_only=True)
            rec["time_to_first_draw_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            draws, sampler = fn(X, labels, args)
            wall = time.perf_counter() - t0
        except Exception as exc:
            rec.update(status="failed", note=f"{type(exc).__name__}: {exc}"[:300])
            log(f"  {name}: FAILED {exc!r}")
            if args.verbose:
                traceback.print_exc()
            records.append(rec)
            continue
        rec.update(_EXTRA.pop(name, {}))
        ess, mcse, mean, sd = _diagnostics(draws)
        rec.update(status="ok", sampler=sampler, wall_s=wall, min_ess_bulk=float(ess.min()),
                   ess_per_s=float(ess.min() / wall), mean=mean.tolist(), sd=sd.tolist(),
                   mcse_mean=mcse.tolist())
        log(f"  {name}: {wall:.1f} s, min bulk ESS {ess.min():.0f}, "
            f"{ess.min() / wall:.2f} ESS/s, first draw {rec['time_to_first_draw_s']:.1f} s")
        records.append(rec)
    _agreement(records)
    return records, beta.tolist()


def _agreement(records):
    ok = [r for r in records if r.get("status") == "ok"]
    if not ok:
        return
    ref = ok[0]
    m0, s0, e0 = (np.asarray(ref[k]) for k in ("mean", "sd", "mcse_mean"))
    for r in ok:
        m, e = np.asarray(r["mean"]), np.asarray(r["mcse_mean"])
        diff = np.abs(m - m0)
        in_sd = diff / s0
        mcse = np.sqrt(e**2 + e0**2) if r is not ref else e0
        in_mcse = diff / np.maximum(mcse, 1e-300)
        agree = bool(np.all((in_sd <= AGREE_SD) | (in_mcse <= AGREE_MCSE)))
        r.update(agreement_reference=ref["engine"], max_abs_diff_in_sd=float(in_sd.max()),
                 max_abs_diff_in_mcse=float(in_mcse.max()), agrees=agree)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def _versions():
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("softbayes", "numpy", "numba", "pytensor", "pymc", "nutpie", "arviz", "jax",
                "numpyro"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def _machine():
    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    try:
        import numba

        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
        from softbayes.math.glm_kernels import PARALLEL

        info["kernel_parallel"] = PARALLEL
    except Exception:
        pass
    return info


def _fmt(x, spec=".2f", none="–"):
    return none if x is None else format(x, spec)


def _ratios(smp):
    """The targets' ratios, from the records of one run."""
    ok = {r["engine"]: r for r in smp if r.get("status") == "ok"}
    out = []
    for name in ("softbayes-model", "softbayes-model-numpyro"):
        r = ok.get(name)
        if r is None:
            continue
        facts = []
        for base, what in (("naive-default", "pm.sample() on the naive graph"),
                           ("numpyro", "NumPyro")):
            if base in ok:
                facts.append(f"{r['ess_per_s'] / ok[base]['ess_per_s']:.2f}x the ESS/s of "
                             f"{what}")
        first, second = r.get("time_to_first_draw_s"), r.get("second_fit_first_draw_s")
        if first and second:
            facts.append(f"a second fit of the same structure starts {first / second:.0f}x "
                         f"faster ({second:.2f} s vs {first:.1f} s)")
        if facts:
            out.append(f"- {r['label']}: " + "; ".join(facts) + ".")
    return [*out, ""] if out else []


def markdown(result):
    meta = result["meta"]
    lines = ["# softbayes speed benchmark", ""]
    lines.append(
        f"Run {meta['started']} on {meta['machine']['platform']}, "
        f"{meta['machine']['cpu_count']} CPUs (load average at start "
        f"{', '.join(f'{v:.1f}' for v in meta['machine'].get('load_average', []))}; at end "
        f"{', '.join(f'{v:.1f}' for v in meta.get('load_average_end', []))}). "
        f"{'Quick (smoke) sizes. ' if meta['args']['quick'] else ''}"
        "Timings are noisy on a shared machine; ratios within one run are the result."
    )
    lines.append("")
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v))
    lines.append("")
    ev = result.get("eval") or []
    if ev:
        lines += [
            "## logp + gradient, one evaluation",
            "",
            f"Median wall time per call (d = {ev[0]['d']}); in brackets the ratio to one NumPy "
            "`X @ beta` (one pass over the design matrix, the floor).",
            "",
        ]
        impls = [i for i in ["fused", "reference", "naive", "naive_jax", "floor"]
                 if any(r["impl"] == i for r in ev)]
        labels = {**EVAL_IMPLS, "floor": "NumPy X @ beta (floor)"}
        header = "| likelihood | n | " + " | ".join(labels[i] for i in impls) + " |"
        lines += [header, "|" + "---|" * (len(impls) + 2)]
        for family in dict.fromkeys(r["family"] for r in ev):
            for n in dict.fromkeys(r["n"] for r in ev if r["family"] == family):
                row = {r["impl"]: r for r in ev if r["family"] == family and r["n"] == n}
                cells = []
                for i in impls:
                    r = row.get(i)
                    cells.append("–" if r is None else
                                 f"{1e3 * r['seconds']:.2f} ms ({r['ratio_to_floor']:.1f}x)")
                lines.append(f"| {family} | {n:,} | " + " | ".join(cells) + " |")
        worst = max((r.get("logp_rel_diff_vs_reference", 0.0) for r in ev
                     if r["impl"] == "fused"), default=0.0)
        lines += ["", f"Fused kernel vs reference graph at the timing point: max relative "
                      f"difference of logp {worst:.1e}.", ""]
    smp = result.get("sampling") or []
    if smp:
        r0 = smp[0]
        lines += [
            "## Sampling: weighted-Bernoulli regression",
            "",
            f"n = {r0['n']:,}, d = {r0['d']}, prior Normal(0, {PRIOR_SD}), {r0['chains']} chains "
            f"x ({r0['tune']} tune + {r0['draws']} draws). Wall time includes compilation "
            "(in this process, after the time-to-first-draw run of the same engine). Time to "
            "first draw: a new model of the same size, compile + 1 tuning step + 1 draw, one "
            "chain. Agreement: posterior means vs the first engine, max over coefficients of "
            f"|Δmean| / posterior sd; agrees if each is ≤ {AGREE_SD} sd or ≤ {AGREE_MCSE:g} "
            "Monte Carlo standard errors of the difference.",
            "",
            "| engine | sampler | wall s | first draw s | second fit, first draw s | "
            "min bulk ESS | ESS/s | max Δmean/sd | agrees |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in smp:
            if r.get("status") != "ok":
                lines.append(f"| {r['label']} | {r.get('status')}: {r.get('note', '')} "
                             "| – | – | – | – | – | – | – |")
                continue
            lines.append(
                f"| {r['label']} | {r['sampler']} | {r['wall_s']:.1f} | "
                f"{_fmt(r.get('time_to_first_draw_s'), '.1f')} | "
                f"{_fmt(r.get('second_fit_first_draw_s'), '.2f')} | {r['min_ess_bulk']:.0f} | "
                f"{r['ess_per_s']:.2f} | {_fmt(r.get('max_abs_diff_in_sd'), '.3f')} | "
                f"{'yes' if r.get('agrees') else 'NO'} |"
            )
        agree = result.get("all_agree")
        lines += ["", f"All engines agree: {'yes' if agree else 'NO'}.", ""]
        lines += _ratios(smp)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
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
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={a.chains}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t_start = time.perf_counter()
    result = {"meta": {"started": started, "args": vars(a), "machine": _machine(),
                       "versions": _versions()}}
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
