"""The command line shows every warning of a fit, and `run` a summary line per model."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from spec_helpers import cli, spec_data, spec_toml, write

SUMMARY = re.compile(r"^  (\w+): R-hat max ([\d.]+|nan), min ESS (\d+|nan), divergences "
                     r"(\d+|n/a), (\d+) warnings?$", re.MULTILINE)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """Noisy soft labels (Beta around a logistic mean): the dispersion is far below 1."""
    folder = tmp_path_factory.mktemp("cli_warnings")
    rng = np.random.default_rng(1)
    x = rng.normal(size=60)
    mu = 1 / (1 + np.exp(-x))
    share = rng.beta(mu * 20, (1 - mu) * 20)
    pd.DataFrame({"x": x, "share": share}).to_csv(folder / "d.csv", index=False)
    return folder


def test_unconverged_fit_prints_its_warnings(data_file, tmp_path):
    r = cli("fit", data_file / "d.csv", "--formula", "share ~ x", "--out", tmp_path / "f.nc",
            "--draws", 20, "--tune", 5, "--chains", 2, "--seed", 1)
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    warned = [ln for ln in r.output.splitlines() if ln.startswith("  warning: ")]
    text = "\n".join(warned)
    assert "R-hat" in text and "bulk ESS" in text and "tail ESS" in text, r.output
    assert "Dispersion phi" in text, r.output  # the labels vary less than coin flips
    assert len(warned) == len(set(warned)), "each warning once"


def test_run_prints_a_summary_line_per_model(tmp_path):
    spec_data().to_csv(tmp_path / "d.csv", index=False)
    text = spec_toml(title="warn run").replace("draws = 10\ntune = 10\nchains = 1",
                                               "draws = 60\ntune = 30\nchains = 2")
    assert "chains = 2" in text
    spec = write(tmp_path, text, name="w.toml")
    r = cli("run", spec, "--reports-dir", tmp_path / "reports")
    assert r.exit_code == 0, r.output
    lines = SUMMARY.findall(r.output)
    assert [m[0] for m in lines] == ["wb"], r.output
    name, rhat, ess, div, n_warn = lines[0]
    assert float(rhat) >= 1.0 and div.isdigit()
    assert int(ess) < 200  # 120 draws: below 100 per chain, so a warning says so
    below = r.output.split(f"  {name}: R-hat max")[1].split("\ndone")[0]
    assert below.count("    warning: ") == int(n_warn) >= 1, r.output
    assert "ESS" in below, r.output
    assert r.output.index("R-hat max") < r.output.index("\ndone in")
