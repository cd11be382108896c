"""The report's tables: coefficients, marginal effects, ELPD, scores and diagnostics."""

from __future__ import annotations

import numpy as np
import pandas as pd

from softbayes.app.report.content import Table

__all__ = [
    "coefficient_table",
    "diagnostics_table",
    "elpd_table",
    "format_number",
    "long_marginal_effects",
    "marginal_effects_table",
    "posterior_summary",
    "scores_table",
]

SAMPLE_DIMS = ("chain", "draw")


def format_number(x, digits=2) -> str:
    """``x`` with ``digits`` decimals; ``n/a`` for None and NaN."""
    if x is None:
        return "n/a"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if np.isnan(x):
        return "n/a"
    return f"{x:.{digits}f}"


def _product(lists):
    out = [[]]
    for values in lists:
        out = [[*o, v] for o in out for v in values]
    return out


def _element_labels(da, other) -> list[str]:
    """``"a, b"`` labels of the elements of a variable over its non-sample dims."""
    if not other:
        return [""]
    coords = [[str(c) for c in da.coords[d].values] if d in da.coords
              else [str(i) for i in range(da.sizes[d])] for d in other]
    return [", ".join(t) for t in _product(coords)]


def posterior_summary(fit) -> pd.DataFrame:
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
        for j, lab in enumerate(_element_labels(da, other)):
            v = flat[:, j]
            rows.append({
                "term": var + (f"[{lab}]" if lab else ""),
                "mean": float(v.mean()), "sd": float(v.std(ddof=1)),
                "lower": float(np.quantile(v, 0.03)), "upper": float(np.quantile(v, 0.97)),
            })
    return pd.DataFrame(rows, columns=["term", "mean", "sd", "lower", "upper"])


def _side_by_side(long: pd.DataFrame, names, key="term", est="mean", sd="sd",
                  fmt=".3f") -> pd.DataFrame:
    """One row per term, one ``estimate (sd)`` column per model."""
    terms = list(dict.fromkeys(long[key].astype(str)))
    wide = pd.DataFrame(index=pd.Index(terms, name=key))
    for name in names:
        sub = long[long["model"] == name].drop_duplicates(key).set_index(key)
        wide[name] = [
            f"{sub.loc[t, est]:{fmt}} ({sub.loc[t, sd]:{fmt}})" if t in sub.index else ""
            for t in terms
        ]
    return wide


def coefficient_table(fits: dict, names) -> Table:
    """Posterior mean (sd) of every model's population-level parameters, side by side."""
    long = []
    for n in names:
        df = posterior_summary(fits[n])
        df.insert(0, "model", n)
        long.append(df)
    long = pd.concat(long, ignore_index=True)
    return Table.from_frame(
        "coefficients", "Coefficients (posterior mean (sd), link scale)",
        _side_by_side(long, names),
        caption=("Population-level parameters on each family's link scale (logit of the mean, "
                 "for K classes its log-ratios to the reference class; logit of lambda for the "
                 "Continuous Bernoulli and natural parameters for the continuous categorical, "
                 "not the mean; log phi parts for Beta and Dirichlet)."),
        raw=long,
    )


def _me_term(df: pd.DataFrame) -> pd.Series:
    term = df["variable"].astype(str)
    if "contrast" in df:
        term = term.where(df["contrast"] == "dE/dx", term + ": " + df["contrast"].astype(str))
    if "class" in df:
        term = term + " [" + df["class"].astype(str) + "]"
    return term


def long_marginal_effects(me_tables: dict) -> pd.DataFrame:
    """Every model's marginal effects in one long table with ``model`` and ``term`` columns."""
    long = []
    for n, df in me_tables.items():
        if len(df):
            df = df.copy()
            df.insert(0, "model", n)
            df.insert(1, "term", _me_term(df))
            long.append(df)
    if not long:
        return pd.DataFrame(columns=["model", "term", "estimate", "sd", "lower", "upper"])
    return pd.concat(long, ignore_index=True)


def marginal_effects_table(me_long: pd.DataFrame, names) -> Table:
    """Average marginal effects on E[y | x], mean (sd), one column per model."""
    wide = (_side_by_side(me_long, names, est="estimate", fmt=".3g") if len(me_long)
            else pd.DataFrame(index=pd.Index([], name="term")))
    return Table.from_frame(
        "marginal_effects", "Average marginal effects on E[y | x] (mean (sd))", wide,
        caption=("Average change in the predicted mean per unit of each predictor (or per "
                 "level against the reference): the same scale for every family."),
        raw=me_long,
    )


def elpd_table(table: pd.DataFrame, name, title, caption) -> Table:
    """The ELPD comparison of one group (rank, elpd, se, differences, weights)."""
    cols = [c for c in ("rank", "elpd", "se", "p", "elpd_diff", "dse", "weight", "warning",
                        "group") if c in table.columns]
    t = table[cols].copy()
    t.index.name = "model"
    fmts = {c: ".2f" for c in ("elpd", "se", "p", "elpd_diff", "dse")}
    fmts["weight"] = ".3f"
    return Table.from_frame(name, title, t, formats=fmts, caption=caption)


def _est_se(est, se, digits=2) -> str:
    e, s = format_number(est, digits), format_number(se, digits)
    return e if s == "n/a" else f"{e} ({s})"


def scores_table(scores: pd.DataFrame, keys) -> Table:
    """The common-scale scores of every model, with paired differences and the ECE."""
    names = {"log": "log score", "brier": "Brier"}
    cols = ["family", "group", "cv"]
    rows = []
    for model, r in scores.iterrows():
        row = [str(model), str(r.get("family", "")), str(r.get("group", "")),
               str(r.get("cv", ""))]
        for k in keys:
            row.append(_est_se(r[k], r[f"{k}_se"]))
            row.append(_est_se(r[f"{k}_diff"], r[f"{k}_dse"]))
        row.append(format_number(r.get("ece"), 3))
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
    "dispersion": "dispersion phi",
}


def diagnostics_table(diag: pd.DataFrame) -> Table:
    """Sampling and PSIS diagnostics of every model, with readable column names."""
    t = diag[[c for c in _DIAG_COLUMNS if c in diag.columns]].copy()
    t.index.name = "model"
    fmts = {"rhat_max": ".3f", "ess_bulk_min": ".0f", "ess_tail_min": ".0f", "bfmi_min": ".2f",
            "pareto_k_max": ".2f", "dispersion": ".3g"}
    table = Table.from_frame(
        "diagnostics", "Sampling and PSIS diagnostics", t, formats=fmts,
        caption=("Thresholds (ArviZ): R-hat <= 1.01, bulk/tail ESS >= 100 per chain, no "
                 "divergences, E-BFMI >= 0.3, Pareto k below min(1 - 1/log10(S), 0.7). "
                 "Dispersion phi: Pearson dispersion of the labels about the fitted means "
                 "(1: as the family assumes; outside [0.5, 2] an uncalibrated fit's intervals "
                 "are off by a factor sqrt(phi), see Findings)."),
        raw=diag,
    )
    table.columns = [_DIAG_COLUMNS.get(c, c) for c in table.columns]
    return table
