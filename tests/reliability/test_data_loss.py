"""Nothing is deleted that softbayes did not create.

Every scenario builds a small project in a temporary folder with sentinel files -- the user's
own files, another report, the fit cache, another run's temporary folder -- runs one command
that used to delete some of them, and checks that it exits with status 2, one ``error:``
paragraph naming the path, and that every sentinel is still there byte for byte (and nothing
new appeared). The positive tests show softbayes still replaces its own reports atomically.

Fits are Laplace approximations (no sampler to compile): the scenarios are about folders.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from spec_helpers import cli, one_error, spec_data

from softbayes import __version__
from softbayes.app.files import (
    REPORT_MARKER,
    ReportTargetError,
    check_report_target,
    clean_stale,
    is_report_folder,
    write_marker,
)
from softbayes.app.spec import SpecError, check_spec_name

SPEC = """\
title = "tiny"
seed = 3

[data]
path = "data/tiny.csv"
labels = "share"

[sampler]
draws = 200
chains = 2

[compare]
kfold_fallback = "none"

[[models]]
name = "wb"
likelihood = "weighted_bernoulli"
formula = "~ x"
"""

MARKER = json.dumps({"tool": "softbayes", "version": "0", "kind": "report"}).encode()


@pytest.fixture(scope="module")
def fit_bytes(tmp_path_factory) -> bytes:
    """A small, valid fit file (Laplace approximation: nothing is compiled)."""
    import softbayes as sb
    from softbayes.io.fits import save_fit

    df = spec_data(40).rename(columns={"share": "y"})
    fit = sb.Model("y ~ x", df).fit(method="laplace", draws=200, chains=2, random_seed=1)
    path = tmp_path_factory.mktemp("fit") / "wb.nc"
    save_fit(fit, path)
    return path.read_bytes()


def snapshot(root: Path) -> dict:
    """Every file under ``root`` (bytes) and every folder (None)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def project(tmp_path, monkeypatch, fit_bytes):
    """A project folder full of sentinels; the current folder is its root."""
    root = tmp_path / "project"
    home = tmp_path / "home"
    files = {
        "README.txt": b"the user's notes\n",
        "analysis.py": b"print('the user\\'s own script')\n",
        "notes/plan.txt": b"not a report\n",
        "models/tiny.toml": SPEC.encode(),
        "models/data/tiny.csv": spec_data(40).to_csv(index=False).encode(),
        # another report, with its fit, and the fit cache
        f"reports/other/{REPORT_MARKER}": MARKER,
        "reports/other/index.html": b"<p>another report</p>\n",
        "reports/other/fits/wb.nc": fit_bytes,
        "reports/.cache/fits/0123456789abcdef.nc": b"a cached fit\n",
        # a half-written report of a run of spec 'sX' that is still going
        f"reports/.sX.tmp-abcdefgh/{REPORT_MARKER}": MARKER,
        "reports/.sX.tmp-abcdefgh/index.html": b"half of sX's report\n",
        # a folder of fits that is not a report, with the user's files next to them
        "analysis/fits/wb.nc": fit_bytes,
        "analysis/data.csv": b"x,y\n1,0.5\n",
        "analysis/notes.md": b"# what I found\n",
        "fit.nc": fit_bytes,
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    home.mkdir()
    (home / ".bashrc").write_bytes(b"export KEEP=1\n")
    monkeypatch.chdir(root)
    return root


def refused(reliability, case, project, args, *needles):
    """Run the command: exit 2, one error paragraph with ``needles``, nothing changed."""
    top = project.parent  # the project and the home folder
    before = snapshot(top)
    error = one_error(cli(*args), *needles, case=case)
    after = snapshot(top)
    assert after == before, f"{case}: changed: {sorted(set(after) ^ set(before))}"
    n_files = sum(v is not None for v in before.values())
    reliability.add("data_loss", case)
    reliability.add("data_loss_sentinels", case, n_files)
    return error


# --------------------------------------------------------------------------- spec names


@pytest.mark.parametrize(("file", "needle"), [
    ("..toml", "'.'"),            # report target reports/.. = the reports folder itself
    ("...toml", "'..'"),          # reports/... -> the project folder
    ("s*.toml", "'*'"),           # glob: matched other specs' temporary folders
    ("s?.toml", "'?'"),
    ("[s].toml", "'['"),
    (".cache.toml", "starts with a dot"),  # would replace reports/.cache (the fit cache)
    ("a\x01b.toml", "control"),
    ("a\u202eb.toml", "control"),  # right-to-left override: hides the real name
    ("x" * 101 + ".toml", "101 characters"),
])
def test_run_refuses_unsafe_spec_names(reliability, project, file, needle):
    spec = project / "models" / file
    spec.write_bytes(SPEC.encode())
    refused(reliability, f"run: spec named {file[:20]!r}", project,
            ["run", spec], needle, file[:20], "Rename the file")
    # check refuses it the same way (it is the same spec)
    assert cli("check", spec).exit_code == 2


def test_check_spec_name_accepts_plain_names():
    for name in ("star98", "my analysis", "raters-v2", "a.b", "Ünïcode_ok", "x" * 100):
        assert check_spec_name(name, f"{name}.toml") == name
    with pytest.raises(SpecError, match=r"b\\.toml|b\.toml"):
        check_spec_name("a/b", "a/b.toml")


# --------------------------------------------------------------------------- compare --out


def test_compare_out_current_folder(reliability, project):
    refused(reliability, "compare --out .", project,
            ["compare", "fit.nc", "--out", "."], "--out .", "current folder")


def test_compare_out_folder_holding_the_current_folder(reliability, project):
    refused(reliability, "compare --out ..", project,
            ["compare", "fit.nc", "--out", ".."], "--out ..", "holds the current folder")


def test_compare_out_home(reliability, project, monkeypatch):
    home = project.parent / "home"
    monkeypatch.setenv("HOME", str(home))
    refused(reliability, "compare --out HOME", project,
            ["compare", "fit.nc", "--out", home], str(home), "home folder")


def test_compare_out_root(reliability, project):
    refused(reliability, "compare --out /", project,
            ["compare", "fit.nc", "--out", "/"], "--out /", "root of the file system")


def test_compare_out_users_folder(reliability, project):
    refused(reliability, "compare --out a non-empty folder without the marker", project,
            ["compare", "fit.nc", "--out", "notes"], "--out notes", REPORT_MARKER,
            "new folder")


def test_compare_out_a_file(reliability, project):
    refused(reliability, "compare --out a file", project,
            ["compare", "fit.nc", "--out", "README.txt"], "README.txt", "not a folder")


def test_compare_out_the_reports_folder(reliability, project):
    refused(reliability, "compare --out reports (holds other reports and the cache)", project,
            ["compare", "fit.nc", "--out", "reports"], "--out reports", REPORT_MARKER)


# --------------------------------------------------------------------------- report


def test_report_of_a_folder_with_fits_that_is_not_a_report(reliability, project):
    refused(reliability, "report DIR (has fits/, no marker)", project,
            ["report", "analysis"], "analysis", "not a report folder", "--out")


def test_report_out_into_the_same_folder(reliability, project):
    refused(reliability, "report DIR --out DIR", project,
            ["report", "analysis", "--out", "analysis"], "--out analysis", REPORT_MARKER)


def test_report_out_current_folder(reliability, project):
    refused(reliability, "report DIR --out .", project,
            ["report", "analysis", "--out", "."], "current folder")


def test_report_in_place_from_inside_the_report(reliability, project, monkeypatch):
    monkeypatch.chdir(project / "reports" / "other")
    refused(reliability, "report . inside a report", project, ["report", "."],
            "current folder")


def test_report_default_target_taken_by_a_users_folder(reliability, project):
    loose = project / "loose"
    loose.mkdir()
    (loose / "wb.nc").write_bytes((project / "fit.nc").read_bytes())
    (loose / "report").mkdir()
    (loose / "report" / "draft.txt").write_bytes(b"the user's draft\n")
    refused(reliability, "report DIR where DIR/report is the user's", project,
            ["report", "loose"], "loose/report", REPORT_MARKER)


# --------------------------------------------------------------------------- run targets


def test_run_refuses_a_users_folder_before_fitting(reliability, project):
    (project / "models" / "notes.toml").write_bytes(SPEC.encode())
    # refused before fitting: no fit cache appears (the snapshot is unchanged)
    refused(reliability, "run --reports-dir . onto a user's folder", project,
            ["run", "models/notes.toml", "--reports-dir", "."], "notes", REPORT_MARKER)


def test_compare_out_a_path_resolving_to_root(reliability, project):
    refused(reliability, "compare --out /x/.. (resolves to the root)", project,
            ["compare", "fit.nc", "--out", "/nonexistent-softbayes-x/.."], "root")


# --------------------------------------------------------------------------- temp folders


def test_stale_temporary_folders_are_matched_exactly(reliability, tmp_path):
    mine_stale = tmp_path / ".s*.tmp-abcdefgh"       # left by a killed run of report 's*'
    other_run = tmp_path / ".sX.tmp-abcdefgh"        # a running report 'sX' (glob s* hit it)
    users = tmp_path / ".s*.tmp-usermade"            # the right name, but no marker
    longer = tmp_path / ".s*.tmp-abcdefgh-keep"      # not a name mkdtemp makes
    for d in (mine_stale, other_run, users, longer):
        d.mkdir()
        (d / "index.html").write_bytes(b"x")
    for d in (mine_stale, other_run, longer):
        write_marker(d)
    clean_stale(tmp_path, "s*")
    assert not mine_stale.exists()
    kept = [other_run, users, longer]
    assert all((d / "index.html").read_bytes() == b"x" for d in kept)
    reliability.add("data_loss", "stale temporary folders matched exactly (glob in name)")
    reliability.add("data_loss_sentinels", "stale temporary folders matched exactly", 3)


def test_glob_spec_name_spares_another_runs_temporary_folder(reliability, project):
    (project / "models" / "s*.toml").write_bytes(SPEC.encode())
    refused(reliability, "run s*.toml next to another run's temporary folder", project,
            ["run", "models/s*.toml"], "'*'")
    assert (project / "reports" / ".sX.tmp-abcdefgh" / "index.html").is_file()


def test_lock_that_is_a_symlink_is_not_followed(reliability, project):
    (project / ".cmp.lock").symlink_to(project / "README.txt")
    refused(reliability, "report lock that is a symlink to a user's file", project,
            ["compare", "fit.nc", "--out", "cmp"], ".cmp.lock")


# --------------------------------------------------------------------------- the marker


def test_marker_rules(reliability, tmp_path):
    def folder(name, files):
        d = tmp_path / name
        for rel, data in files.items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_bytes(data)
        return d

    run_json = json.dumps({"softbayes_version": "0.1.0", "title": "t"}).encode()
    legacy = folder("legacy", {"index.html": b"h", "report.md": b"m", "run.json": run_json,
                               "figures/a.png": b"p", "tables/t.csv": b"c", "fits/f.nc": b"n"})
    legacy_plus = folder("legacy_plus", {"index.html": b"h", "run.json": run_json,
                                         "thesis.docx": b"the user's thesis"})
    legacy_odd = folder("legacy_odd", {"run.json": run_json, "figures/thesis.docx": b"t"})
    forged = folder("forged", {REPORT_MARKER: b"not json", "a.txt": b"a"})
    other_tool = folder("other_tool", {REPORT_MARKER: json.dumps({"tool": "x",
                                                                 "kind": "report"}).encode(),
                                       "a.txt": b"a"})
    linked = folder("linked", {"a.txt": b"a"})
    (linked / REPORT_MARKER).symlink_to(tmp_path / "legacy" / "run.json")
    huge = folder("huge", {REPORT_MARKER: b" " * 10_000 + MARKER, "a.txt": b"a"})
    marked = folder("marked", {"a.txt": b"a"})
    write_marker(marked)
    empty = tmp_path / "empty"
    empty.mkdir()

    assert is_report_folder(legacy) and is_report_folder(marked)
    assert check_report_target(legacy) == legacy.resolve()
    assert check_report_target(empty) == empty.resolve()
    assert check_report_target(tmp_path / "new") == (tmp_path / "new").resolve()
    for d in (legacy_plus, legacy_odd, forged, other_tool, linked, huge):
        assert not is_report_folder(d), d.name
        with pytest.raises(ReportTargetError, match=REPORT_MARKER):
            check_report_target(d)
        reliability.add("data_loss", f"marker: {d.name} refused")
    meta = json.loads((marked / REPORT_MARKER).read_text())
    assert meta == {"tool": "softbayes", "version": __version__, "kind": "report"}


# --------------------------------------------------------------------------- still works


def test_compare_and_report_write_and_rewrite_their_own_folder(reliability, project):
    # a file of the lock's name that softbayes did not write keeps its content
    (project / ".cmp.lock").write_bytes(b"someone else's file\n")
    before = snapshot(project.parent)
    r = cli("compare", "fit.nc", "--out", "cmp")
    assert r.exit_code == 0, r.output
    assert is_report_folder(project / "cmp")
    first = (project / "cmp" / "index.html").read_bytes()
    r = cli("report", "cmp")  # re-rendered in place: it carries the marker
    assert r.exit_code == 0, r.output
    assert (project / "cmp" / REPORT_MARKER).is_file()
    assert (project / "cmp" / "index.html").read_bytes() != b"" and first
    r = cli("report", "analysis", "--out", "analysis_report")  # the way out of the refusal
    assert r.exit_code == 0, r.output
    assert is_report_folder(project / "analysis_report")
    after = snapshot(project.parent)
    lost = [k for k, v in before.items() if after.get(k, b"<gone>") != v]
    assert not lost, lost
    reliability.add("data_loss", "compare --out NEW, report in place, report --out NEW")


def test_run_replaces_its_own_report_atomically(reliability, project, monkeypatch):
    """Two runs of a spec: a report of an older softbayes (no marker) and then the run's own
    report are replaced; stale temporary folders of this spec that carry the marker go, the
    rest stays."""
    import softbayes.model as model_mod

    real = model_mod.Model.fit

    def quick(self, *args, **kwargs):  # the run's plumbing is under test, not the sampler
        return real(self, draws=200, chains=2, random_seed=kwargs.get("random_seed"),
                    method="laplace")

    monkeypatch.setattr(model_mod.Model, "fit", quick)
    reports = project / "reports"
    old = reports / "tiny"
    old.mkdir()
    (old / "index.html").write_bytes(b"old report")
    (old / "run.json").write_text(json.dumps({"softbayes_version": "0.0.9"}))
    stale = reports / ".tiny.tmp-zzzzzzzz"
    stale.mkdir()
    write_marker(stale)
    users = reports / ".tiny.tmp-usermade"
    users.mkdir()
    (users / "keep.txt").write_bytes(b"mine")
    before = snapshot(project.parent)

    r = cli("run", "models/tiny.toml")
    assert r.exit_code == 0, r.output
    assert is_report_folder(old) and (old / REPORT_MARKER).is_file()
    assert (old / "index.html").read_bytes() != b"old report"
    assert not stale.exists()
    first_run = json.loads((old / "run.json").read_text())
    assert first_run["fitted"] == ["wb"]

    r = cli("run", "models/tiny.toml")
    assert r.exit_code == 0, r.output
    assert json.loads((old / "run.json").read_text())["reused"] == ["wb"]
    assert (old / REPORT_MARKER).is_file()

    after = snapshot(project.parent)
    replaced = ("project/reports/tiny", "project/reports/.tiny.tmp-zzzzzzzz")
    lost = [k for k, v in before.items()
            if after.get(k, b"<gone>") != v and not k.startswith(replaced)]
    assert not lost, lost
    assert (users / "keep.txt").read_bytes() == b"mine"
    leftovers = sorted(p.name for p in reports.iterdir() if p.name.startswith(".tiny."))
    assert leftovers == [".tiny.lock", ".tiny.tmp-usermade"], leftovers
    reliability.add("data_loss", "run replaces its own report (legacy, then marked)")
