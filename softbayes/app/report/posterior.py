"""The report's posterior section: intervals, group-level effects, rank plots and Pareto k."""

from __future__ import annotations

import re

import pandas as pd

from softbayes.analysis.comparison.cross_validation import psis_loo
from softbayes.analysis.figures_posterior import (
    HDI_PROB,
    INNER_PROB,
    group_draws,
    group_effect_terms,
    interval_table,
    plot_group_effects,
    plot_pareto_k,
    plot_posterior_forest,
    plot_rank_draws,
    population_draws,
)
from softbayes.app.report.content import FigureItem, ModelPanel, PosteriorSection, Table
from softbayes.app.report.figures import png_bytes
from softbayes.io.attrs import FitAttrs
from softbayes.terms.families import FAMILIES, family_class

__all__ = ["posterior_section"]

_HDI = f"{HDI_PROB:.0%}"
_FORMATS = {"mean": ".3f", "sd": ".3f", "hdi_lower": ".3f", "hdi_upper": ".3f",
            "ess_bulk": ".0f", "r_hat": ".3f"}
_COLUMNS = {"hdi_lower": f"{_HDI} HDI lower", "hdi_upper": f"{_HDI} HDI upper",
            "ess_bulk": "ESS bulk", "r_hat": "R-hat"}


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_").lower()
    return s or "x"


def _plain(text) -> str:
    """``text`` for a matplotlib label: a ``$`` would start mathtext."""
    return str(text).replace("$", r"\$")


def _table(name, title, long: pd.DataFrame, caption) -> Table:
    table = Table.from_frame(name, title, long, formats=_FORMATS, caption=caption, index=False)
    table.columns = [_COLUMNS.get(c, c) for c in table.columns]
    return table


def _figure(name, title, make, caption, warns) -> FigureItem | None:
    """A figure item, or None (with a warning) when drawing it fails."""
    try:
        return FigureItem(name, title, png_bytes(make()), caption)
    except Exception as err:  # keep the report; say what failed
        warns.append(f"figure {name} failed: {type(err).__name__}: {err}")
        return None


def _intervals(fits, names) -> tuple[Table, dict]:
    draws = {n: population_draws(fits[n]) for n in names}
    long = pd.concat([interval_table(d).assign(model=n) for n, d in draws.items()],
                     ignore_index=True)
    long = long[["model", *[c for c in long.columns if c != "model"]]]
    table = _table(
        "posterior_intervals", f"Posterior intervals (mean, sd, {_HDI} HDI, link scale)", long,
        f"Population-level parameters of every model: posterior mean and sd, the {_HDI} "
        "highest-density interval, bulk ESS and rank-normalized R-hat (ArviZ). Intercepts and "
        "slopes on the link scale, as in the coefficient table; a family's own parameters "
        "(such as a constant phi) and group-level standard deviations on their own scale.")
    return table, draws


def _coefficients(fit, draws):
    """``draws`` without the family's own parameters (``phi``, cut-points) and the group-level
    standard deviations: what is left shares the link scale of the forest plot."""
    family = FitAttrs.from_attrs(fit.attrs, warn_unknown=False).family
    own = set(family_class(family).parameters) if family in FAMILIES else set()
    own |= {f"{t}_sigma" for t in group_effect_terms(fit)}
    return draws[[v for v in draws.data_vars if str(v).split("[")[0] not in own]]


def _group_tables(fits, names) -> tuple[Table | None, Table | None, list]:
    """Group-level standard deviations and effects of every model with ``(…|g)`` terms."""
    sds, effects, parts = [], [], []
    for n in names:
        for term in group_effect_terms(fits[n]):
            sd, eff = group_draws(fits[n], term)
            sds.append(interval_table(sd).assign(model=n, group_term=term))
            e = interval_table(eff).assign(model=n, group_term=term)
            e["level"] = e["term"].str.slice(len(term) + 1, -1)
            effects.append(e)
            parts.append((n, term, sd, eff))
    if not parts:
        return None, None, []
    sd_long = pd.concat(sds, ignore_index=True)
    sd_long = sd_long[["model", "term", *[c for c in _FORMATS]]]
    eff_long = pd.concat(effects, ignore_index=True)
    eff_long = eff_long[["model", "group_term", "level", *[c for c in _FORMATS]]]
    sd_table = _table(
        "group_sd", f"Group-level standard deviations (mean, sd, {_HDI} HDI)", sd_long,
        "The standard deviation of each group-level term's effects across its levels (link "
        "scale).")
    eff_table = _table(
        "group_effects", f"Group-level effects per level (mean, sd, {_HDI} HDI)", eff_long,
        "Each level's deviation from the population-level intercept or slope (link scale).")
    return sd_table, eff_table, parts


def _pareto_k(cmp, name):
    """The PSIS-LOO result of ``name`` (recomputed when K-fold replaced it) and the
    reliability threshold of its draws."""
    elpd = cmp.elpd_data.get(name)
    if getattr(elpd, "pareto_k", None) is None:
        elpd = psis_loo(cmp.records[name])
    thr = getattr(cmp.fit_diagnostics.get(name), "pareto_k_threshold", None)
    return elpd, float(0.7 if thr is None else thr)


def _panel(cmp, draws, i, name, warns) -> ModelPanel:
    """The rank plots and the Pareto k plot of one model."""
    slug = f"{i + 1}_{_slug(name)}"
    figs = [_figure(
        f"rank_{slug}", f"Rank plots, {name}",
        lambda: plot_rank_draws(draws[name], title=f"Rank plots: {_plain(name)}"),
        "Per chain, the difference between the ECDF of the fractional ranks of the draws "
        "and the uniform ECDF, with a p-value of their uniformity: chains that sample the "
        "same distribution stay flat near zero.", warns)]
    if name in cmp.records:
        def khat():
            elpd, thr = _pareto_k(cmp, name)
            return plot_pareto_k(elpd, thr, title=f"Pareto k: {_plain(name)}")

        figs.append(_figure(
            f"pareto_k_{slug}", f"Pareto k, {name}", khat,
            "PSIS-LOO Pareto k per observation; above the red line (min(1 - 1/log10 S, 0.7) "
            "for S draws) the leave-one-out estimate of that observation is unreliable, "
            "above 1 it fails.", warns))
    return ModelPanel(name=str(name), figures=[f for f in figs if f is not None])


def _group_figures(names, parts, warns) -> list[FigureItem]:
    figs = []
    for i, name in enumerate(names):
        own = [p for p in parts if p[0] == name]
        for j, (_, term, sd, eff) in enumerate(own):
            title = _plain(f"{name}: {term}")
            figs.append(_figure(
                f"group_{i + 1}_{_slug(name)}_{j + 1}", f"Group-level effects {term}, {name}",
                lambda sd=sd, eff=eff, t=title: plot_group_effects(sd, eff, title=t),
                f"The standard deviation of {term} and each level's effect: "
                f"{INNER_PROB:.0%} and {_HDI} highest-density intervals and the posterior "
                "mean (link scale).", warns))
    return [f for f in figs if f is not None]


def posterior_section(cmp, fits: dict, warns: list) -> PosteriorSection:
    """Posterior intervals (table and forest plot of every model), group-level effects
    (tables; a figure per term), and per model its rank plots and Pareto k plot."""
    names = [n for n in cmp.names if n in fits]
    table, draws = _intervals(fits, names)
    coefficients = {_plain(n): _coefficients(fits[n], d) for n, d in draws.items()}
    forest = _figure(
        "posterior_intervals", "Posterior intervals",
        lambda: plot_posterior_forest(coefficients, title="Posterior intervals (link scale)"),
        f"Posterior mean (dot), {INNER_PROB:.0%} (thick) and {_HDI} (thin) highest-density "
        "intervals of the intercepts and slopes, one colour per model; the families' own "
        "parameters (such as a constant phi) and the group-level standard deviations are in "
        "the tables.", warns)
    sd_table, eff_table, parts = _group_tables(fits, names)
    return PosteriorSection(
        intervals=table, forest=forest, group_sd=sd_table, group_effects=eff_table,
        group_figures=_group_figures(names, parts, warns),
        panels=[_panel(cmp, draws, i, n, warns) for i, n in enumerate(names)])
