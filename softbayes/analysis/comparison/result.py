"""The result of :func:`compare`: the :class:`Comparison` tables, its text report and figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from softbayes.analysis.comparison.cross_validation import description_of
from softbayes.analysis.comparison.groups import CROSS_GROUP, GROUP_DESCRIPTIONS, FitRecord
from softbayes.analysis.diagnostics import FitDiagnostics
from softbayes.analysis.plots import (
    plot_calibration,
    plot_elpd_comparison,
    plot_marginal_effects,
)
from softbayes.analysis.ppc import plot_ppc
from softbayes.analysis.predict import marginal_effects, predict

__all__ = ["Comparison"]


@dataclass
class Comparison:
    """Result of :func:`compare`. Print it for a readable report.

    Attributes
    ----------
    names : list of str
        The fits, in the order given.
    families : dict
        Fit -> family.
    groups : dict
        ELPD group -> fits in it (fits whose ELPDs are comparable).
    elpd_tables : dict of pandas.DataFrame
        ELPD group -> ``arviz.compare`` table of its fits (unrounded). With
        ``allow_cross_group_elpd=True`` and ``elpd="all"`` also the flagged key
        ``"all (cross-group)"``.
    scores : pandas.DataFrame
        One row per fit, best first by the first score: the ELPD group, the
        cross-validation used (``cv``), per score the total, its SE, the paired difference
        with the best fit and its SE (``<score>_diff``, ``<score>_dse``), and ``ece`` (the
        calibration error of the out-of-sample predictive means).
    score_tables : dict of pandas.DataFrame
        Score -> :func:`softbayes.analysis.scores.score_table` ranking (best first).
    diagnostics : pandas.DataFrame
        One row per fit (see :class:`softbayes.FitDiagnostics`).
    warnings : list of str
        Plain sentences: crossed diagnostic thresholds, K-fold fallbacks, flagged
        cross-group ELPD, data transformations.
    cv : dict
        Fit -> ``"psis-loo"`` or ``"kfold(k=K)"``: how its out-of-sample quantities were
        estimated.
    loo_means : dict of numpy.ndarray
        Fit -> out-of-sample predictive means :math:`E[y_i \\mid x_i, y_{-i}]`, shape
        ``(n,)`` or ``(n, K)``.
    pointwise : dict of pandas.DataFrame
        Score -> (n x fits) pointwise scores.
    labels : numpy.ndarray
        The soft labels the scores use.
    elpd_data : dict
        Fit -> the ArviZ ELPD object (``ELPDDataLOO`` or ``ELPDDataLOOKFold``).
    cross_group_elpd : bool
        True when a cross-group ELPD table was built on request (and is invalid).
    folds : numpy.ndarray or None
        The K-fold assignment (fold index 0..K-1 per observation) when K-fold was used.
    method : str
        Weighting method passed to ``arviz.compare``.
    failed : dict
        Fit -> why it was left out (its PSIS-LOO failed, e.g. stuck chains); such fits are
        in no table, and :attr:`warnings` carries the reason and their diagnostics.
    records : dict
        Fit -> :class:`~softbayes.analysis.comparison.groups.FitRecord`, what
        :func:`compare` read from it (the figures predict from these).
    """

    names: list[str]
    families: dict[str, str]
    groups: dict[str, list[str]]
    elpd_tables: dict[str, pd.DataFrame]
    scores: pd.DataFrame
    score_tables: dict[str, pd.DataFrame]
    diagnostics: pd.DataFrame
    warnings: list[str]
    cv: dict[str, str]
    loo_means: dict[str, np.ndarray]
    pointwise: dict[str, pd.DataFrame]
    labels: np.ndarray
    elpd_data: dict[str, Any] = field(repr=False)
    fit_diagnostics: dict[str, FitDiagnostics] = field(repr=False)
    cross_group_elpd: bool = False
    folds: np.ndarray | None = None
    method: str = "stacking"
    n_bins: int = 10
    notes: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    records: dict[str, FitRecord] = field(default_factory=dict, repr=False)

    # -- text -------------------------------------------------------------------------------
    def __str__(self) -> str:
        out = []
        n = len(self.labels)
        out.append(
            f"softbayes model comparison: {len(self.names)} fit{'s' if len(self.names) > 1 else ''}"
            f" of the same {n} soft labels"
        )
        out.append("=" * len(out[0]))
        out.append("")
        for group, table in self.elpd_tables.items():
            if group == CROSS_GROUP:
                continue
            desc = GROUP_DESCRIPTIONS.get(group, group)
            out.append(f"ELPD ({self._elpd_kind(table)}), group '{group}': {desc}")
            out.append(_format_elpd(table))
            out.append("")
        if len([g for g in self.elpd_tables if g != CROSS_GROUP]) > 1:
            out.append(
                "ELPDs of different groups are not comparable (a density of the label, a "
                "cross-entropy and a probability of thresholded labels are different kinds "
                "of numbers). Compare all fits with the common-scale scores below."
            )
            out.append("")
        if CROSS_GROUP in self.elpd_tables:
            out.append(
                "!! CROSS-GROUP ELPD RANKING built on request (allow_cross_group_elpd=True). "
                "It is NOT a valid comparison: do not use it to choose a model."
            )
            out.append(_format_elpd(self.elpd_tables[CROSS_GROUP]))
            out.append("")
        out.append(
            "Common scale: out-of-sample predictive mean E[y_i | x_i, y_-i] scored against "
            "the soft labels"
        )
        out.append(
            "(log score = -cross-entropy, higher is better; Brier score, lower is better; "
            "diff = paired difference with the best fit, dse its SE; ECE = binned "
            f"calibration error, {self.n_bins} bins)"
        )
        out.append(_format_scores(self.scores, self.score_tables))
        out.append("")
        out.append("Diagnostics")
        out.append(_format_diagnostics(self.diagnostics))
        if self.notes:
            out.append("")
            out.append("Notes")
            out.extend(f"  - {s}" for s in self.notes)
        if self.warnings:
            out.append("")
            out.append(f"Warnings ({len(self.warnings)})")
            out.extend(f"  - {w}" for w in self.warnings)
        return "\n".join(out)

    def __repr__(self) -> str:
        return self.__str__()

    def _elpd_kind(self, table):
        kinds = {self.cv.get(name, "psis-loo") for name in table.index}
        return ", ".join(sorted(kinds))

    # -- figures ----------------------------------------------------------------------------
    def plot_elpd(self, group: str | None = None):
        """ELPD comparison plot: one Figure for ``group``, else a dict group -> Figure."""
        if group is not None:
            if group not in self.elpd_tables:
                raise ValueError(f"No ELPD table {group!r}; have {list(self.elpd_tables)}.")
            return plot_elpd_comparison(self.elpd_tables[group], title=_plot_title(group))
        return {
            g: plot_elpd_comparison(t, title=_plot_title(g)) for g, t in self.elpd_tables.items()
        }

    def _mean_draws(self):
        return {
            name: predict(rec.fit, kind="mean", model=description_of(rec))
            for name, rec in self.records.items()
        }

    def plot_calibration(self, *, n_bins: int | None = None, prob: float = 0.9):
        """Reliability diagram per fit (out-of-sample means binned, posterior bands)."""
        return plot_calibration(
            self.labels,
            self._mean_draws(),
            point=self.loo_means,
            n_bins=n_bins or self.n_bins,
            prob=prob,
            titles={
                n: f"{n} ({self.families[n]}, ECE {self.scores.loc[n, 'ece']:.3f})"
                for n in self.names
            },
        )

    def plot_ppc(self, **kwargs) -> dict:
        """Per fit, the posterior predictive check its family calls for (a figure by name).

        :func:`softbayes.plot_ppc`: a PAVA reliability diagram for families whose
        replicates are hard outcomes (an ECDF of 0/1 draws against soft labels would reject
        the true model), a label-scale ECDF for density families. ``kwargs`` are passed on.
        """
        return {name: plot_ppc(rec.fit, model=description_of(rec),
                               title=f"{name} ({self.families[name]})", **kwargs)
                for name, rec in self.records.items()}

    def marginal_effects(self, **kwargs) -> dict[str, pd.DataFrame]:
        """Fit -> :func:`softbayes.marginal_effects` table (``kwargs`` passed on)."""
        return {
            name: marginal_effects(rec.fit, model=description_of(rec), **kwargs)
            for name, rec in self.records.items()
        }

    def plot_marginal_effects(self, **kwargs):
        """Forest of average marginal effects on E[y | x] across fits."""
        tables = {}
        for name, df in self.marginal_effects(**kwargs).items():
            df = df.copy()
            term = df["variable"].astype(str)
            if "contrast" in df and not (df["contrast"] == "dE/dx").all():
                term = term + np.where(df["contrast"] == "dE/dx", "", ": " + df["contrast"])
            if "class" in df:
                term = term + " [" + df["class"].astype(str) + "]"
            df["term"] = term
            tables[name] = df
        return plot_marginal_effects(tables)

    def figures(self) -> dict:
        """All figures by name: ``elpd_<group>``, ``calibration``, ``ppc_<fit>``,
        ``marginal_effects`` (the last only when the fits have population-level predictors).
        Save each with ``fig.savefig(f"{name}.png")``."""
        figs = {f"elpd_{_slug(g)}": f for g, f in self.plot_elpd().items()}
        figs["calibration"] = self.plot_calibration()
        figs.update({f"ppc_{_slug(n)}": f for n, f in self.plot_ppc().items()})
        if any(len(df) for df in self.marginal_effects().values()):
            figs["marginal_effects"] = self.plot_marginal_effects()
        return figs


def _slug(text):
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


def _plot_title(group):
    if group == CROSS_GROUP:
        return "NOT COMPARABLE: cross-group ELPD (allow_cross_group_elpd=True)"
    return f"ELPD, {GROUP_DESCRIPTIONS.get(group, group)}"


def _fmt(x, digits=2):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    return f"{x:.{digits}f}"


def _format_elpd(table: pd.DataFrame) -> str:
    cols = [c for c in ("rank", "elpd", "se", "p", "elpd_diff", "dse", "weight") if c in table]
    extra = [c for c in ("diag_elpd", "diag_diff", "group") if c in table]
    t = table[cols + extra].copy()
    for c in ("elpd", "se", "p", "elpd_diff", "dse"):
        if c in t:
            t[c] = t[c].map(lambda v: _fmt(float(v)))
    if "weight" in t:
        t["weight"] = t["weight"].map(lambda v: _fmt(float(v), 3))
    return t.to_string()


def _format_scores(scores: pd.DataFrame, tables) -> str:
    t = pd.DataFrame(index=scores.index)
    t["group"] = scores["group"]
    t["cv"] = scores["cv"]
    for key in tables:
        t[key] = scores[key].map(lambda v: _fmt(float(v)))
        t[f"{key}_se"] = scores[f"{key}_se"].map(lambda v: _fmt(float(v)))
        t[f"{key}_diff"] = scores[f"{key}_diff"].map(lambda v: _fmt(float(v)))
        t[f"{key}_dse"] = scores[f"{key}_dse"].map(lambda v: _fmt(float(v)))
    t["ece"] = scores["ece"].map(lambda v: _fmt(float(v), 3))
    return t.to_string()


def _format_diagnostics(diag: pd.DataFrame) -> str:
    t = pd.DataFrame(index=diag.index)
    t["rhat_max"] = diag["rhat_max"].map(lambda v: _fmt(float(v), 3))
    t["ess_bulk_min"] = diag["ess_bulk_min"].map(lambda v: _fmt(float(v), 0))
    t["ess_tail_min"] = diag["ess_tail_min"].map(lambda v: _fmt(float(v), 0))
    t["divergent"] = diag["n_divergent"]
    t["bfmi_min"] = diag["bfmi_min"].map(lambda v: _fmt(v if v is None else float(v)))
    t["k_max"] = diag["pareto_k_max"].map(lambda v: _fmt(v if v is None else float(v)))
    t["k>thr"] = [
        "" if pd.isna(b) else int(b) + int(vb)
        for b, vb in zip(diag["n_k_bad"], diag["n_k_very_bad"], strict=True)
    ]
    t["warnings"] = diag["n_warnings"]
    return t.to_string()


