"""Per-evaluation timing: logp + gradient of each likelihood implementation vs one pass over X."""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt

import softbayes as sb
from benchmarks.config import EVAL_IMPLS, PRIOR_SD
from benchmarks.models import build_model, simulate
from softbayes.distributions.glm import ContinuousBernoulliGLM, WeightedBernoulliGLM


def _fused_f32(family, X, labels):
    """The fused model with the design and the labels stored in float32."""
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, PRIOR_SD, shape=X.shape[1])
        lab = labels.astype(np.float32)
        if family == "weighted_bernoulli":
            WeightedBernoulliGLM("ll", X=X, labels=lab, beta=b, dtype="float32")
        else:
            ContinuousBernoulliGLM("y", X=X, beta=b, observed=lab, dtype="float32")
    return model


def _softbayes_model(family, X, labels):
    """``softbayes.Model``'s own PyMC model (data in pm.Data containers, centred design)."""
    cols = [f"x{j}" for j in range(1, X.shape[1])]
    df = pd.DataFrame(X[:, 1:], columns=cols)
    df["label"] = labels
    priors = {c: {"dist": "Normal", "mu": 0.0, "sigma": PRIOR_SD} for c in ["Intercept", *cols]}
    return sb.Model("label ~ " + " + ".join(cols), df, likelihood=family,
                    priors=priors).pymc_model


def _build(impl, family, X, labels):
    """``(PyMC model, compile mode)`` of one implementation."""
    if impl == "fused_f32":
        return _fused_f32(family, X, labels), None
    if impl == "model":
        return _softbayes_model(family, X, labels), None
    kind = {"naive_jax": "naive", "fused_jax": "fused"}.get(impl, impl)
    return build_model(kind, family, X, labels), "JAX" if impl.endswith("_jax") else None


def compile_logp_dlogp(model, mode=None):
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
    has_jax = importlib.util.find_spec("jax") is not None
    records = []
    for family in args.families:
        for n in args.sizes:
            X, labels, beta = simulate(n, args.d, args.seed, family)
            x0 = beta * 0.9
            fns, compile_s, values = {}, {}, {}
            impls = [i for i in EVAL_IMPLS if has_jax or not i.endswith("_jax")]
            for impl in impls:
                try:
                    t0 = time.perf_counter()
                    model, mode = _build(impl, family, X, labels)
                    if len(model.value_vars) == 1:
                        fn = compile_logp_dlogp(model, mode=mode)
                    else:  # Model: one value variable per term, another parametrization
                        fn = model.logp_dlogp_function(ravel_inputs=True)
                        fn.set_extra_values({})
                        fn.trust_input = True
                    out = fn(x0)
                    compile_s[impl] = time.perf_counter() - t0
                except Exception as exc:  # keep going: one failure is one missing row
                    log(f"  {family} n={n} {impl}: FAILED {exc!r}")
                    continue
                if impl != "model":  # (the model's logp has other priors: not compared)
                    values[impl] = (float(np.asarray(out[0])), np.asarray(out[1], dtype=float))
                # JAX dispatches asynchronously: wait for the values (np.asarray)
                fns[impl] = (lambda f=fn, x=x0: [np.asarray(o) for o in f(x)])
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
