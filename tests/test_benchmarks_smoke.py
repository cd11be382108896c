"""Smoke test of the speed benchmark harness (``python -m benchmarks --quick``): it runs, writes
its JSON and Markdown, and the engines' posterior means agree. Not a timing test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not (ROOT / "benchmarks" / "speed.py").exists(), reason="no benchmarks/")
def test_quick_benchmark_writes_reports(tmp_path):
    out = tmp_path / "bench"
    cmd = [
        sys.executable, "-m", "benchmarks", "--quick", "--out", str(out),
        "--sizes", "500", "--families", "weighted_bernoulli,continuous_bernoulli",
        "--n-sample", "300", "--draws", "100", "--tune", "100",
        "--engines", "softbayes-nutpie,naive-default,softbayes-model", "--min-time", "0.02",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "speed.json").read_text())
    md = (out / "speed.md").read_text()

    impls = {(r["family"], r["impl"]) for r in result["eval"]}
    for family in ("weighted_bernoulli", "continuous_bernoulli"):
        assert {(family, "fused"), (family, "naive"), (family, "floor")} <= impls
    for r in result["eval"]:
        assert r["seconds"] > 0 and r["ratio_to_floor"] > 0
        if r["impl"] == "fused":
            assert r["logp_rel_diff_vs_reference"] < 1e-10
            assert r["grad_rel_diff_vs_reference"] < 1e-10

    runs = result["sampling"]
    assert [r["engine"] for r in runs] == ["softbayes-nutpie", "naive-default", "softbayes-model"]
    assert all(r["status"] == "ok" for r in runs)
    assert result["all_agree"] is True
    assert all(r["min_ess_bulk"] > 0 and r["time_to_first_draw_s"] > 0 for r in runs)
    assert runs[2]["second_fit_first_draw_s"] > 0

    assert "logp + gradient" in md and "Sampling" in md and "All engines agree: yes" in md
    assert "ESS/s of pm.sample() on the naive graph" in md


def test_help():
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "--quick" in proc.stdout and "--out" in proc.stdout


@pytest.mark.slow
def test_time_to_posterior_engines_agree():
    # one measurement per engine (in this process), as the benchmark's fresh processes run it
    from benchmarks.posterior_time import one

    runs = [one(engine, 300, 3, 5) for engine in ("softbayes", "pymc")]
    assert all(r["fit_s"] > 0 and r["import_s"] >= 0 for r in runs)
    assert runs[0]["second_formula_s"] > 0
    means, sds = np.array([r["means"] for r in runs]), np.array([r["sds"] for r in runs])
    assert np.all(np.abs(means[0] - means[1]) < 0.2 * sds[1]), (means, sds)


def test_time_to_posterior_target_checks():
    # the verdicts follow the figures given (not a timing test: the rows are made up)
    from benchmarks.posterior_time import target_checks

    rows = [
        {"engine": "softbayes", "n": 300, "d": 5, "fit_s": 2.0, "second_formula_s": 1.0,
         "second_process_s": 1.6, "first_draw_s": None},
        {"engine": "numpyro", "n": 300, "d": 5, "fit_s": 1.9},
        {"engine": "softbayes", "n": 100_000, "d": 5, "fit_s": 20.0, "second_formula_s": 9.0,
         "second_process_s": 19.0, "first_draw_s": 2.5},
        {"engine": "pymc", "n": 300, "d": 5, "error": "failed"},
    ]
    checks = {what: holds for what, holds, _ in target_checks(rows)}
    assert checks == {
        "n=300, d=5: Model.fit <= NumPyro and <= 2.5 s": False,  # slower than NumPyro
        "n=300, d=5: 2nd formula, same process <= 1.5 s": True,
        "n=300, d=5: same structure, 2nd process <= 1.5 s": False,
        "n=100000, d=5: first draw of a new Model <= 3.0 s": True,
    }
