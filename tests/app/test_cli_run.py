"""`softbayes run` end to end on a tiny spec: the report, the fit cache, atomic replacement,
escaping, the script-style commands, and the report in headless Chromium.

The models are compiled once (the first run); later runs reuse the cached fits.
"""

from __future__ import annotations

import base64
import html as html_lib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from softbayes.app.cli import app

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

WB = "wb <i>x</i> | *bold* _u_"
CB = "cb <script>alert(1)</script> # [link](http://x)"
XCOL = "x <b>&"
LABEL = "share|*_"

SPEC = f"""\
title = "Tiny <script>alert('t')</script> & *spec*"
description = "A <em>tiny</em> spec: 80 rows, two families."
seed = 7

[data]
path = "data/tiny.csv"
labels = "{LABEL}"

[sampler]
draws = 100
tune = 150
chains = 2
sampler = "pymc"
cores = 1

[compare]
kfold_fallback = "none"

[[models]]
name = "{WB}"
likelihood = "weighted_bernoulli"
formula = "~ `{XCOL}` + z"

[[models]]
name = "{CB}"
likelihood = "continuous_bernoulli"
formula = "~ `{XCOL}` + z"
"""

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}


def _cmd(*args):
    return [sys.executable, "-m", "softbayes", *map(str, args)]


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    (root / "models" / "data").mkdir(parents=True)
    rng = np.random.default_rng(3)
    n = 80
    x, z = rng.normal(size=n), rng.normal(size=n)
    mu = 1 / (1 + np.exp(-(-0.3 + 1.2 * x - 0.5 * z)))
    share = rng.beta(mu * 15, (1 - mu) * 15)
    share[:2] = [0.0, 1.0]
    pd.DataFrame({XCOL: x, "z": z, LABEL: share}).to_csv(
        root / "models" / "data" / "tiny.csv", index=False)
    (root / "models" / "tiny.toml").write_text(SPEC)
    t0 = time.perf_counter()
    proc = subprocess.run(_cmd("run", "models/tiny.toml"), cwd=root, env=ENV,
                          capture_output=True, text=True, timeout=600)
    return {"root": root, "proc": proc, "report": root / "reports" / "tiny",
            "seconds": time.perf_counter() - t0}


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.hrefs, self.imgs = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))


def test_run_writes_a_complete_report(project):
    proc, report = project["proc"], project["report"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stderr
    assert out.count("compiling and sampling") == 2 and "[2/2]" in out
    assert "done in" in out
    for name in ("index.html", "report.md", "run.json", "spec.toml"):
        assert (report / name).is_file(), name
    figs = sorted(p.name for p in (report / "figures").glob("*.png"))
    assert {"labels.png", "calibration.png", "marginal_effects.png"} <= set(figs)
    # per model: its family's posterior predictive check and its conditional effects
    assert sum(f.startswith("ppc_") for f in figs) == 2
    assert sum(f.startswith("conditional_effects_") for f in figs) == 2
    for p in (report / "figures").glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fits = sorted((report / "fits").glob("*.nc"))
    assert len(fits) == 2
    tables = {p.stem: pd.read_csv(p) for p in (report / "tables").glob("*.csv")}
    assert {"scores", "diagnostics", "coefficients", "marginal_effects", "data_summary",
            "priors", "elpd_density", "elpd_weighted_bernoulli"} <= set(tables)
    assert set(tables["scores"].iloc[:, 0]) == {WB, CB}
    assert len(tables["diagnostics"]) == 2

    html = (report / "index.html").read_text()
    parser = _Collect()
    parser.feed(html)
    parser.close()
    assert "script" not in parser.tags  # self-contained and script-free
    for href in parser.hrefs:
        if not href.startswith("#"):
            assert (report / href).is_file(), href
    assert len(parser.imgs) >= 4
    for src in parser.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
    try:
        from bs4 import BeautifulSoup
    except ImportError:  # pragma: no cover - beautifulsoup4 is in the test extra
        BeautifulSoup = None
    if BeautifulSoup is not None:
        soup = BeautifulSoup(html, "html.parser")
        sections = [h.get_text() for h in soup.find_all("h2")]
        assert sections == ["Conclusion", "Data", "Models", "Diagnostics",
                            "Coefficients and marginal effects", "Posterior intervals",
                            "ELPD by comparable group", "Common-scale scores",
                            "Calibration and posterior predictive checks",
                            "Rank plots and Pareto k per model"]
        text = soup.get_text(" ")
        assert "not comparable" in text and "Bernoulli information" in text
        assert "labels exactly 0" in text
    md = (report / "report.md").read_text()
    # alt texts hold model names, their brackets escaped (\[, \])
    for ref in re.findall(r"!\[(?:\\.|[^\]\\])*\]\(([^)]+)\)", md):
        assert (report / ref).is_file(), ref

    from softbayes import load_fit

    fit = load_fit(fits[0])
    assert fit.attrs["softbayes_n_obs"] == 80


def test_names_are_escaped(project):
    report = project["report"]
    html = (report / "index.html").read_text()
    for raw in ("<i>x</i>", "<script>alert", "<b>&", "<em>tiny"):
        assert raw not in html
    assert "wb &lt;i&gt;x&lt;/i&gt; | *bold* _u_" in html
    assert "x &lt;b&gt;&amp;" in html
    assert "cb &lt;script&gt;alert(1)&lt;/script&gt; # [link](http://x)" in html
    md = (report / "report.md").read_text()
    for raw in ("<i>", "<script>", "<b>", "[link](http"):
        assert raw not in md
    assert r"wb &lt;i&gt;x&lt;/i&gt; \| \*bold\* \_u\_" in md
    assert r"# \[link\](http://x)" in md
    # table rows keep their number of cells despite '|' in names
    rows = [line for line in md.splitlines() if line.startswith("| wb")]
    assert rows and all(line.replace(r"\|", "").count("|") == rows[0].replace(r"\|", "")
                        .count("|") for line in rows[:1])


def test_second_run_reuses_the_fits(project):
    root = project["root"]
    cache = sorted((root / "reports" / ".cache" / "fits").glob("*.nc"))
    assert len(cache) == 2
    mtimes = [p.stat().st_mtime_ns for p in cache]
    r = CliRunner().invoke(app, ["run", str(root / "models" / "tiny.toml")])
    assert r.exit_code == 0, r.output
    assert r.output.count("reused cached fit") == 2
    assert "compiling" not in r.output
    assert [p.stat().st_mtime_ns for p in cache] == mtimes


def test_killed_run_leaves_the_old_report_intact(project):
    root, report = project["root"], project["report"]
    before = snapshot(report)
    proc = subprocess.Popen(_cmd("run", "models/tiny.toml", "--force"), cwd=root, env=ENV,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        seen = b""
        deadline = time.time() + 300
        while b"[1/2]" not in seen and time.time() < deadline:
            chunk = os.read(proc.stderr.fileno(), 4096)  # what is there, no need for a newline
            if not chunk and proc.poll() is not None:
                break
            seen += chunk
        assert b"[1/2]" in seen, seen.decode(errors="replace")
        assert b"done in" not in seen.split(b"[1/2]")[1]  # killed while fitting model 1
        tmp = [p.name for p in (root / "reports").iterdir() if ".tiny.tmp-" in p.name]
        assert tmp, "the run builds its report in a temporary folder"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stderr.close()
    assert snapshot(report) == before
    # the killed run's temporary folder is cleaned up by the next run (next test)


def test_failed_run_leaves_the_old_report_intact(project, monkeypatch):
    import softbayes.app.runner as runner_mod

    root, report = project["root"], project["report"]
    before = snapshot(report)
    real = runner_mod.write_report

    def broken(rep, folder):
        (Path(folder) / "figures").mkdir(parents=True, exist_ok=True)
        (Path(folder) / "index.html").write_text("partial")
        raise RuntimeError("injected failure while writing the report")

    monkeypatch.setattr(runner_mod, "write_report", broken)
    r = CliRunner().invoke(app, ["run", str(root / "models" / "tiny.toml")])
    monkeypatch.setattr(runner_mod, "write_report", real)
    assert r.exit_code == 1, r.output
    assert "injected failure" in r.output and "Traceback" not in r.output
    assert snapshot(report) == before
    leftovers = [p.name for p in (root / "reports").iterdir() if p.name.startswith(".tiny.")]
    assert leftovers == [".tiny.lock"], leftovers


def test_busy_report_is_refused(project):
    from softbayes.app.files import report_lock

    root = project["root"]
    with report_lock(root / "reports", "tiny"):
        r = CliRunner().invoke(app, ["run", str(root / "models" / "tiny.toml")])
    assert r.exit_code == 2 and "another softbayes run" in r.output


def test_compare_and_report_commands(project, tmp_path):
    report = project["report"]
    fits = sorted((report / "fits").glob("*.nc"))
    out = tmp_path / "cmp"
    r = CliRunner().invoke(app, ["compare", *map(str, fits), "--name", "A", "--name", "B",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "Common scale" in r.output
    assert (out / "index.html").is_file() and len(list((out / "fits").glob("*.nc"))) == 2
    r = CliRunner().invoke(app, ["report", str(out)])  # re-render in place
    assert r.exit_code == 0, r.output
    html = (out / "index.html").read_text()
    assert ">A<" in html and ">B<" in html
    r = CliRunner().invoke(app, ["compare", str(tmp_path / "nope.nc")])
    assert r.exit_code == 2 and "not found" in r.output


def test_fit_command(project, tmp_path):
    root = project["root"]
    out = tmp_path / "one.nc"
    r = CliRunner().invoke(app, [
        "fit", str(root / "models" / "data" / "tiny.csv"), "--formula", f"`{LABEL}` ~ z",
        "--likelihood", "weighted_bernoulli", "--out", str(out), "--draws", "50", "--tune",
        "50", "--chains", "1", "--sampler", "pymc"])
    assert r.exit_code == 0, r.output
    from softbayes import load_fit

    assert load_fit(out).attrs["softbayes_family"] == "weighted_bernoulli"
    r = CliRunner().invoke(app, ["fit", str(root / "models" / "data" / "tiny.csv"),
                                 "--formula", "nope ~ z", "--out", str(tmp_path / "x.nc")])
    assert r.exit_code == 2 and "nope" in r.output and not (tmp_path / "x.nc").exists()


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


_MEASURE = """<script>window.addEventListener("load", () => {
  const root = document.documentElement;
  const out = {width: root.clientWidth, scroll: root.scrollWidth, imgs: []};
  for (const img of document.images) {
    const r = img.getBoundingClientRect();
    out.imgs.push({alt: img.alt, complete: img.complete, natural: img.naturalWidth,
                   shown: img.clientWidth, left: r.left, right: r.right});
  }
  const pre = document.createElement("pre");
  pre.id = "layout-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});</script>"""


def _layout(flags, report: Path, folder: Path) -> dict:
    """Every image's natural and displayed width in the rendered report: a copy of
    index.html whose policy allows one inline script, which measures after loading."""
    html = (report / "index.html").read_text(encoding="utf-8")
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>',
                  "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                  "img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">", html)
    page = folder / "measure.html"
    page.write_text(html.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    dom = subprocess.run([*flags, "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stderr[-2000:]
    return json.loads(html_lib.unescape(found.group(1)))


def test_report_renders_in_headless_chromium(project):
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium not installed (.ci/run installs Debian's chromium when root); "
                    "the browser check of the report is skipped.")
    report = project["report"]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    if shot.exists():
        shot.unlink()
    url = (report / "index.html").as_uri()
    with tempfile.TemporaryDirectory() as profile:
        flags = [browser, "--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                 "--enable-logging=stderr", "--v=0", "--window-size=1280,2000"]
        dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True,
                             timeout=120)
        subprocess.run([*flags, f"--screenshot={shot}", url], capture_output=True,
                       timeout=120)
        layout = _layout(flags, report, Path(profile))
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines()
               if ":CONSOLE" in line or "Refused to" in line or "Not allowed to load" in line]
    assert console == [], console
    assert "<h2>Conclusion</h2>" in dom.stdout and dom.stdout.count("<img") >= 4
    assert shot.is_file() and shot.stat().st_size > 10_000
    # every figure is shown whole at its natural size (its labels as drawn), inside the page
    imgs = layout["imgs"]
    assert len(imgs) == dom.stdout.count("<img") and layout["scroll"] <= layout["width"]
    for img in imgs:
        assert img["complete"] and img["natural"] > 0, img
        assert abs(img["shown"] - img["natural"]) <= 1, img
        assert 0 <= img["left"] and img["right"] <= layout["width"], img


def test_a_model_that_cannot_start_is_a_finding_not_a_crash(project):
    """A sampler that cannot start (impossible prior) is reported; the other models still run."""
    root = project["root"]
    bad = "beta <impossible prior>"
    spec = SPEC + f"""
[[models]]
name = "{bad}"
likelihood = "beta"
formula = "~ `{XCOL}` + z"
[models.options]
squeeze = true
[models.priors]
phi = {{ dist = "LogNormal", mu = 800, sigma = 1 }}
"""
    (root / "models" / "tiny_fail.toml").write_text(spec)
    r = CliRunner().invoke(app, ["run", str(root / "models" / "tiny_fail.toml")])
    assert r.exit_code == 0, r.output
    assert "FAILED" in r.output and "reused cached fit" in r.output
    report = root / "reports" / "tiny_fail"
    html = (report / "index.html").read_text()
    md = (report / "report.md").read_text()
    assert "Not fitted" in html and "beta &lt;impossible prior&gt;" in html
    assert "Not fitted" in md
    fits = sorted(p.name for p in (report / "fits").glob("*.nc"))
    assert len(fits) == 2  # the two models that could be fitted
