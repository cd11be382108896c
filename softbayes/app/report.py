"""Model comparison reports: dataclasses of tables and text, rendered with jinja2 templates.

:func:`build_report` turns a :class:`softbayes.Comparison` (and the fits' attrs) into a
:class:`Report` -- plain dataclasses holding formatted tables, figures (PNG bytes) and
sentences; :func:`write_report` renders it into a folder:

* ``index.html`` -- self-contained (figures embedded as base64 PNG, inline CSS, no scripts, a
  Content-Security-Policy that forbids fetching anything), opens from disk;
* ``report.md`` -- the same content in Markdown, figures linked from ``figures/``;
* ``figures/*.png`` and ``tables/*.csv`` (raw numbers, readable with pandas).

All user-supplied text (model names, column names, formulas, descriptions) is escaped:
jinja2's autoescape in HTML, and in Markdown a finalize hook escapes every value that is not
explicitly marked safe (:func:`md_escape`).
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from softbayes._version import __version__

__all__ = [
    "DataSummary",
    "FigureItem",
    "ModelSection",
    "Report",
    "Table",
    "build_report",
    "md_escape",
    "render_html",
    "render_markdown",
    "write_report",
]

SAMPLE_DIMS = ("chain", "draw")


# --------------------------------------------------------------------------- dataclasses


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
        formats = formats or {}
        df = frame.reset_index() if index else frame
        cols = [str(c) for c in df.columns]
        rows = []
        for rec in df.itertuples(index=False):
            rows.append([_cell(v, formats.get(c)) for c, v in zip(cols, rec, strict=True)])
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
        return f"figures/{self.name}.png"

    @property
    def data_uri(self) -> str:
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
    group: str
    description: str
    table: Table
    figure: FigureItem | None = None
    flagged: bool = False


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

    def all_figures(self) -> list[FigureItem]:
        figs = [f for f in [self.data.figure] if f is not None]
        figs += [e.figure for e in self.elpd if e.figure is not None]
        return figs + list(self.figures)

    def all_tables(self) -> list[Table]:
        tables = [self.data.distribution, self.diagnostics, self.coefficients,
                  self.marginal_effects, self.scores]
        tables += [e.table for e in self.elpd]
        return tables + list(self.extra_tables)


# --------------------------------------------------------------------------- formatting


def _cell(v, fmt=None) -> str:
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


def _f(x, digits=2) -> str:
    if x is None:
        return "n/a"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if np.isnan(x):
        return "n/a"
    return f"{x:.{digits}f}"


_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
_MD_LINE_START = re.compile(
    r"^(\s*)(#{1,6}(?=\s|$)|>|[+*-](?=\s|$)|\d+[.)](?=\s|$)|=+(?=\s*$))", re.MULTILINE
)


def _escape_line_start(m) -> str:
    mark = m.group(2)
    if mark[0].isdigit():  # "1." -> "1\\."
        return m.group(1) + mark[:-1] + "\\" + mark[-1]
    return m.group(1) + "\\" + mark


def md_escape(text) -> str:
    """Escape text for Markdown so that it renders literally (no markup, no HTML)."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_INLINE.sub(r"\\\1", s)
    s = _MD_LINE_START.sub(_escape_line_start, s)
    return s


def _md_finalize(value):
    if isinstance(value, Markup):
        return str(value)
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return md_escape(value)


def _md_cell(value) -> str:
    return md_escape(str(value).replace("\r", " ").replace("\n", " "))


def _md_table(table: Table) -> Markup:
    if not table.columns:
        return Markup("")
    head = "| " + " | ".join(_md_cell(c) for c in table.columns) + " |"
    sep = "|" + "|".join(" --- " for _ in table.columns) + "|"
    body = ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in table.rows]
    return Markup("\n".join([head, sep, *body]))


def _close(fig) -> None:
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # pragma: no cover - figures without pyplot
        pass


def _png(fig, dpi=96) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    _close(fig)
    return buf.getvalue()


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_").lower()
    return s or "x"


# --------------------------------------------------------------------------- pieces


def _label_figure(labels: np.ndarray, columns: list[str]) -> FigureItem:
    from matplotlib.figure import Figure

    k = 1 if labels.ndim == 1 else labels.shape[1]
    fig = Figure(figsize=(min(3.4 * k, 10.5), 2.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, k, squeeze=False).ravel())
    for j, ax in enumerate(axes):
        v = labels if labels.ndim == 1 else labels[:, j]
        ax.hist(v, bins=np.linspace(0, 1, 21), color="C0", edgecolor="white")
        ax.set_xlim(0, 1)
        ax.set_xlabel(str(columns[j]) if j < len(columns) else f"class {j}")
        ax.set_ylabel("count" if j == 0 else "")
    fig.suptitle("Distribution of the soft labels")
    return FigureItem("labels", "Label distribution", _png(fig),
                      "Histogram of the soft labels (20 bins on [0, 1]).")


def data_summary(labels, columns, *, source="", weights=None, weight_values=None,
                 notes=None) -> DataSummary:
    labels = np.asarray(labels, dtype=float)
    n = int(labels.shape[0])
    rows = []
    cols = list(columns) if labels.ndim == 2 else list(columns[:1])
    mat = labels if labels.ndim == 2 else labels[:, None]
    for j, col in enumerate(cols):
        v = mat[:, j]
        q = np.quantile(v, [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
        rows.append({
            "label": str(col), "n": n, "mean": v.mean(), "sd": v.std(ddof=1) if n > 1 else 0.0,
            "min": q[0], "q10": q[1], "q25": q[2], "median": q[3], "q75": q[4], "q90": q[5],
            "max": q[6], "n_exactly_0": int((v == 0).sum()), "n_exactly_1": int((v == 1).sum()),
        })
    frame = pd.DataFrame(rows).set_index("label")
    fmts = {c: ".3f" for c in ("mean", "sd", "min", "q10", "q25", "median", "q75", "q90", "max")}
    table = Table.from_frame("data_summary", "Label distribution", frame, formats=fmts)
    n_zero = int((mat == 0).all(axis=1).sum()) if mat.shape[1] == 1 else int((mat == 0).sum())
    n_one = int((mat == 1).any(axis=1).sum())
    n_hard = int(np.isin(mat, (0.0, 1.0)).all(axis=1).sum())
    notes = list(notes or [])
    if weights and weight_values is not None:
        w = np.asarray(weight_values, dtype=float)
        notes.append(
            f"Row weights from column {weights}: mean {w.mean():.3g}, min {w.min():.3g}, "
            f"max {w.max():.3g} (used by the weighted families only)."
        )
    return DataSummary(
        source=source, n=n, label_columns=[str(c) for c in columns], weights=weights,
        n_zero=n_zero, n_one=n_one, n_hard=n_hard, distribution=table, notes=notes,
        figure=_label_figure(labels, list(columns)),
    )


def _attr(fit, key, default=""):
    return fit.attrs.get(f"softbayes_{key}", default)


def model_section(name, fit, *, group="", description="", time=None, cached=None,
                  notes=None) -> ModelSection:
    a = fit.attrs
    priors = json.loads(a.get("softbayes_priors", "{}") or "{}")
    prior_rows = []
    for term, p in priors.items():
        kw = p.get("kwargs", {})

        def fmt(v):
            if isinstance(v, list):
                return "[" + ", ".join(fmt(x) for x in v) + "]"
            return f"{v:.4g}" if isinstance(v, float) else str(v)

        args = ", ".join(f"{k}={fmt(v)}" for k, v in kw.items())
        prior_rows.append({"term": term, "prior": f"{p.get('dist')}({args})",
                           "source": p.get("source", "")})
    pframe = pd.DataFrame(prior_rows, columns=["term", "prior", "source"])
    # links to tables/priors.csv, which holds the priors of every model
    ptable = Table.from_frame("priors", f"Priors of {name}", pframe, index=False)
    opts = json.loads(a.get("softbayes_options", "{}") or "{}")
    weights = opts.pop("weights", None) or ""
    sampler = (f"{a.get('softbayes_sampler', '?')}: {a.get('softbayes_chains', '?')} chains x "
               f"{a.get('softbayes_draws', '?')} draws ({a.get('softbayes_tune', '?')} tuning)")
    if time is None:
        t = a.get("softbayes_cli_fit_seconds")
        time = float(t) if t not in (None, "") else None
    tstr = "n/a" if time is None else f"{float(time):.1f} s"
    if cached:
        tstr += " (fit reused from the cache)"
    notes = list(notes or [])
    if int(a.get("softbayes_n_thresholded", 0) or 0):
        notes.append(
            f"{a.get('softbayes_n_thresholded')} soft labels were thresholded at "
            f"{a.get('softbayes_threshold', 0.5)} to 0/1 for this hard-label baseline."
        )
    if int(a.get("softbayes_n_squeezed", 0) or 0):
        notes.append(
            f"{a.get('softbayes_n_squeezed')} labels at exactly 0 or 1 were squeezed "
            "(Smithson-Verkuilen, (y(n-1)+1/2)/n) for the Beta density."
        )
    return ModelSection(
        name=str(name),
        likelihood=str(a.get("softbayes_family", "")),
        group=group,
        formula=str(a.get("softbayes_formula", "")),
        phi_formula=str(a.get("softbayes_phi_formula", "") or ""),
        options=", ".join(f"{k}={v}" for k, v in opts.items()) or "none",
        weights=str(weights),
        description=description,
        sampler=sampler,
        seed=str(a.get("softbayes_random_seed", "")),
        time=tstr,
        priors=ptable,
        notes=notes,
    )


def _flatten_posterior(fit) -> pd.DataFrame:
    """Population-level parameters (no per-level group effects), flattened, summarized."""
    post = fit["posterior"]
    post = post.to_dataset() if hasattr(post, "to_dataset") else post
    rows = []
    for var, da in post.data_vars.items():
        if var.endswith("_offset") or var.endswith("Intercept_centered"):
            continue
        other = [d for d in da.dims if d not in SAMPLE_DIMS]
        if any(str(d).endswith("__factor_dim") for d in other):
            continue
        if not np.issubdtype(da.dtype, np.number):
            continue
        arr = da.transpose(*SAMPLE_DIMS, *other).values
        flat = arr.reshape(arr.shape[0] * arr.shape[1], -1)
        labels = [""]
        if other:
            coords = [[str(c) for c in da.coords[d].values] if d in da.coords
                      else [str(i) for i in range(da.sizes[d])] for d in other]
            labels = [", ".join(t) for t in _product(coords)]
        for j, lab in enumerate(labels):
            v = flat[:, j]
            rows.append({
                "term": var + (f"[{lab}]" if lab else ""),
                "mean": float(v.mean()), "sd": float(v.std(ddof=1)),
                "lower": float(np.quantile(v, 0.03)), "upper": float(np.quantile(v, 0.97)),
            })
    return pd.DataFrame(rows, columns=["term", "mean", "sd", "lower", "upper"])


def _product(lists):
    out = [[]]
    for values in lists:
        out = [[*o, v] for o in out for v in values]
    return out


def _side_by_side(long: pd.DataFrame, names, key="term", est="mean", sd="sd",
                  fmt=".3f") -> pd.DataFrame:
    terms = list(dict.fromkeys(long[key].astype(str)))
    wide = pd.DataFrame(index=pd.Index(terms, name=key))
    for name in names:
        sub = long[long["model"] == name].drop_duplicates(key).set_index(key)
        wide[name] = [
            f"{sub.loc[t, est]:{fmt}} ({sub.loc[t, sd]:{fmt}})" if t in sub.index else ""
            for t in terms
        ]
    return wide


def _me_term(df: pd.DataFrame) -> pd.Series:
    term = df["variable"].astype(str)
    if "contrast" in df:
        term = term.where(df["contrast"] == "dE/dx", term + ": " + df["contrast"].astype(str))
    if "class" in df:
        term = term + " [" + df["class"].astype(str) + "]"
    return term


def _fmt_elpd(table: pd.DataFrame, name, title, caption) -> Table:
    cols = [c for c in ("rank", "elpd", "se", "p", "elpd_diff", "dse", "weight", "warning",
                        "group") if c in table.columns]
    t = table[cols].copy()
    t.index.name = "model"
    fmts = {c: ".2f" for c in ("elpd", "se", "p", "elpd_diff", "dse")}
    fmts["weight"] = ".3f"
    return Table.from_frame(name, title, t, formats=fmts, caption=caption)


def _est_se(est, se, digits=2) -> str:
    e, s = _f(est, digits), _f(se, digits)
    return e if s == "n/a" else f"{e} ({s})"


def _fmt_scores(scores: pd.DataFrame, keys) -> Table:
    names = {"log": "log score", "brier": "Brier"}
    cols = ["family", "group", "cv"]
    rows = []
    for model, r in scores.iterrows():
        row = [str(model), str(r.get("family", "")), str(r.get("group", "")),
               str(r.get("cv", ""))]
        for k in keys:
            row.append(_est_se(r[k], r[f"{k}_se"]))
            row.append(_est_se(r[f"{k}_diff"], r[f"{k}_dse"]))
        row.append(_f(r.get("ece"), 3))
        rows.append(row)
    for k in keys:
        cols += [f"{names.get(k, k)} (se)", f"{names.get(k, k)} diff (se)"]
    cols.append("ECE")
    return Table(
        "scores", "Common-scale scores (out of sample)", ["model", *cols], rows,
        caption=("Every model's out-of-sample predictive mean E[y_i | x_i, y_-i] scored against "
                 "the soft labels: log score = -cross-entropy (higher is better), Brier score "
                 "(lower is better); diff = paired difference with the best model, with its "
                 "standard error; ECE = binned calibration error. Comparable across all "
                 "families."),
        frame=scores,
    )


_DIAG_COLUMNS = {
    "n_chains": "chains", "n_draws": "draws", "rhat_max": "R-hat max",
    "ess_bulk_min": "ESS bulk min", "ess_tail_min": "ESS tail min",
    "n_divergent": "divergent", "bfmi_min": "E-BFMI min", "pareto_k_max": "Pareto k max",
    "n_k_bad": "k > thr", "n_k_very_bad": "k > 1", "n_warnings": "warnings",
}


def _fmt_diagnostics(diag: pd.DataFrame) -> Table:
    t = diag[[c for c in _DIAG_COLUMNS if c in diag.columns]].copy()
    t.index.name = "model"
    fmts = {"rhat_max": ".3f", "ess_bulk_min": ".0f", "ess_tail_min": ".0f", "bfmi_min": ".2f",
            "pareto_k_max": ".2f"}
    table = Table.from_frame(
        "diagnostics", "Sampling and PSIS diagnostics", t, formats=fmts,
        caption=("Thresholds (ArviZ): R-hat <= 1.01, bulk/tail ESS >= 100 per chain, no "
                 "divergences, E-BFMI >= 0.3, Pareto k below min(1 - 1/log10(S), 0.7)."),
        raw=diag,
    )
    table.columns = [_DIAG_COLUMNS.get(c, c) for c in table.columns]
    return table


# --------------------------------------------------------------------------- conclusion


def _conclusion(cmp, elpd_tables) -> tuple[list[str], list[str]]:
    from softbayes.analysis.comparison import CROSS_GROUP, GROUP_DESCRIPTIONS

    out, caveats = [], []
    keys = list(cmp.score_tables)
    s = cmp.scores
    labels = {"log": "log score (cross-entropy)", "brier": "Brier score"}
    for k in keys:
        st = cmp.score_tables[k]
        best = st.index[0]
        if len(st) < 2:
            out.append(f"Common scale, {labels.get(k, k)}: only one model ({best}).")
            continue
        tied, worse = [], []
        for other in st.index[1:]:
            d = abs(float(st.loc[other, "diff"]))
            dse = float(st.loc[other, "dse"])
            item = f"{other} ({d:.2f} behind, SE {dse:.2f})"
            (worse if d > 2 * dse else tied).append(item)
        sentence = f"Common scale, {labels.get(k, k)}: preferred model {best}"
        if tied:
            sentence += ("; within two standard errors of it, so not clearly worse: "
                         + ", ".join(tied))
        if worse:
            sentence += "; clearly worse: " + ", ".join(worse)
        out.append(sentence + ".")
    if "ece" in s and len(s) > 1:
        best_ece = s["ece"].astype(float).idxmin()
        out.append(f"Calibration: {best_ece} has the smallest calibration error "
                   f"(ECE {float(s.loc[best_ece, 'ece']):.3f}).")
    for group, table in elpd_tables.items():
        if group == CROSS_GROUP:
            continue
        desc = GROUP_DESCRIPTIONS.get(group, group)
        if len(table) < 2:
            out.append(f"ELPD, group {group} ({desc}): one model ({table.index[0]}); "
                       "nothing to compare it with on this scale.")
            continue
        best, second = table.index[0], table.index[1]
        d = abs(float(table.loc[second, "elpd_diff"]))
        dse = float(table.loc[second, "dse"])
        out.append(
            f"ELPD, group {group} ({desc}): {best} is preferred over {second} by "
            f"{d:.2f} (SE {dse:.2f})"
            + ("." if d > 2 * dse else "; within two standard errors, not clearly better.")
        )
    fams = set(cmp.families.values())
    groups = [g for g in elpd_tables if g != CROSS_GROUP]
    if len(groups) > 1:
        caveats.append(
            "ELPDs of different groups are not comparable: a density of the label (Continuous "
            "Bernoulli, Beta), the weighted-Bernoulli cross-entropy and a Bernoulli probability "
            "of thresholded labels are different kinds of numbers (log C(lambda) >= log 2 alone "
            "would make the Continuous Bernoulli 'win' by 0.69 nats per observation). Choose "
            "across groups with the common-scale scores."
        )
    if "weighted_bernoulli" in fams:
        caveats.append(
            "The weighted-Bernoulli (cross-entropy) posterior spread comes from Bernoulli "
            "information, as if each label were one coin flip: it ignores how precise the soft "
            "labels are and may be too wide (or, with large count weights, too narrow). Its "
            "point predictions are the soft-label maximum-likelihood fit."
        )
    if "soft_categorical" in fams:
        caveats.append(
            "The soft-categorical cross-entropy is not a density of the label vector; its "
            "ELPD compares only soft-categorical fits of the same labels and weights."
        )
    if "bernoulli" in fams:
        caveats.append(
            "The hard-label Bernoulli baseline sees thresholded labels: the information in the "
            "soft labels is discarded, so its ELPD (a probability of 0/1 labels) compares with "
            "nothing else here."
        )
    if "continuous_bernoulli" in fams:
        caveats.append(
            "Continuous Bernoulli coefficients are on the logit of lambda, not of the mean "
            "E[y | x]; compare families through the marginal effects, which are on the mean "
            "scale."
        )
    bad = [str(n) for n, row in cmp.diagnostics.iterrows() if int(row.get("n_warnings", 0))]
    if bad:
        caveats.append(
            f"Diagnostics raised warnings for {', '.join(bad)} (see Diagnostics): check them "
            "before relying on these models' numbers; more draws or chains usually help."
        )
    if cmp.cv and any(v != "psis-loo" for v in cmp.cv.values()):
        caveats.append("Some out-of-sample estimates come from exact K-fold refits "
                       "(PSIS-LOO was unreliable); see the cv column.")
    return out, caveats


# --------------------------------------------------------------------------- build


def build_report(comparison, fits: dict, *, title: str, name: str, description: str = "",
                 data_source: str = "", model_info: dict | None = None,
                 weights_column: str | None = None, weight_values=None, data_notes=None,
                 run_info: dict | None = None, subset_note: str = "",
                 progress=None) -> Report:
    """Assemble a :class:`Report` from a :class:`softbayes.Comparison` and its fits.

    ``model_info`` maps a model name to ``{"description", "time", "cached", "notes"}``.
    """
    from softbayes.analysis.comparison import CROSS_GROUP, GROUP_DESCRIPTIONS, elpd_group

    cmp = comparison
    info = model_info or {}
    warns = list(cmp.warnings)
    notes = list(cmp.notes)
    first = fits[cmp.names[0]]
    label_cols = json.loads(first.attrs.get("softbayes_label_columns", "[]") or "[]")

    data = data_summary(cmp.labels, label_cols or ["label"], source=data_source,
                        weights=weights_column, weight_values=weight_values, notes=data_notes)

    sections = []
    for n in cmp.names:
        i = info.get(n, {})
        sections.append(model_section(
            n, fits[n], group=elpd_group(fits[n]),
            description=i.get("description", ""), time=i.get("time"), cached=i.get("cached"),
            notes=i.get("notes"),
        ))

    # coefficients and marginal effects
    coef_long = []
    for n in cmp.names:
        df = _flatten_posterior(fits[n])
        df.insert(0, "model", n)
        coef_long.append(df)
    coef_long = pd.concat(coef_long, ignore_index=True)
    coef = Table.from_frame(
        "coefficients", "Coefficients (posterior mean (sd), link scale)",
        _side_by_side(coef_long, cmp.names),
        caption=("Population-level parameters on each family's link scale (logit of the mean; "
                 "logit of lambda for the Continuous Bernoulli; log phi parts for Beta)."),
        raw=coef_long,
    )
    if progress:
        progress("marginal effects")
    me_tables = {}
    try:
        me_tables = cmp.marginal_effects()
    except Exception as err:  # keep the report; say what failed
        warns.append(f"marginal effects failed: {type(err).__name__}: {err}")
    me_long = []
    for n, df in me_tables.items():
        if len(df):
            df = df.copy()
            df.insert(0, "model", n)
            df.insert(1, "term", _me_term(df))
            me_long.append(df)
    me_long = pd.concat(me_long, ignore_index=True) if me_long else pd.DataFrame(
        columns=["model", "term", "estimate", "sd", "lower", "upper"])
    me = Table.from_frame(
        "marginal_effects", "Average marginal effects on E[y | x] (mean (sd))",
        _side_by_side(me_long, cmp.names, est="estimate", fmt=".3g") if len(me_long) else
        pd.DataFrame(index=pd.Index([], name="term")),
        caption=("Average change in the predicted mean per unit of each predictor (or per "
                 "level against the reference): the same scale for every family."),
        raw=me_long,
    )

    # ELPD per group
    if progress:
        progress("figures")
    elpd_sections = []
    elpd_figs = {}
    try:
        elpd_figs = cmp.plot_elpd()
    except Exception as err:
        warns.append(f"ELPD figures failed: {type(err).__name__}: {err}")
    for group, table in cmp.elpd_tables.items():
        flagged = group == CROSS_GROUP
        desc = GROUP_DESCRIPTIONS.get(group, group)
        fig = elpd_figs.get(group)
        if fig is not None and len(table) < 2:  # one model: nothing to show
            _close(fig)
            fig = None
        slug = _slug(group)
        elpd_sections.append(ElpdSection(
            group=group, description=desc, flagged=flagged,
            table=_fmt_elpd(table, f"elpd_{slug}", f"ELPD, group {group}",
                            f"PSIS-LOO expected log predictive density; models of this group "
                            f"are {desc}."),
            figure=None if fig is None else FigureItem(
                f"elpd_{slug}", f"ELPD comparison, group {group}", _png(fig),
                f"ELPD of the models in group {group}, with standard errors."),
        ))
    elpd_note = ""
    if len([g for g in cmp.elpd_tables if g != CROSS_GROUP]) > 1:
        elpd_note = ("The groups hold different kinds of observation models: their ELPDs "
                     "cannot be compared with each other. The common-scale scores below "
                     "compare all models.")

    figures = []
    for fname, ftitle, caption, fn in (
        ("calibration", "Calibration", "Reliability diagram: binned out-of-sample predictive "
         "means against the mean soft label, with posterior bands; calibrated models stay on "
         "the diagonal.", cmp.plot_calibration),
        ("ppc", "Posterior predictive check", "ECDF of the observed soft labels (black) over "
         "the ECDFs of replicated labels (hard 0/1 draws for the Bernoulli-type families).",
         cmp.plot_ppc),
        ("marginal_effects", "Marginal effects", "Average marginal effects on E[y | x] with "
         "94% intervals, every model on the same scale.",
         lambda: _plot_me(me_long, cmp.names)),
    ):
        if fname == "marginal_effects" and not len(me_long):
            continue
        try:
            figures.append(FigureItem(fname, ftitle, _png(fn()), caption))
        except Exception as err:
            warns.append(f"figure {fname} failed: {type(err).__name__}: {err}")

    conclusion, caveats = _conclusion(cmp, cmp.elpd_tables)
    return Report(
        title=title, name=name, description=description,
        generated=_dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        version=__version__, data=data, models=sections,
        diagnostics=_fmt_diagnostics(cmp.diagnostics), warnings=warns, notes=notes,
        coefficients=coef, marginal_effects=me, elpd=elpd_sections, elpd_note=elpd_note,
        scores=_fmt_scores(cmp.scores, list(cmp.score_tables)), figures=figures,
        conclusion=conclusion, caveats=caveats, subset_note=subset_note,
        run_info=dict(run_info or {}),
        extra_tables=[Table.from_frame(
            "priors", "Priors of every model",
            pd.concat([s.priors.frame.assign(model=s.name) for s in sections],
                      ignore_index=True)[["model", "term", "prior", "source"]],
            index=False)],
    )


def _plot_me(me_long: pd.DataFrame, names):
    from softbayes.analysis.plots import plot_marginal_effects

    tables = {n: me_long[me_long["model"] == n] for n in names
              if (me_long["model"] == n).any()}
    return plot_marginal_effects(tables)


# --------------------------------------------------------------------------- rendering


def _env(markdown: bool):
    import jinja2

    loader = jinja2.PackageLoader("softbayes.app", "templates")
    if markdown:
        env = jinja2.Environment(loader=loader, autoescape=False, finalize=_md_finalize,
                                 keep_trailing_newline=True, trim_blocks=True,
                                 lstrip_blocks=True, undefined=jinja2.StrictUndefined)
        env.filters["mdtable"] = _md_table
    else:
        env = jinja2.Environment(loader=loader, autoescape=True, trim_blocks=True,
                                 lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    return env


def render_html(report: Report) -> str:
    """``index.html`` (self-contained: inline CSS, figures as data URIs, no scripts)."""
    return _env(False).get_template("report.html.j2").render(r=report)


def render_markdown(report: Report) -> str:
    """``report.md`` (figures linked from ``figures/``)."""
    return _env(True).get_template("report.md.j2").render(r=report)


#: First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV injection").
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A text that is just a decimal number ("-1.5", "+3e-4") is a number to a spreadsheet, not a
# formula, and stays as written so that the table still reads back as numbers.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def csv_escape(value):
    """A text cell that a spreadsheet would run as a formula, prefixed with ``'``.

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (OWASP's list)
    gets a leading single quote, which spreadsheets show as text; other values, numbers
    included (also ``-1.5`` written as text), are returned unchanged.
    """
    if (isinstance(value, str) and value.startswith(CSV_FORMULA_START)
            and not _PLAIN_NUMBER.fullmatch(value)):
        return "'" + value
    return value


def _csv_safe_index(index: pd.Index) -> pd.Index:
    if len(index) == 0:
        return index
    if isinstance(index, pd.MultiIndex):
        return pd.MultiIndex.from_tuples(
            [tuple(csv_escape(v) for v in t) for t in index],
            names=[csv_escape(n) for n in index.names])
    if index.dtype.kind in "biufcmM":
        return index.rename(csv_escape(index.name))
    return pd.Index([csv_escape(v) for v in index], dtype=object, name=csv_escape(index.name))


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell, column name and index label passed through
    :func:`csv_escape`; numeric columns are left as they are. Every CSV that softbayes
    writes goes through this: names of terms, models and columns come from the user."""
    out = frame.copy()
    for j in range(out.shape[1]):
        col = out.iloc[:, j]
        if col.dtype.kind in "biufcmM":
            continue
        out.isetitem(j, pd.Series([csv_escape(v) for v in col], index=out.index,
                                  dtype=object))
    out.columns = _csv_safe_index(out.columns)
    out.index = _csv_safe_index(out.index)
    return out


def write_report(report: Report, folder) -> Path:
    """Write ``index.html``, ``report.md``, ``figures/*.png`` and ``tables/*.csv``."""
    folder = Path(folder)
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    (folder / "tables").mkdir(parents=True, exist_ok=True)
    for fig in report.all_figures():
        (folder / fig.path).write_bytes(fig.png)
    for table in report.all_tables():
        frame = table.frame
        if frame is None:
            frame = pd.DataFrame(table.rows, columns=table.columns)
        keep_index = not isinstance(frame.index, pd.RangeIndex)
        # CRLF (RFC 4180) also makes the writer quote a text cell holding a bare carriage
        # return, which a spreadsheet would otherwise read as the start of a new row.
        csv_safe(frame).to_csv(folder / "tables" / f"{table.name}.csv", index=keep_index,
                               lineterminator="\r\n")
    (folder / "report.md").write_text(render_markdown(report), encoding="utf-8")
    (folder / "index.html").write_text(render_html(report), encoding="utf-8")
    return folder


def report_context(report: Report) -> dict[str, Any]:  # pragma: no cover - debugging aid
    return {"report": report}
