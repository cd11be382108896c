"""The speed benchmark's report: machine and versions, and the Markdown tables of a run."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform

import numba

from benchmarks.config import AGREE_MCSE, AGREE_SD, EVAL_IMPLS, PRIOR_SD
from softbayes.math.kernel_threads import PARALLEL


def versions():
    """Versions of Python and of the packages that the timings depend on."""
    out = {"python": platform.python_version()}
    for pkg in ("softbayes", "numpy", "numba", "pytensor", "pymc", "nutpie", "arviz", "jax",
                "numpyro"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def machine_info():
    """Platform, CPU count, load average and the kernels' threading of this machine."""
    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    try:
        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
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
    for name in ("softbayes-model", "softbayes-model-f32", "softbayes-model-numpyro"):
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
        impls = [i for i in [*EVAL_IMPLS, "floor"]
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
