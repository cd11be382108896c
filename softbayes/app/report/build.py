"""Assembling a :class:`~softbayes.app.report.content.Report` from a comparison and its fits."""

from __future__ import annotations

import datetime as _dt
import re

import pandas as pd

from softbayes._version import __version__
from softbayes.analysis.comparison import CROSS_GROUP, elpd_group
from softbayes.app.report.content import ElpdSection, FigureItem, ModelSection, Report, Table
from softbayes.app.report.figures import (
    close_figure,
    marginal_effects_figure,
    model_figures,
    png_bytes,
)
from softbayes.app.report.posterior import posterior_section
from softbayes.app.report.sections import data_summary, model_section
from softbayes.app.report.tables import (
    coefficient_table,
    diagnostics_table,
    elpd_table,
    long_marginal_effects,
    marginal_effects_table,
    scores_table,
)
from softbayes.app.report.text import (
    caveats,
    conclusion,
    dispersion_findings,
    group_description,
)
from softbayes.io.attrs import FitAttrs

__all__ = ["build_report"]

_ELPD_NOTE = ("The groups hold different kinds of observation models: their ELPDs cannot be "
              "compared with each other. The common-scale scores below compare all models.")


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_").lower()
    return s or "x"


def _model_sections(cmp, fits: dict, info: dict) -> list[ModelSection]:
    sections = []
    for n in cmp.names:
        i = info.get(n, {})
        sections.append(model_section(
            n, fits[n], group=elpd_group(fits[n]),
            description=i.get("description", ""), time=i.get("time"), cached=i.get("cached"),
            notes=i.get("notes"),
        ))
    return sections


def _marginal_effects(cmp, warns: list) -> pd.DataFrame:
    """Every model's marginal effects in one long table (empty, with a warning, on failure)."""
    me_tables = {}
    try:
        me_tables = cmp.marginal_effects()
    except Exception as err:  # keep the report; say what failed
        warns.append(f"marginal effects failed: {type(err).__name__}: {err}")
    return long_marginal_effects(me_tables)


def _elpd_sections(cmp, warns: list) -> list[ElpdSection]:
    """One section per ELPD group: its table and (for two models or more) its figure."""
    figs = {}
    try:
        figs = cmp.plot_elpd()
    except Exception as err:
        warns.append(f"ELPD figures failed: {type(err).__name__}: {err}")
    sections = []
    for group, table in cmp.elpd_tables.items():
        desc = group_description(group)
        fig = figs.get(group)
        if fig is not None and len(table) < 2:  # one model: nothing to show
            close_figure(fig)
            fig = None
        slug = _slug(group)
        sections.append(ElpdSection(
            group=group, description=desc, flagged=group == CROSS_GROUP,
            table=elpd_table(table, f"elpd_{slug}", f"ELPD, group {group}",
                             f"PSIS-LOO expected log predictive density; models of this group "
                             f"are {desc}."),
            figure=None if fig is None else FigureItem(
                f"elpd_{slug}", f"ELPD comparison, group {group}", png_bytes(fig),
                f"ELPD of the models in group {group}, with standard errors."),
        ))
    return sections


def _figures(cmp, me_long: pd.DataFrame, warns: list) -> list[FigureItem]:
    """Calibration, marginal effects (if any), and per model its posterior predictive check
    and conditional effects."""
    specs = [
        ("calibration", "Calibration", "Reliability diagram: binned out-of-sample predictive "
         "means against the mean soft label, with posterior bands; calibrated models stay on "
         "the diagonal.", cmp.plot_calibration),
    ]
    if len(me_long):
        specs.append(("marginal_effects", "Marginal effects", "Average marginal effects on "
                      "E[y | x] with 94% intervals, every model on the same scale.",
                      lambda: marginal_effects_figure(me_long, cmp.names)))
    figures = []
    for fname, ftitle, caption, fn in specs:
        try:
            figures.append(FigureItem(fname, ftitle, png_bytes(fn()), caption))
        except Exception as err:
            warns.append(f"figure {fname} failed: {type(err).__name__}: {err}")
    return figures + model_figures(cmp, warns)


def _diagnostics(cmp, fits: dict) -> Table:
    """The diagnostics table with each fit's recorded dispersion (``softbayes_dispersion``)."""
    diag = cmp.diagnostics.copy()
    diag["dispersion"] = [
        FitAttrs.from_attrs(fits[n].attrs, warn_unknown=False).dispersion if n in fits else None
        for n in diag.index]
    diag["dispersion"] = diag["dispersion"].astype(float)
    return diagnostics_table(diag)


def _all_priors(sections: list[ModelSection]) -> Table:
    frame = pd.concat([s.priors.frame.assign(model=s.name) for s in sections],
                      ignore_index=True)[["model", "term", "prior", "source"]]
    return Table.from_frame("priors", "Priors of every model", frame, index=False)


def build_report(comparison, fits: dict, *, title: str, name: str, description: str = "",
                 data_source: str = "", model_info: dict | None = None,
                 weights_column: str | None = None, weight_values=None, data_notes=None,
                 run_info: dict | None = None, subset_note: str = "",
                 progress=None) -> Report:
    """Assemble a :class:`Report` from a :class:`softbayes.Comparison` and its fits.

    ``model_info`` maps a model name to ``{"description", "time", "cached", "notes"}``;
    ``progress(stage)`` is told when the slow stages start.
    """
    cmp = comparison
    warns = list(cmp.warnings)
    first = FitAttrs.from_attrs(fits[cmp.names[0]].attrs, warn_unknown=False)
    label_cols = first.label_columns or []
    data = data_summary(cmp.labels, label_cols or ["label"], source=data_source,
                        weights=weights_column, weight_values=weight_values, notes=data_notes)
    sections = _model_sections(cmp, fits, model_info or {})
    coef = coefficient_table(fits, cmp.names)
    if progress:
        progress("marginal effects")
    me_long = _marginal_effects(cmp, warns)
    me = marginal_effects_table(me_long, cmp.names)
    if progress:
        progress("figures")
    elpd_sections = _elpd_sections(cmp, warns)
    groups = [g for g in cmp.elpd_tables if g != CROSS_GROUP]
    figures = _figures(cmp, me_long, warns)
    try:
        posterior = posterior_section(cmp, fits, warns)
    except Exception as err:  # keep the report; say what failed
        warns.append(f"posterior section failed: {type(err).__name__}: {err}")
        posterior = None
    return Report(
        title=title, name=name, description=description,
        generated=_dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        version=__version__, data=data, models=sections,
        diagnostics=_diagnostics(cmp, fits), warnings=warns, notes=list(cmp.notes),
        coefficients=coef, marginal_effects=me, elpd=elpd_sections,
        elpd_note=_ELPD_NOTE if len(groups) > 1 else "",
        scores=scores_table(cmp.scores, list(cmp.score_tables)), figures=figures,
        conclusion=conclusion(cmp, cmp.elpd_tables), caveats=caveats(cmp, cmp.elpd_tables),
        subset_note=subset_note, run_info=dict(run_info or {}),
        extra_tables=[_all_priors(sections)], posterior=posterior,
        findings=dispersion_findings(fits, cmp.names),
    )
