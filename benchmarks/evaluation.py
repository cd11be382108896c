"""Per-evaluation timing: logp + gradient of each likelihood implementation vs one pass over X."""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytensor
import pytensor.tensor as pt

from benchmarks.config import EVAL_IMPLS
from benchmarks.models import build_model, simulate


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
