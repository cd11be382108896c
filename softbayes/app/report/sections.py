"""The report's data summary and per-model sections, read from the labels and the fits' attrs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from softbayes.app.report.content import DataSummary, ModelSection, Table
from softbayes.app.report.figures import label_figure
from softbayes.io.attrs import FitAttrs
from softbayes.terms.families import FAMILIES, family_class

__all__ = ["data_summary", "model_section"]

_QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
_STAT_NAMES = ("min", "q10", "q25", "median", "q75", "q90", "max")


def _label_rows(mat: np.ndarray, cols: list) -> list[dict]:
    n = mat.shape[0]
    rows = []
    for j, col in enumerate(cols):
        v = mat[:, j]
        q = np.quantile(v, _QUANTILES)
        rows.append({
            "label": str(col), "n": n, "mean": v.mean(), "sd": v.std(ddof=1) if n > 1 else 0.0,
            **dict(zip(_STAT_NAMES, q, strict=True)),
            "n_exactly_0": int((v == 0).sum()), "n_exactly_1": int((v == 1).sum()),
        })
    return rows


def data_summary(labels, columns, *, source="", weights=None, weight_values=None,
                 notes=None) -> DataSummary:
    """The data section: label distribution per column, labels at 0/1, weights, histogram."""
    labels = np.asarray(labels, dtype=float)
    n = int(labels.shape[0])
    cols = list(columns) if labels.ndim == 2 else list(columns[:1])
    mat = labels if labels.ndim == 2 else labels[:, None]
    frame = pd.DataFrame(_label_rows(mat, cols)).set_index("label")
    fmts = {c: ".3f" for c in ("mean", "sd", *_STAT_NAMES)}
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
        figure=label_figure(labels, list(columns)),
    )


def _prior_value(v) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_prior_value(x) for x in v) + "]"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _prior_table(name, priors: dict) -> Table:
    """The priors of one model (``tables/priors.csv`` holds those of every model)."""
    rows = []
    for term, p in priors.items():
        args = ", ".join(f"{k}={_prior_value(v)}" for k, v in p.get("kwargs", {}).items())
        rows.append({"term": term, "prior": f"{p.get('dist')}({args})",
                     "source": p.get("source", "")})
    frame = pd.DataFrame(rows, columns=["term", "prior", "source"])
    return Table.from_frame("priors", f"Priors of {name}", frame, index=False)


def _fit_time(attrs: FitAttrs, time, cached) -> str:
    if time is None:
        time = attrs.cli_fit_seconds
    text = "n/a" if time is None else f"{float(time):.1f} s"
    return text + (" (fit reused from the cache)" if cached else "")


def _label_notes(attrs: FitAttrs) -> list[str]:
    """What the family did to the labels (thresholded, squeezed)."""
    notes = []
    if attrs.n_thresholded:
        threshold = 0.5 if attrs.threshold is None else attrs.threshold
        notes.append(
            f"{attrs.n_thresholded} soft labels were thresholded at "
            f"{threshold} to 0/1 for this hard-label baseline."
        )
    note = family_class(attrs.family).squeeze_note if attrs.family in FAMILIES else None
    if attrs.n_squeezed and note:
        notes.append(note.format(n=attrs.n_squeezed))
    return notes


def _or_unknown(value) -> str:
    return "?" if value is None else str(value)


def model_section(name, fit, *, group="", description="", time=None, cached=None,
                  notes=None) -> ModelSection:
    """The section of one model: family, formula, options, sampler, time, priors, notes."""
    a = FitAttrs.from_attrs(fit.attrs, warn_unknown=False)
    opts = dict(a.options or {})
    weights = opts.pop("weights", None) or ""
    if a.calibration not in (None, "none"):  # an option of the fit, shown with the model's
        opts["calibrate"] = a.calibration
    sampler = (f"{_or_unknown(a.sampler)}: {_or_unknown(a.chains)} chains x "
               f"{_or_unknown(a.draws)} draws ({_or_unknown(a.tune)} tuning)")
    return ModelSection(
        name=str(name),
        likelihood=a.family or "",
        group=group,
        formula=a.formula or "",
        phi_formula=a.phi_formula or "",
        options=", ".join(f"{k}={v}" for k, v in opts.items()) or "none",
        weights=str(weights),
        description=description,
        sampler=sampler,
        seed="" if a.random_seed is None else str(a.random_seed),
        time=_fit_time(a, time, cached),
        priors=_prior_table(name, a.priors or {}),
        notes=list(notes or []) + _label_notes(a),
    )
