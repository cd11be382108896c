"""Wall time of the STAR98 demo with exact K-fold for every model, serially and on local Dask
workers: ``python -m benchmarks.kfold`` (from the repository root).

Runs the shipped demo spec (``softbayes/app/specs/star98.toml``: 4 models, 4 chains x 500
draws, ``kfold_fallback = "all"`` -- PSIS-LOO is unreliable for two models, so all four get
10-fold refits: 4 fits + 40 refits) from scratch (``force=True``, a fresh reports folder)
once serially and once per ``--workers`` count, and prints a Markdown table: total wall
time, the time of the comparison (K-fold refits), the speed-up over the serial run, and the
cost of one fold (from the progress lines): the slowest fold per model and process (the one
that compiles the model's sampler there; median over models) and the median of the others
(the compiled sampler reused with the fold's rows swapped in).

Timings on a shared machine are noisy: the load average before and after each run is
printed with it.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

from softbayes.app.locations import demo_spec_path
from softbayes.app.runner import run_spec

_FOLD_LINE = re.compile(r"\[\d+/\d+\] fold (\d+) of \d+ of model (.+) done in ([0-9.]+) s")


def run_once(workers: int | None) -> dict:
    """One demo run from scratch; its times and the per-fold seconds from the progress."""
    lines: list[str] = []

    def echo(msg, nl=True):
        lines.append(msg)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="softbayes-bench-") as tmp:
        t0 = time.perf_counter()
        run_spec(demo_spec_path("star98"), reports_dir=Path(tmp), force=True, echo=echo,
                 workers=workers)
        total = time.perf_counter() - t0
    folds: dict[str, list[float]] = {}
    for line in lines:
        m = _FOLD_LINE.search(line)
        if m:
            folds.setdefault(m.group(2), []).append(float(m.group(3)))
    compared = next((float(m.group(1)) * (60 if m.group(2) == "min" else 1)
                     for m in (re.search(r"compared in ([0-9.]+) (s|min)", ln) for ln in lines)
                     if m), float("nan"))
    n_first = 1 if workers is None else workers  # one compile per process and model
    first = [s for v in folds.values() for s in sorted(v, reverse=True)[:n_first]]
    rest = [s for v in folds.values() for s in sorted(v, reverse=True)[n_first:]]
    return {
        "workers": workers, "total": total, "compare": compared,
        "n_folds": sum(len(v) for v in folds.values()),
        "first_fold": statistics.median(first) if first else float("nan"),
        "fold": statistics.median(rest) if rest else float("nan"),
        "load": (load_before, os.getloadavg()[0]),
    }


def table(runs: list[dict]) -> str:
    """The Markdown table of the runs (the first is the serial reference)."""
    base = runs[0]["total"]
    out = ["| run | total | K-fold comparison | speed-up | first fold (compile) | fold after "
           "the first compile (median) | folds | load avg before/after |",
           "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        name = "serial" if r["workers"] is None else f"{r['workers']} local workers"
        out.append(f"| {name} | {r['total']:.0f} s | {r['compare']:.0f} s | "
                   f"{base / r['total']:.2f}x | {r['first_fold']:.1f} s | {r['fold']:.1f} s | "
                   f"{r['n_folds']} | {r['load'][0]:.1f} / {r['load'][1]:.1f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.kfold", description=__doc__.split(
        "\n\n")[0])
    ap.add_argument("--workers", default="2",
                    help="comma-separated local worker counts to time after the serial run")
    args = ap.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    runs = [run_once(None)]
    for w in counts:
        runs.append(run_once(w))
    print(f"STAR98 demo with exact 10-fold refits for every model, {os.cpu_count()} CPU "
          "cores")
    print(table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
