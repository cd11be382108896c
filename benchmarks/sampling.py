"""Sampling runs of the speed benchmark: ESS per second of each engine, and their agreement."""

from __future__ import annotations

import importlib.util
import time
import traceback

import arviz as az
import numpy as np
import xarray as xr

from benchmarks.config import AGREE_MCSE, AGREE_SD, ENGINES
from benchmarks.engines import ENGINE_FUNCS, EXTRA, NEEDS
from benchmarks.models import simulate


def _diagnostics(draws):
    ds = xr.Dataset({"b": (("chain", "draw", "coef"), draws)})
    ess = np.asarray(az.ess(ds, method="bulk")["b"].values, float)
    mcse = np.asarray(az.mcse(ds, method="mean")["b"].values, float)
    flat = draws.reshape(-1, draws.shape[-1])
    return ess, mcse, flat.mean(axis=0), flat.std(axis=0, ddof=1)


def run_sampling(args, log):
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
        # an engine that also times a second fit inside its first-draw call reports its own
        # first draw
        rec.update(EXTRA.pop(name, {}))
        rec["time_to_first_draw_s"] = rec.pop("first_draw_s", rec["time_to_first_draw_s"])
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
