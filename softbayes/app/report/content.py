"""The report's content as plain dataclasses: formatted tables, figures and sections."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "DataSummary",
    "ElpdSection",
    "FigureItem",
    "ModelPanel",
    "ModelSection",
    "PosteriorSection",
    "Report",
    "Table",
    "format_cell",
]


def format_cell(v, fmt=None) -> str:
    """One table cell as text: numbers with ``fmt`` (default ``.3g``), NaN and None empty,
    booleans ``yes``/``no``."""
    if v is None:
        return ""
    if isinstance(v, float | np.floating):
        if np.isnan(v):
            return ""
        return format(float(v), fmt or ".3g")
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return str(int(v))
    try:
        if pd.isna(v):
            return ""
    except (TypeError, ValueError):
        pass
    return str(v)


@dataclass
class Table:
    """A formatted table (strings) and the raw frame written to ``tables/<name>.csv``."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    frame: pd.DataFrame | None = field(default=None, repr=False)

    @classmethod
    def from_frame(cls, name, title, frame: pd.DataFrame, *, formats=None, caption="",
                   index=True, raw=None):
        """A table of ``frame`` (its index as the first columns when ``index``), cells
        formatted with ``formats`` (column -> format spec); ``raw`` replaces the frame
        written to CSV."""
        formats = formats or {}
        df = frame.reset_index() if index else frame
        cols = [str(c) for c in df.columns]
        rows = []
        for rec in df.itertuples(index=False):
            rows.append([format_cell(v, formats.get(c)) for c, v in zip(cols, rec, strict=True)])
        return cls(name, title, cols, rows, caption, frame if raw is None else raw)


@dataclass
class FigureItem:
    """A figure: PNG bytes, saved as ``figures/<name>.png`` and embedded in the HTML."""

    name: str
    title: str
    png: bytes = field(repr=False)
    caption: str = ""

    @property
    def path(self) -> str:
        """Where the figure is saved, relative to the report folder."""
        return f"figures/{self.name}.png"

    @property
    def data_uri(self) -> str:
        """The PNG as a ``data:`` URI, for the self-contained HTML."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class DataSummary:
    """The data: source, size, label distribution, labels at exactly 0 or 1."""

    source: str
    n: int
    label_columns: list[str]
    weights: str | None
    n_zero: int
    n_one: int
    n_hard: int
    distribution: Table
    notes: list[str] = field(default_factory=list)
    figure: FigureItem | None = None


@dataclass
class ModelSection:
    """One candidate model: what was fitted and how."""

    name: str
    likelihood: str
    group: str
    formula: str
    phi_formula: str
    options: str
    weights: str
    description: str
    sampler: str
    seed: str
    time: str
    priors: Table
    notes: list[str] = field(default_factory=list)


@dataclass
class ElpdSection:
    """The ELPD comparison of one group of comparable models."""

    group: str
    description: str
    table: Table
    figure: FigureItem | None = None
    flagged: bool = False


@dataclass
class ModelPanel:
    """The figures of one model: its rank plots and its Pareto k plot."""

    name: str
    figures: list[FigureItem] = field(default_factory=list)


@dataclass
class PosteriorSection:
    """Posterior intervals of every model, group-level effects, and per-model panels."""

    intervals: Table
    forest: FigureItem | None = None
    group_sd: Table | None = None
    group_effects: Table | None = None
    group_figures: list[FigureItem] = field(default_factory=list)
    panels: list[ModelPanel] = field(default_factory=list)

    def interval_figures(self) -> list[FigureItem]:
        """The forest plot and the group-level figures."""
        return ([self.forest] if self.forest is not None else []) + list(self.group_figures)

    def panel_figures(self) -> list[FigureItem]:
        """The rank and Pareto k plots of every model."""
        return [f for p in self.panels for f in p.figures]

    def tables(self) -> list[Table]:
        """Its tables."""
        return [t for t in (self.intervals, self.group_sd, self.group_effects)
                if t is not None]


@dataclass
class Report:
    """Everything a report shows (rendered by the templates under ``softbayes/app/templates``)."""

    title: str
    name: str
    description: str
    generated: str
    version: str
    data: DataSummary
    models: list[ModelSection]
    diagnostics: Table
    warnings: list[str]
    notes: list[str]
    coefficients: Table
    marginal_effects: Table
    elpd: list[ElpdSection]
    elpd_note: str
    scores: Table
    figures: list[FigureItem]
    conclusion: list[str]
    caveats: list[str]
    extra_tables: list[Table] = field(default_factory=list)
    subset_note: str = ""
    run_info: dict = field(default_factory=dict)
    posterior: PosteriorSection | None = None
    findings: list[str] = field(default_factory=list)

    def all_figures(self) -> list[FigureItem]:
        """Every figure, in the order the report shows them."""
        post = self.posterior
        figs = [f for f in [self.data.figure] if f is not None]
        figs += post.interval_figures() if post is not None else []
        figs += [e.figure for e in self.elpd if e.figure is not None]
        figs += list(self.figures)
        return figs + (post.panel_figures() if post is not None else [])

    def all_tables(self) -> list[Table]:
        """Every table, each written to ``tables/<name>.csv``."""
        tables = [self.data.distribution, self.diagnostics, self.coefficients,
                  self.marginal_effects, self.scores]
        tables += self.posterior.tables() if self.posterior is not None else []
        tables += [e.table for e in self.elpd]
        return tables + list(self.extra_tables)
