"""The report's posterior sections against independent computations on the saved fits.

One spec (a weighted Bernoulli with a ``(1|site)`` term and a Continuous Bernoulli) runs once
per module through the command line; the tests read its report (HTML, Markdown, CSV tables,
PNG figures) and recompute what it shows from the fits: posterior means, sds and HDIs with
ArviZ on the raw posterior variables, the group-level sd and effects from their draws, the
Pareto k of every observation with ``az.loo``. The dispersion finding is checked on the run
(the soft labels are far less noisy than coin flips) and on hand-made fits; the layout
checks look at every saved PNG (a margin of background on each side) and at the figures
themselves (matplotlib's tight bounding box inside the figure, no overlapping titles).
"""

from __future__ import annotations

import re
import warnings

import arviz as az
import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.figure import Figure
from spec_helpers import cli

import softbayes as sb
from softbayes.analysis.figures_posterior import (
    group_draws,
    plot_group_effects,
    plot_pareto_k,
    plot_posterior_forest,
    plot_rank_draws,
    population_draws,
)
from softbayes.app.report.layout import fit_figure, layout_problems
from softbayes.app.report.text import dispersion_findings
from softbayes.io.attrs import FitAttrs

matplotlib.use("Agg")

SPEC = """\
title = "Group-level report"
seed = 11

[data]
path = "d.csv"
labels = "share"

[sampler]
draws = 100
tune = 150
chains = 2
sampler = "pymc"
cores = 1

[compare]
kfold_fallback = "none"

[[models]]
name = "wb"
likelihood = "weighted_bernoulli"
formula = "~ x + z + (1|site)"

[[models]]
name = "cb"
likelihood = "continuous_bernoulli"
formula = "~ x + z"
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The report of :data:`SPEC` and its fits (one run per module)."""
    root = tmp_path_factory.mktemp("groups")
    models = root / "models"
    models.mkdir()
    rng = np.random.default_rng(5)
    n, n_sites = 120, 6
    site = rng.integers(0, n_sites, size=n)
    u = rng.normal(0.0, 0.8, size=n_sites)
    x, z = rng.normal(size=n), rng.normal(size=n)
    mu = 1 / (1 + np.exp(-(-0.3 + 1.2 * x - 0.5 * z + u[site])))
    share = rng.beta(mu * 15, (1 - mu) * 15)
    pd.DataFrame({"x": x, "z": z, "site": [f"s{i}" for i in site], "share": share}).to_csv(
        models / "d.csv", index=False)
    (models / "groups.toml").write_text(SPEC)
    result = cli("run", models / "groups.toml", "--reports-dir", root / "reports")
    assert result.exit_code == 0, result.output
    report = root / "reports" / "groups"
    fits = {name: sb.load_fit(report / "fits" / f"{name}.nc") for name in ("wb", "cb")}
    return {"report": report, "fits": fits,
            "html": (report / "index.html").read_text(encoding="utf-8"),
            "md": (report / "report.md").read_text(encoding="utf-8")}


def _csv(run, name) -> pd.DataFrame:
    return pd.read_csv(run["report"] / "tables" / f"{name}.csv")


def _draws(fit, var) -> np.ndarray:
    return np.asarray(fit["posterior"][var].values, dtype=float)


def _section(html, ident) -> str:
    start = html.index(f'<section id="{ident}">')
    return html[start:html.index("</section>", start)]


# --------------------------------------------------------------------------- intervals
def test_posterior_interval_table_matches_arviz(run):
    table = _csv(run, "posterior_intervals")
    for model, fit in run["fits"].items():
        rows = table[table["model"] == model].set_index("term")
        names = ["Intercept", "x", "z"] + (["1|site_sigma"] if model == "wb" else [])
        assert sorted(rows.index) == sorted(names), rows.index
        hdi = az.hdi(fit, var_names=names, prob=0.94)
        for var in names:
            v = _draws(fit, var).ravel()
            row = rows.loc[var]
            np.testing.assert_allclose(row["mean"], v.mean(), rtol=1e-9)
            np.testing.assert_allclose(row["sd"], v.std(ddof=1), rtol=1e-9)
            np.testing.assert_allclose([row["hdi_lower"], row["hdi_upper"]],
                                       np.asarray(hdi[var].values, dtype=float), rtol=1e-9)
            # a 94% interval of 200 draws holds 189 of them
            inside = ((v >= row["hdi_lower"]) & (v <= row["hdi_upper"])).sum()
            assert inside == int(np.floor(0.94 * v.size)) + 1
    sec = _section(run["html"], "posterior")
    assert "94% HDI lower" in sec and 'alt="Posterior intervals"' in sec
    assert "## Posterior intervals" in run["md"]


def test_forest_plot_draws_the_intervals(run):
    fits = run["fits"]
    fig = plot_posterior_forest({n: population_draws(f) for n, f in fits.items()})
    assert fit_figure(fig) == [] and layout_problems(fig) == []
    # every interval (two per parameter and model) is a horizontal line from an HDI bound
    # to the other: the 94% ones are the widest
    segs = sorted(
        (tuple(np.round(line.get_xdata(), 9)) for ax in fig.axes for line in ax.get_lines()
         if len(line.get_xdata()) == 2 and line.get_xdata()[0] != line.get_xdata()[1]),
        key=lambda s: s[1] - s[0])
    want = []
    for f in fits.values():
        for da in population_draws(f).data_vars.values():
            h = np.asarray(az.hdi(da.values.reshape(-1), prob=0.94), dtype=float)
            want.append(tuple(np.round(h, 9)))
    assert set(want) <= set(segs)


# --------------------------------------------------------------------------- group level
def test_group_level_tables_match_the_draws(run):
    fit = run["fits"]["wb"]
    sd = _csv(run, "group_sd")
    assert list(sd["model"]) == ["wb"] and list(sd["term"]) == ["1|site_sigma"]
    s = _draws(fit, "1|site_sigma").ravel()
    np.testing.assert_allclose(sd["mean"].iloc[0], s.mean(), rtol=1e-9)
    np.testing.assert_allclose(sd["sd"].iloc[0], s.std(ddof=1), rtol=1e-9)
    eff = _csv(run, "group_effects").set_index("level")
    post = fit["posterior"]["1|site"]
    level_dim = next(d for d in post.dims if d not in ("chain", "draw"))
    hdi = az.hdi(fit, var_names=["1|site"], prob=0.94)["1|site"]
    assert sorted(eff.index) == sorted(map(str, post[level_dim].values))
    for level in post[level_dim].values:
        v = np.asarray(post.sel({level_dim: level}).values, dtype=float).ravel()
        row = eff.loc[str(level)]
        assert row["model"] == "wb" and row["group_term"] == "1|site"
        np.testing.assert_allclose(row["mean"], v.mean(), rtol=1e-9)
        np.testing.assert_allclose(row["sd"], v.std(ddof=1), rtol=1e-9)
        np.testing.assert_allclose(
            [row["hdi_lower"], row["hdi_upper"]],
            np.asarray(hdi.sel({level_dim: level}).values, dtype=float), rtol=1e-9)
    # the group-level effect of a level is its sd times its standard-normal offset
    offset = np.asarray(fit["posterior"]["1|site_offset"].values, dtype=float)
    np.testing.assert_allclose(np.asarray(post.values), offset * _draws(fit, "1|site_sigma")[
        ..., None], rtol=1e-6, atol=1e-12)
    sec = _section(run["html"], "groups")
    assert "Group-level standard deviations" in sec and "Group-level effects 1|site, wb" in sec
    assert "## Group-level effects" in run["md"]


def test_a_model_without_group_terms_has_none(run):
    assert "cb" not in set(_csv(run, "group_sd")["model"])
    assert "cb" not in set(_csv(run, "group_effects")["model"])


# --------------------------------------------------------------------------- rank, Pareto k
def test_rank_and_pareto_k_figures_per_model(run):
    figs = {p.name for p in (run["report"] / "figures").glob("*.png")}
    for i, model in enumerate(("wb", "cb")):
        assert {f"rank_{i + 1}_{model}.png", f"pareto_k_{i + 1}_{model}.png"} <= figs
    sec = _section(run["html"], "convergence")
    assert sec.count("<img") == 4 and "Rank plots, wb" in sec and "Pareto k, cb" in sec


def test_pareto_k_plot_shows_the_loo_k(run):
    diag = _csv(run, "diagnostics").set_index("fit")
    for model, fit in run["fits"].items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # high k of short chains: what the plot shows
            loo = az.loo(fit, pointwise=True)
        k = np.asarray(loo.pareto_k.values, dtype=float)
        np.testing.assert_allclose(diag.loc[model, "pareto_k_max"], k.max(), rtol=1e-9)
        s = fit["posterior"].sizes["chain"] * fit["posterior"].sizes["draw"]
        thr = min(1 - 1 / np.log10(s), 0.7)
        fig = plot_pareto_k(loo, thr, title=model)
        ax = fig.axes[0]
        pts = np.vstack([c.get_offsets() for c in ax.collections if len(c.get_offsets())])
        np.testing.assert_allclose(np.sort(pts[:, 1]), np.sort(k), rtol=1e-12)
        levels = {round(float(line.get_ydata()[0]), 12) for line in ax.get_lines()
                  if len(set(np.asarray(line.get_ydata(), dtype=float))) == 1}
        assert {round(thr, 12), 1.0} <= levels
        assert fit_figure(fig) == []


# --------------------------------------------------------------------------- dispersion
def test_the_run_reports_the_dispersion_per_model(run):
    diag = _csv(run, "diagnostics").set_index("fit")
    sec = _section(run["html"], "diagnostics")
    assert "Findings: dispersion of the labels" in sec
    outside = 0
    for model, fit in run["fits"].items():
        phi = FitAttrs.from_fit(fit, warn_unknown=False).dispersion
        np.testing.assert_allclose(diag.loc[model, "dispersion"], phi, rtol=1e-12)
        if not 0.5 <= phi <= 2:
            wide = f"about {np.sqrt(1 / phi):.2g}x too wide"
            line = next(li for li in re.findall(r"<li>(.*?)</li>", sec, re.S)
                        if li.startswith(f"{model}: Dispersion"))
            assert wide in line and 'calibrate = &#34;dispersion&#34;' in line
            assert f"- {model}: Dispersion" in run["md"]
            outside += 1
    assert outside >= 1  # soft labels of a Beta(15 mu, 15 (1 - mu)) vary far less than 0/1


def _fit(**attrs):
    tree = xr.DataTree()
    tree.attrs = FitAttrs(**attrs).to_attrs()
    return tree


@pytest.mark.parametrize("phi, words", [
    (0.17, "about 2.4x too wide"),
    (0.3, "about 1.8x too wide"),
    (3.0, "about 1.7x too narrow"),
    (9.0, "about 3x too narrow"),
])
def test_dispersion_outside_the_range_is_a_finding(phi, words):
    assert f"{np.sqrt(phi if phi > 1 else 1 / phi):.2g}x" in words  # the reference factor
    out = dispersion_findings({"m": _fit(family="weighted_bernoulli", dispersion=phi)}, ["m"])
    assert len(out) == 1 and out[0].startswith("m: Dispersion") and words in out[0]
    assert 'calibrate = "dispersion"' in out[0] and 'Model.fit(calibrate="dispersion")' in out[0]


@pytest.mark.parametrize("phi", [0.5, 1.0, 2.0])
def test_dispersion_inside_the_range_is_no_finding(phi):
    assert dispersion_findings({"m": _fit(family="beta", dispersion=phi)}, ["m"]) == []


def test_a_calibrated_fit_says_so_and_a_fit_without_dispersion_says_nothing():
    fits = {"c": _fit(family="weighted_bernoulli", dispersion=0.1, calibration="dispersion"),
            "n": _fit(family="beta")}
    out = dispersion_findings(fits, ["c", "n"])
    assert out == ["c: dispersion phi = 0.1; the fit is calibrated (calibrate='dispersion'), "
                   "its intervals account for it."]


# --------------------------------------------------------------------------- layout
def _border_is_background(png, margin=2) -> bool:
    img = matplotlib.image.imread(png)[..., :3]
    bg = img[0, 0]
    frame = np.concatenate([img[:margin].reshape(-1, 3), img[-margin:].reshape(-1, 3),
                            img[:, :margin].reshape(-1, 3), img[:, -margin:].reshape(-1, 3)])
    return bool(np.all(np.abs(frame - bg) < 1e-6))


def test_every_saved_figure_has_a_margin(run):
    pngs = sorted((run["report"] / "figures").glob("*.png"))
    assert len(pngs) >= 10
    touching = [p.name for p in pngs if not _border_is_background(p)]
    assert touching == []


def test_the_border_check_sees_ink_at_the_edge(tmp_path):
    fig = Figure(figsize=(3, 2))
    fig.add_axes((0, 0, 1, 1)).plot([0, 1], [0, 1], lw=4)
    fig.savefig(tmp_path / "edge.png", dpi=96)
    assert not _border_is_background(tmp_path / "edge.png")


def test_report_figures_fit_inside_their_box(run):
    fits = run["fits"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the short chains' diagnostics
        cmp = sb.compare(fits, kfold_fallback=None)
    draws = {n: population_draws(f) for n, f in fits.items()}
    sd, eff = group_draws(fits["wb"], "1|site")
    figs = {
        "forest": plot_posterior_forest(draws, title="Posterior intervals (link scale)"),
        "group": plot_group_effects(sd, eff, title="wb: 1|site"),
        "rank": plot_rank_draws(draws["wb"], title="Rank plots: wb"),
        "calibration": cmp.plot_calibration(),
        **{f"elpd {g}": f for g, f in cmp.plot_elpd().items()},
    }
    for name, fig in figs.items():
        assert fit_figure(fig) == [], name
        assert layout_problems(fig) == [], name
        assert fig.get_size_inches()[0] <= 11.5 + 1e-9, name


def test_long_titles_are_wrapped_until_they_fit():
    fig = Figure(figsize=(6, 3), layout="constrained")
    for ax in fig.subplots(1, 2):
        ax.set_title("a model with a long name (continuous_bernoulli, ECE 0.123)")
        ax.set_ylabel("mean soft label")
    fig.suptitle("a figure title that is much longer than the figure is wide " * 2)
    assert layout_problems(fig) != []  # overlapping titles, cut at the edges
    assert fit_figure(fig) == []
    assert layout_problems(fig) == []
    assert all("\n" in ax.get_title() for ax in fig.axes)
