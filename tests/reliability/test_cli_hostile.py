"""Hostile specs, data files and arguments through the ``softbayes`` command.

Every case must exit with status 2 and print exactly one ``error:`` paragraph that names the
file (and, for specs, the key and line) -- no traceback. Nothing is fitted.

Already covered by tests/app/test_spec.py (not repeated here): unknown key inside a model table,
wrong value type, missing data file, a data path outside the spec's folder (``../``), an
absolute path, a symlink out of the folder, unknown family, unknown formula column, a formula
calling code outside the allow-list, unknown prior term, an option of another family,
duplicate model names, TOML syntax errors, a missing spec, ``--debug``. The kill / interrupt /
failure-during-run cases (the previous report stays intact) are in tests/app/test_cli_run.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from spec_helpers import cli, one_error, spec_data, spec_toml, write

GOOD = spec_toml()


@pytest.fixture
def folder(folder):
    """The spec folder of tests/conftest.py with hostile data files next to ``d.csv``."""
    df = spec_data()
    df.assign(share=100 * df["share"]).to_csv(folder / "pct.csv", index=False)
    df.assign(share=["high"] * 30).to_csv(folder / "words.csv", index=False)
    (folder / "garbage.csv").write_bytes(bytes(range(256)) * 8)
    (folder / "garbage.parquet").write_bytes(bytes(range(256)) * 8)
    (folder / "empty.csv").write_text("")
    (folder / "header.csv").write_text("x,share\n")
    (folder / "garbage.nc").write_bytes(bytes(range(256)) * 12)
    return folder


def check_failure(reliability, case, result, *needles):
    reliability.add("hostile_inputs", f"CLI: {case}")
    return one_error(result, *needles, case=case)


SPEC_CASES = {
    # case: (edit of GOOD, needles)
    "unknown top-level key": (
        lambda t: t.replace("seed = 3", 'seed = 3\ncolour = "red"'),
        ["line 3", "key colour", "unknown key 'colour'"]),
    "unknown section": (lambda t: t + "\n[extras]\na = 1\n", ["key extras", "unknown key"]),
    "seed of the wrong type": (
        lambda t: t.replace("seed = 3", 'seed = "x"'), ["line 2", "key seed", "integer"]),
    "negative draws": (
        lambda t: t.replace("draws = 10", "draws = -5"), ["key sampler.draws", "positive"]),
    "fractional draws": (
        lambda t: t.replace("draws = 10", "draws = 10.5"), ["key sampler.draws", "integer"]),
    "priors that are not a table": (
        lambda t: t + 'priors = "Normal"\n', ["key models[1].priors", "expected a table"]),
    "no models": (lambda t: t.split("[[models]]")[0], ["'models'"]),
    "models that are not tables": (
        lambda t: t.split("[[models]]")[0] + 'models = "wb"\n', ["'models'"]),
    "empty spec": (lambda t: "", ["missing required key 'data'"]),
    "label column not in the data": (
        lambda t: t.replace('labels = "share"', 'labels = "nope"'),
        ["key data.labels", "['nope']"]),
    "labels as percentages": (
        lambda t: t.replace('"d.csv"', '"pct.csv"'), ["'share'", "divide by 100"]),
    "labels as words": (
        lambda t: t.replace('"d.csv"', '"words.csv"'), ["'share'", "numeric"]),
    "data path climbing out through ..": (
        lambda t: t.replace('"d.csv"', '"../models/../../etc/passwd"'),
        ["key data.path", "outside the spec's folder"]),
    "data path is a folder": (
        lambda t: t.replace('"d.csv"', '"sub"'), ["key data.path", "'sub'"]),
    "data file of random bytes (.csv)": (
        lambda t: t.replace('"d.csv"', '"garbage.csv"'), ["key data.path", "garbage.csv"]),
    "data file of random bytes (.parquet)": (
        lambda t: t.replace('"d.csv"', '"garbage.parquet"'),
        ["key data.path", "garbage.parquet"]),
    "empty data file": (
        lambda t: t.replace('"d.csv"', '"empty.csv"'), ["key data.path", "empty.csv"]),
    "data file with a header only": (
        lambda t: t.replace('"d.csv"', '"header.csv"'), ["no rows"]),
    "unknown built-in data set": (
        lambda t: t.replace('path = "d.csv"', 'builtin = "nope"'),
        ["key data.builtin", "'nope'"]),
    "both a path and a built-in": (
        lambda t: t.replace('path = "d.csv"', 'path = "d.csv"\nbuiltin = "star98"'),
        ["key data", "exactly one"]),
}


@pytest.mark.parametrize("case", list(SPEC_CASES))
def test_check_refuses_hostile_specs(reliability, folder, case):
    (folder / "sub").mkdir()
    edit, needles = SPEC_CASES[case]
    path = write(folder, edit(GOOD))
    check_failure(reliability, f"check: {case}", cli("check", path), "s.toml", *needles)


def test_spec_that_is_not_utf8_or_not_a_file(reliability, folder):
    p = folder / "latin.toml"
    p.write_bytes(GOOD.encode() + b"# caf\xe9\n")
    check_failure(reliability, "check: spec not UTF-8", cli("check", p), "latin.toml",
                  "cannot read the spec")
    check_failure(reliability, "check: spec is a folder", cli("check", folder),
                  "spec file not found")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root reads files whatever their permissions")
def test_unreadable_data_file(reliability, folder):
    (folder / "d.csv").chmod(0)
    try:
        check_failure(reliability, "check: unreadable data file",
                      cli("check", write(folder, GOOD)), "d.csv")
    finally:
        (folder / "d.csv").chmod(0o644)


def test_run_refuses_before_touching_the_report(reliability, folder, tmp_path):
    path = write(folder, GOOD.replace('"d.csv"', '"pct.csv"'))
    reports = tmp_path / "reports"
    check_failure(reliability, "run: labels as percentages",
                  cli("run", path, "--reports-dir", reports), "divide by 100")
    assert not (reports / "s").exists()


FIT_CASES = {
    "unknown column": (["d.csv", "-f", "share ~ nope"], ["['nope']"]),
    "labels as percentages": (["pct.csv", "-f", "share ~ x"], ["'share'", "divide by 100"]),
    "labels as words": (["words.csv", "-f", "share ~ x"], ["'share'", "numeric"]),
    "prior that is not JSON": (
        ["d.csv", "-f", "share ~ x", "--prior", "x={bad"], ["--prior", "not JSON"]),
    "unknown likelihood": (["d.csv", "-f", "share ~ x", "-l", "gauss"], ["'gauss'"]),
    "missing data file": (["nope.csv", "-f", "share ~ x"], ["nope.csv", "not found"]),
    "data file of random bytes": (["garbage.csv", "-f", "share ~ x"], ["garbage.csv"]),
    "formula without a tilde": (["d.csv", "-f", "share + x"], ["one '~'"]),
}


@pytest.mark.parametrize("case", list(FIT_CASES))
def test_fit_refuses_hostile_input(reliability, folder, tmp_path, case):
    args, needles = FIT_CASES[case]
    out = tmp_path / "fit.nc"
    result = cli("fit", folder / args[0], *args[1:], "-o", out, "--draws", 5, "--tune", 5,
                 "--chains", 1)
    check_failure(reliability, f"fit: {case}", result, *needles)
    assert not out.exists()


def test_compare_and_report_refuse_files_that_are_not_fits(reliability, folder):
    check_failure(reliability, "compare: random bytes as a fit",
                  cli("compare", folder / "garbage.nc"), "garbage.nc",
                  "cannot be read as a softbayes fit")
    check_failure(reliability, "compare: a CSV as a fit", cli("compare", folder / "d.csv"),
                  "d.csv", "cannot be read as a softbayes fit")
    check_failure(reliability, "compare: missing fit", cli("compare", folder / "nope.nc"),
                  "nope.nc")
    check_failure(reliability, "report: missing folder", cli("report", folder / "nope"),
                  "nope")
    empty = folder / "empty_report"
    (empty / "fits").mkdir(parents=True)
    (empty / "fits" / "bad.nc").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    check_failure(reliability, "report: truncated fit file", cli("report", empty), "bad.nc")


def test_paths_in_messages_are_the_users(folder, monkeypatch):
    """The error names the spec as given on the command line (relative stays relative)."""
    path = write(folder, SPEC_CASES["unknown section"][0](GOOD))
    monkeypatch.chdir(folder.parent)
    result = cli("check", Path("models") / "s.toml")
    assert result.exit_code == 2
    assert "models/s.toml" in result.output and str(path.parent.parent) not in result.output
