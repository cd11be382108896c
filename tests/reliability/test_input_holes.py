"""Smaller holes in untrusted input: each is refused with one message naming the file, key,
column or term, a ``ValueError`` (``SpecError``) from Python and exit status 2 from the CLI.

* a regular-expression CSV separator (``sep = "(a+)+b"`` used to hang the reader);
* duplicate column names (pandas renamed them ``x.1`` through the CLI);
* prior keywords (``observed``, negative or non-finite scales, unknown names) checked at
  ``softbayes check`` instead of failing after sampling;
* a design-size guard that refuses an n x n design before building it;
* spreadsheet formula injection in the CSV tables of a report;
* OS-level path errors (NUL byte, over-long names, folders, permissions).

Nothing is fitted: every case fails (or passes) before sampling. Each case is counted in the
``reliability`` fixture (tests/conftest.py) under ``hostile_inputs``.
"""

from __future__ import annotations

import csv
import gzip
import inspect
import math
import os
import re
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from spec_helpers import cli, model_toml, one_error, spec_toml, write

import softbayes as sb
import softbayes.app.report as report_mod
import softbayes.app.report.render as render_mod
import softbayes.terms.design as design_mod
from softbayes.app.spec import SEPARATORS, SpecError, check_spec, load_spec, read_table
from softbayes.terms.priors import PRIOR_DISTRIBUTIONS, Prior, parse_prior

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "softbayes"
LONG = "a" * 300  # longer than NAME_MAX (255) on every common file system


def spec_text(path="d.csv", formula="~ x", data_extra="", model_extra=""):
    """The spec of the data at ``path`` with one model; each extra is a line (or empty)."""
    return spec_toml(model_toml(formula=f'"{formula}"', extra=model_extra + "\n"),
                     title="holes", path=path, data_extra=data_extra + "\n")


def refused(reliability, case, result, *needles):
    """Exit 2, one ``error:`` paragraph naming every needle, no traceback."""
    reliability.add("hostile_inputs", case)
    return one_error(result, *needles, case=case)


@pytest.fixture
def no_fit(monkeypatch):
    """Any attempt to sample fails the test: these cases must be refused before fitting."""

    def boom(*args, **kwargs):
        raise AssertionError("a hostile input reached Model.fit")

    monkeypatch.setattr(sb.Model, "fit", boom)


# --------------------------------------------------------------------------- separators

# ``(a+)+b`` against a line of a's without a b: the regex engine tries every split of the
# a's, 2**n steps (40 a's: hours).
EVIL_SEP = "(a+)+b"
EVIL_LINE = "a" * 40


def test_regex_separator_refused_at_spec_load(reliability, folder):
    (folder / "evil.csv").write_text(f"x,share\n{EVIL_LINE},0.5\n")
    p = write(folder, spec_text("evil.csv", data_extra=f'sep = "{EVIL_SEP}"'))
    refused(reliability, "sep: regex separator in a spec", cli("check", p),
            "s.toml", "data.sep", EVIL_SEP)
    with pytest.raises(SpecError, match=re.escape(EVIL_SEP)) as info:
        load_spec(p)
    assert info.value.key == "data.sep"


@pytest.mark.parametrize("sep", [";;", "a|b", r"\d", "", r"\s*", "x+", ",,"])
def test_other_multichar_separators_refused(reliability, folder, sep):
    p = write(folder, spec_text(data_extra=f"sep = '{sep}'"))  # a TOML literal string
    refused(reliability, f"sep: {sep!r}", cli("check", p), "s.toml", "data.sep")


def test_regex_separator_cannot_hang_the_python_reader(reliability, tmp_path):
    """The Python API refuses it too, and quickly; a subprocess so that a hang in C regex
    code (which no signal interrupts) fails the test instead of blocking it."""
    reliability.add("hostile_inputs", "sep: regex separator through read_table (timed)")
    f = tmp_path / "evil.csv"
    f.write_text(f"x,share\n{EVIL_LINE * 5}\n")
    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from softbayes.app.spec import read_table
        t0 = time.perf_counter()
        try:
            read_table(Path({str(f)!r}), sep={EVIL_SEP!r})
        except ValueError as err:
            print("REFUSED", time.perf_counter() - t0, err)
        else:
            print("READ", time.perf_counter() - t0)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    line = next((x for x in proc.stdout.splitlines() if x.startswith(("REFUSED", "READ"))), "")
    assert line.startswith("REFUSED"), proc.stdout + proc.stderr
    assert float(line.split()[1]) < 5.0, line
    assert "evil.csv" in line and EVIL_SEP in line


def test_allowed_separators_still_read(folder):
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "share": [0.2, 0.5, 0.7]})
    for sep in SEPARATORS:
        f = folder / "sep.csv"
        text = "\n".join((" " if sep == r"\s+" else sep).join(map(str, r))
                         for r in [df.columns, *df.itertuples(index=False)])
        f.write_text(text + "\n")
        got = read_table(f, sep=sep)
        pd.testing.assert_frame_equal(got, df, check_dtype=False)
    p = write(folder, spec_text(data_extra='sep = ";"'))
    (folder / "d.csv").write_text((folder / "d.csv").read_text().replace(",", ";"))
    assert load_spec(p).load_data().shape == (30, 2)


# --------------------------------------------------------------------------- duplicate columns


def _dup_frame():
    rng = np.random.default_rng(1)
    x = rng.normal(size=30)
    return x, 1 / (1 + np.exp(-x))


def _write_dup_csv(path, sep=","):
    x, share = _dup_frame()
    lines = [sep.join(["x", "z", "x", "share"])]
    lines += [sep.join(map(str, r)) for r in zip(x, x, 2 * x, share, strict=True)]
    text = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


def _write_dup_parquet(path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    x, share = _dup_frame()
    pq.write_table(pa.table([x, x, share], names=["x", "x", "share"]), path)


@pytest.mark.parametrize("name", ["dup.csv", "dup.csv.gz", "dup.tsv", "dup.parquet"])
def test_duplicate_columns_refused_on_every_route(reliability, folder, tmp_path, no_fit, name):
    f = folder / name
    if name.endswith(".parquet"):
        _write_dup_parquet(f)
    else:
        _write_dup_csv(f, "\t" if ".tsv" in name else ",")
    # spec route
    p = write(folder, spec_text(name))
    refused(reliability, f"duplicate columns: spec, {name}", cli("check", p),
            "s.toml", "data.path", name, "'x'")
    # softbayes fit DATA
    out = tmp_path / "fit.nc"
    refused(reliability, f"duplicate columns: fit, {name}",
            cli("fit", f, "-f", "share ~ x", "-o", out), name, "'x'")
    assert not out.exists()
    # Python API
    reliability.add("hostile_inputs", f"duplicate columns: read_table, {name}")
    with pytest.raises(ValueError, match=r"\['x'\].*more than once") as info:
        read_table(f)
    assert name in str(info.value)


def test_unnamed_columns_are_not_duplicates(folder):
    """Blank header cells (an index written by to_csv) are not names: still readable."""
    f = folder / "idx.csv"
    f.write_text(",,x,share\n0,0,1.0,0.5\n1,1,2.0,0.6\n")
    assert list(read_table(f).columns[2:]) == ["x", "share"]
    f.write_text("x,x.1,share\n1,2,0.5\n")  # distinct names that look mangled
    assert list(read_table(f).columns) == ["x", "x.1", "share"]


# --------------------------------------------------------------------------- priors

NAN, INF = float("nan"), float("inf")
BAD_PRIORS = {
    # case: (prior, key under models[1].priors that the message names, text in the message)
    "observed=5": ({"dist": "Normal", "mu": 0, "sigma": 1, "observed": 5}, "x.observed",
                   "no parameter 'observed'"),
    "sigma=-1": ({"dist": "Normal", "mu": 0, "sigma": -1}, "x.sigma", "must be > 0"),
    "sigma=0": ({"dist": "HalfNormal", "sigma": 0}, "x.sigma", "must be > 0"),
    "sigma=nan": ({"dist": "Normal", "mu": 0, "sigma": NAN}, "x.sigma", "finite"),
    "sigma=inf": ({"dist": "Normal", "mu": 0, "sigma": INF}, "x.sigma", "finite"),
    "mu=-inf": ({"dist": "Normal", "mu": -INF, "sigma": 1}, "x.mu", "finite"),
    "negative in a list": ({"dist": "Normal", "sigma": [1, -2]}, "x.sigma", "must be > 0"),
    "unknown keyword": ({"dist": "Normal", "sigmaa": 1}, "x.sigmaa", "no parameter"),
    "shape keyword": ({"dist": "Normal", "sigma": 1, "shape": 3}, "x.shape", "no parameter"),
    "dims keyword": ({"dist": "Normal", "sigma": 1, "dims": 3}, "x.dims", "no parameter"),
    "initval keyword": ({"dist": "Normal", "sigma": 1, "initval": 0}, "x.initval",
                        "no parameter"),
    "transform keyword": ({"dist": "HalfNormal", "sigma": 1, "transform": 1}, "x.transform",
                          "no parameter"),
    "unknown dist": ({"dist": "Gaussian", "sigma": 1}, "x.dist", "'Gaussian'"),
    "__import__ as dist": ({"dist": "__import__"}, "x.dist", "'__import__'"),
    "pymc non-distribution": ({"dist": "Model"}, "x.dist", "'Model'"),
    "dotted dist": ({"dist": "math.exp"}, "x.dist", "'math.exp'"),
    "discrete dist": ({"dist": "Poisson", "mu": 1}, "x.dist", "'Poisson'"),
    "StudentT without nu": ({"dist": "StudentT", "mu": 0, "sigma": 1}, "x.nu", "'nu'"),
    "StudentT nu=0": ({"dist": "StudentT", "nu": 0, "sigma": 1}, "x.nu", "must be > 0"),
    "Gamma negative beta": ({"dist": "Gamma", "alpha": 2, "beta": -0.1}, "x.beta",
                            "must be > 0"),
    "Uniform lower > upper": ({"dist": "Uniform", "lower": 1, "upper": 0}, "x.lower",
                              "below 'upper'"),
}


def toml_value(v) -> str:
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, list):
        return "[" + ", ".join(map(toml_value, v)) + "]"
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(v)


@pytest.mark.parametrize("case", list(BAD_PRIORS))
def test_bad_prior_refused_at_check(reliability, folder, case):
    prior, key, text = BAD_PRIORS[case]
    inline = "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in prior.items()) + " }"
    p = write(folder, spec_text(model_extra=f"[models.priors]\nx = {inline}\n"))
    refused(reliability, f"prior: {case}", cli("check", p),
            "s.toml", f"models[1].priors.{key}", "model 'wb'", text)


@pytest.mark.parametrize("case", list(BAD_PRIORS))
def test_bad_prior_refused_by_the_python_api(reliability, case):
    prior, _, text = BAD_PRIORS[case]
    reliability.add("hostile_inputs", f"prior (Python): {case}")
    df = pd.DataFrame({"p": np.linspace(0.1, 0.9, 20), "x": np.arange(20.0)})
    with pytest.raises(ValueError, match=re.escape(text)) as info:
        sb.Model("p ~ x", df, priors={"x": prior})
    assert "Prior for 'x'" in str(info.value)


def test_prior_names_are_never_looked_up_on_pymc(monkeypatch):
    """Only allow-listed names reach ``getattr(pm, ...)``: a name from a file is checked
    against the table first, never resolved on the module."""
    import softbayes.terms.priors as priors_mod

    class Spy:
        def __init__(self):
            self.names = []

        def __getattr__(self, name):
            self.names.append(name)
            return getattr(pm, name)

    spy = Spy()
    monkeypatch.setattr(priors_mod, "pm", spy)
    hostile = ["__import__", "__class__", "Model", "sample", "os", "Potential", "Flat",
               "math.exp", "Normal.dist"]
    for name in hostile:
        with pytest.raises(ValueError, match="Unknown prior distribution"):
            Prior(name, {})
    assert not set(spy.names) & set(hostile), spy.names


def test_prior_table_matches_pymc_signatures():
    """Every allow-listed distribution exists in PyMC with exactly these parameters."""
    for dist, params in PRIOR_DISTRIBUTIONS.items():
        cls = getattr(pm, dist)
        assert issubclass(cls, pm.Distribution), dist
        sig = inspect.signature(cls.dist).parameters.values()
        named = [p.name for p in sig if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        assert named == list(params), (dist, named, list(params))
        assert set(params.values()) <= {"real", "positive"}


def test_legitimate_priors_still_pass(folder):
    """Priors of the shipped specs, the README's examples and the API's defaults."""
    for spec_path in sorted((ROOT / "models").glob("*.toml")):
        load_spec(spec_path)
    ok = {
        "x": {"dist": "Normal", "mu": 0, "sigma": 1},
        "1|g": {"dist": "HalfStudentT", "nu": 3, "sigma": 1},
        "phi": {"dist": "Gamma", "alpha": 2, "beta": 0.1},
        "z": {"dist": "StudentT", "nu": 4, "mu": 0, "sigma": [1, 2]},
        "w": {"dist": "Uniform", "lower": -1, "upper": 1},
        "v": {"dist": "Laplace", "mu": 0, "b": 1},
        "u": {"dist": "LogNormal", "mu": 3, "sigma": 1.5},
        "t": {"dist": "Exponential", "lam": 1},
        "s": {"dist": "Normal", "mu": np.float32(0), "sigma": np.array([1.0, 2.0])},
    }
    for key, spec in ok.items():
        assert parse_prior(key, spec).dist == spec["dist"]
    p = write(folder, spec_text(model_extra='[models.priors]\nx = { dist = "Normal", mu = 0, '
                                            "sigma = 1 }\n"))
    _, built = check_spec(load_spec(p))
    assert built["wb"][1].priors_dict()["x"] == {"dist": "Normal", "mu": 0.0, "sigma": 1.0}


# --------------------------------------------------------------------------- design size


def _refused_model(formula, df):
    """The ValueError message refusing ``sb.Model(formula, df)`` and the peak MB it took."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as info:
            sb.Model(formula, df)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return str(info.value), peak / 1e6


def test_identifier_factor_refused_before_the_design_is_built(reliability):
    reliability.add("hostile_inputs", "design: C(id) on 10,000 integer ids")
    n = 10_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"p": rng.uniform(0.1, 0.9, n), "x": rng.normal(size=n),
                       "id": np.arange(n)})
    msg, peak = _refused_model("p ~ x + C(id)", df)
    assert peak < 100, f"refusing C(id) took {peak:.0f} MB"
    for needle in ["'C(id)'", "10,000 levels", "MAX_DESIGN_CELLS", "cells", "MB"]:
        assert needle in msg, (needle, msg)


def test_many_level_text_column_refused(reliability):
    """10,000 levels in 20,000 rows passes the 'more levels than half the rows' check of
    check_predictor_types but used to be accepted at a 7.4 GB peak."""
    reliability.add("hostile_inputs", "design: 10,000-level text column in 20,000 rows")
    n = 20_000
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"p": rng.uniform(0.1, 0.9, n), "x": rng.normal(size=n),
                       "t": [f"level{i}" for i in rng.permutation(n) % 10_000]})
    msg, peak = _refused_model("p ~ x + t", df)
    assert peak < 100, f"refusing took {peak:.0f} MB"
    assert "term 't'" in msg and "10,000 levels" in msg, msg


def test_group_terms_with_hundreds_of_groups_still_build():
    n = 5_000
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"p": rng.uniform(0.1, 0.9, n), "x": rng.normal(size=n),
                       "g": [f"g{i}" for i in rng.integers(0, 400, n)],
                       "h": rng.choice(["a", "b", "c"], n)})
    m = sb.Model("p ~ x + h + poly(x, 2) + (1|g) + (x|g)", df)
    assert m.n_obs == n


def test_guard_counts_group_indicators(reliability, monkeypatch):
    reliability.add("hostile_inputs", "design: group-level factor over the limit")
    n = 2_000
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"p": rng.uniform(0.1, 0.9, n), "x": rng.normal(size=n),
                       "g": np.arange(n) % 500})
    monkeypatch.setattr(design_mod, "MAX_DESIGN_CELLS", 500_000)
    with pytest.raises(ValueError, match=r"group-level term '1\|g'.*500 levels"):
        sb.Model("p ~ x + (1|g)", df)
    monkeypatch.setattr(design_mod, "MAX_DESIGN_CELLS", 2_000_000)
    sb.Model("p ~ x + (1|g)", df)  # the limit is read when the design is built


def test_design_guard_through_check(reliability, folder):
    n = 8_000
    rng = np.random.default_rng(4)
    x = rng.normal(size=n)
    pd.DataFrame({"x": x, "share": 1 / (1 + np.exp(-x)), "id": np.arange(n)}).to_csv(
        folder / "big.csv", index=False)
    p = write(folder, spec_text("big.csv", formula="~ x + C(id)"))
    refused(reliability, "design: C(id) through softbayes check", cli("check", p),
            "s.toml", "models[1].formula", "'C(id)'", "8,000 levels")


# --------------------------------------------------------------------------- CSV injection


def owasp_dangerous(text: str) -> bool:
    """OWASP's rule, written here independently of softbayes: a cell starting with = + - @,
    tab or carriage return is read as a formula, unless it is a plain number."""
    if not text or text[0] not in "=+-@\t\r":
        return False
    try:
        float(text)
    except ValueError:
        return True
    return not re.fullmatch(r"[+-]?[0-9.eE+-]+", text)


HOSTILE_TEXT = ["=HYPERLINK(\"http://x\")", "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
                "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", "=1", "-x", "plain", "",
                "a=b", " =not at start"]


def test_report_tables_escape_formula_text(reliability, tmp_path, monkeypatch):
    reliability.add("hostile_inputs", "CSV injection in report tables", len(HOSTILE_TEXT))
    n = len(HOSTILE_TEXT)
    frame = pd.DataFrame({
        "term": HOSTILE_TEXT,
        "estimate": np.linspace(-1.5, 2.5, n),
        "count": np.arange(-3, n - 3),
        "as_text": ["-1.5", "+2", "3e-4", "-.5"] * (n // 4),
        "=name": ["ok"] * n,
    }).set_index("term")
    table = report_mod.Table.from_frame("hostile", "Hostile", frame)

    class FakeReport:
        def all_figures(self):
            return []

        def all_tables(self):
            return [table]

    monkeypatch.setattr(render_mod, "render_markdown", lambda r: "")
    monkeypatch.setattr(render_mod, "render_html", lambda r: "")
    render_mod.write_report(FakeReport(), tmp_path)
    with open(tmp_path / "tables" / "hostile.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    expected_header = ["term", "estimate", "count", "as_text", "=name"]
    for got, want in zip(header, expected_header, strict=True):
        assert got == ("'" + want if owasp_dangerous(want) else want), (got, want)
    assert len(body) == n
    for row, text in zip(body, HOSTILE_TEXT, strict=True):
        cell = row[0]
        if owasp_dangerous(text):
            assert cell == "'" + text, (cell, text)
        else:
            assert cell == text, (cell, text)
        assert not owasp_dangerous(cell), cell
    # numbers are unchanged: they read back as the same numbers
    back = pd.read_csv(tmp_path / "tables" / "hostile.csv")
    np.testing.assert_allclose(back["estimate"], frame["estimate"].to_numpy())
    np.testing.assert_array_equal(back["count"], frame["count"].to_numpy())
    assert [r[3] for r in body] == list(frame["as_text"])  # numbers written as text too


def test_every_csv_writer_escapes():
    """Every ``to_csv`` in the package goes through ``csv_safe`` (one helper for all)."""
    offenders = []
    for f in PACKAGE.rglob("*.py"):
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if (".to_csv(" in line or "csv.writer(" in line) and "csv_safe(" not in line:
                offenders.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, offenders


# --------------------------------------------------------------------------- OS path errors


def test_nul_byte_in_a_data_path(reliability, folder):
    p = write(folder, spec_text("d\\u0000.csv"))
    msg = refused(reliability, "path: NUL byte in [data] path", cli("check", p),
                  "s.toml", "data.path", "NUL")
    assert "d\\x00.csv" in msg
    with pytest.raises(SpecError, match="NUL"):
        load_spec(p).load_data()


def test_nul_byte_in_python_paths(reliability, tmp_path):
    reliability.add("hostile_inputs", "path: NUL byte through load_spec / read_table")
    with pytest.raises(SpecError, match=r"s\\x00\.toml.*NUL"):
        load_spec(tmp_path / "s\0.toml")
    with pytest.raises(ValueError, match=r"d\\x00\.csv.*NUL"):
        read_table(tmp_path / "d\0.csv")


def test_overlong_names(reliability, folder, tmp_path, no_fit):
    refused(reliability, "path: 300-character spec name",
            cli("check", folder / f"{LONG}.toml"), LONG, "too long")
    refused(reliability, "path: 300-character bare spec name", cli("check", LONG), LONG,
            "too long")
    p = write(folder, spec_text(f"{LONG}.csv"))
    refused(reliability, "path: 300-character data path in a spec", cli("check", p),
            "s.toml", "data.path", "too long")
    refused(reliability, "path: 300-character data file for fit",
            cli("fit", folder / f"{LONG}.csv", "-f", "share ~ x", "-o", tmp_path / "f.nc"),
            LONG, "too long")
    refused(reliability, "path: 300-character --out for fit",
            cli("fit", folder / "d.csv", "-f", "share ~ x", "-o", tmp_path / f"{LONG}.nc"),
            "--out", LONG, "too long")
    refused(reliability, "path: 300-character fit for compare",
            cli("compare", tmp_path / f"{LONG}.nc"), LONG)
    refused(reliability, "path: 300-character folder for report",
            cli("report", tmp_path / LONG), LONG)


def test_folders_where_files_belong(reliability, folder, tmp_path, no_fit):
    (folder / "sub.csv").mkdir()
    p = write(folder, spec_text("sub.csv"))
    refused(reliability, "path: [data] path is a folder", cli("check", p),
            "s.toml", "data.path", "folder")
    refused(reliability, "path: fit DATA is a folder",
            cli("fit", folder / "sub.csv", "-f", "share ~ x", "-o", tmp_path / "f.nc"),
            "sub.csv", "folder")
    refused(reliability, "path: fit --out is a folder",
            cli("fit", folder / "d.csv", "-f", "share ~ x", "-o", tmp_path),
            "--out", "folder")
    refused(reliability, "path: fit --out under a file",
            cli("fit", folder / "d.csv", "-f", "share ~ x", "-o", folder / "d.csv" / "f.nc"),
            "--out", "d.csv")
    refused(reliability, "path: spec under a file", cli("check", folder / "d.csv" / "s.toml"),
            "d.csv")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads and writes files whatever their permissions")
def test_permission_errors(reliability, folder, tmp_path, no_fit):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "d.csv").write_text("x,share\n1,0.5\n")
    locked.chmod(0)
    try:
        refused(reliability, "path: fit DATA in an unreadable folder",
                cli("fit", locked / "d.csv", "-f", "share ~ x", "-o", tmp_path / "f.nc"),
                "d.csv")
        refused(reliability, "path: fit --out in an unwritable folder",
                cli("fit", folder / "d.csv", "-f", "share ~ x", "-o", locked / "f.nc"),
                "--out", "locked")
    finally:
        locked.chmod(0o700)


def test_other_os_errors_still_exit_1(monkeypatch, folder):
    """Only path errors are bad input; a full disk is not the user's spec's fault."""
    import errno

    import softbayes.app.spec as spec_mod

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "somewhere")

    monkeypatch.setattr(spec_mod, "check_spec", full)
    r = cli("check", write(folder, spec_text()))
    assert r.exit_code == 1, r.output
