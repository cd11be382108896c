"""Figures for model comparison, as matplotlib Figures (nothing is shown or saved here).

Every function returns a :class:`matplotlib.figure.Figure`; save it with
``fig.savefig("name.png")``. They are drawn with arviz-plots (``plot_compare``,
``plot_ppc_dist``) or plain
matplotlib (``matplotlib.figure.Figure``, without pyplot: no window opens and any backend
works, Agg included). :class:`softbayes.Comparison`
exposes them as ``plot_*`` methods and through :meth:`softbayes.Comparison.figures`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from softbayes.analysis.predict import predict
from softbayes.analysis.scores import reliability_table
from softbayes.io.fits import description_from_fit
from softbayes.terms.description import as_description

__all__ = [
    "conditional_effects",
    "plot_calibration",
    "plot_conditional_effects",
    "plot_elpd_comparison",
    "plot_marginal_effects",
    "plot_ppc_labels",
]

SAMPLE_DIMS = ("chain", "draw")


def _figure(**kwargs):
    """A pyplot-free Figure: no GUI window, no global state, any backend."""
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **kwargs)


def _grid(n_panels, *, width=3.6, height=3.2, max_cols=3):
    n_cols = min(max_cols, max(1, n_panels))
    n_rows = int(np.ceil(n_panels / n_cols))
    fig = _figure(figsize=(max(4.5, width * n_cols), height * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    axes = axes.ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def plot_elpd_comparison(elpd_table: pd.DataFrame, *, title: str | None = None):
    """ELPD comparison plot of one group of comparable fits (``arviz_plots.plot_compare``).

    Parameters
    ----------
    elpd_table : pandas.DataFrame
        A table as returned by ``arviz.compare`` (e.g. ``Comparison.elpd_tables[group]``).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from arviz_plots import plot_compare

    pc = plot_compare(elpd_table, backend="matplotlib")
    fig = pc.viz["figure"].item()
    import matplotlib.pyplot as plt

    plt.close(fig)  # hand the figure to the caller, not to pyplot's registry (still savable)
    if title:
        for ax in fig.axes:
            own = ax.get_title().splitlines()  # arviz-plots: "Model comparison\nhigher is better"
            ax.set_title(f"{title}: {own[-1]}" if own else title)
        fig.set_layout_engine("constrained")
    return fig


def _draw_matrix(draws, n_obs):
    """Per-draw predictions as an ``(S, n[, K])`` array."""
    if hasattr(draws, "dims"):
        dims = [d for d in SAMPLE_DIMS if d in draws.dims]
        other = [d for d in draws.dims if d not in dims]
        arr = draws.transpose(*dims, *other).values
        arr = arr.reshape(-1, *arr.shape[len(dims) :])
    else:
        arr = np.asarray(draws, dtype=float)
    if arr.shape[1] != n_obs:
        raise ValueError(f"draws have {arr.shape[1]} observations, labels {n_obs}.")
    return arr


def plot_calibration(
    labels,
    draws: Mapping[str, object],
    *,
    point: Mapping[str, np.ndarray] | None = None,
    n_bins: int = 10,
    prob: float = 0.9,
    titles: Mapping[str, str] | None = None,
):
    """Reliability diagram per fit: mean soft label against mean prediction, with bands.

    Observations are put into ``n_bins`` equal-width bins of the point prediction (the
    leave-one-out predictive mean when ``point`` gives it, else the posterior mean). In each
    bin the dot is (mean prediction, mean soft label); the shaded band is the central
    ``prob`` posterior interval of the bin's mean predicted :math:`E[y \\mid x]` over
    posterior draws (drawn vertically at the bin's mean prediction): the value the bin's
    mean soft label should have if the fit is right. A calibrated fit keeps the dots on
    the diagonal and inside its band.
    For K classes every class's probability is binned (classwise, pooled).

    Parameters
    ----------
    labels : array_like, shape (n,) or (n, K)
    draws : mapping of str to DataArray or array
        Per fit, per-draw predicted means with dims ``(chain, draw, obs[, class])`` (or an
        ``(S, n[, K])`` array).
    point : mapping of str to array_like, optional
        Per fit, the point predictions used for binning (e.g. LOO predictive means).
    n_bins : int
    prob : float
        Mass of the posterior band.
    titles : mapping of str to str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    labels = np.asarray(labels, dtype=float)
    n = labels.shape[0]
    fig, axes = _grid(len(draws))
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    for ax, (name, dr) in zip(axes, draws.items(), strict=True):
        mat = _draw_matrix(dr, n)
        pt_pred = (
            np.asarray(point[name], dtype=float) if point and name in point else mat.mean(axis=0)
        )
        if labels.ndim == 2:  # classwise, pooled: (n K,) values
            lab_f, pt_f = labels.ravel(), pt_pred.ravel()
            mat_f = mat.reshape(mat.shape[0], -1)
        else:
            lab_f, pt_f, mat_f = labels, pt_pred, mat
        table = reliability_table(pt_f, lab_f, n_bins=n_bins)
        idx = np.clip(np.digitize(pt_f, edges[1:-1], right=True), 0, n_bins - 1)
        lo, hi, centres = [], [], []
        for b in range(n_bins):
            m = idx == b
            if not m.any():
                continue
            per_draw = mat_f[:, m].mean(axis=1)
            lo.append(np.quantile(per_draw, (1 - prob) / 2))
            hi.append(np.quantile(per_draw, (1 + prob) / 2))
            centres.append(pt_f[m].mean())
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="ideal")
        if centres:
            order = np.argsort(centres)
            ax.fill_between(
                np.asarray(centres)[order],
                np.asarray(lo)[order],
                np.asarray(hi)[order],
                color="C0",
                alpha=0.25,
                lw=0,
                label=f"{prob:.0%} posterior band",
            )
        nonempty = table[table["n"] > 0]
        ax.scatter(
            nonempty["mean_pred"],
            nonempty["mean_label"],
            s=12 + 60 * nonempty["n"] / max(1, nonempty["n"].max()),
            color="C1",
            zorder=3,
            label="observed (dot size: count)",
        )
        ax.plot(nonempty["mean_pred"], nonempty["mean_label"], color="C1", lw=1, zorder=2)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("mean predicted E[y | x]")
        ax.set_ylabel("mean soft label")
        ax.set_title((titles or {}).get(name, name))
    if len(axes):
        axes[0].legend(loc="upper left", fontsize="small")
    fig.suptitle("Calibration of predicted means")
    return fig


def plot_ppc_labels(
    labels,
    replicates: Mapping[str, object],
    *,
    n_draws: int = 50,
    seed: int = 0,
    titles: Mapping[str, str] | None = None,
):
    """Posterior predictive check of the labels: ECDF of observed vs replicated labels.

    One panel per fit, drawn by ``arviz_plots.plot_ppc_dist``: the empirical CDF of the
    observed soft labels over the ECDFs of ``n_draws`` replicated label sets drawn from the
    posterior predictive. ECDFs show atoms (labels exactly 0 or 1) and continuous labels
    alike, without a smoothing bandwidth. For K classes the labels of all classes are
    pooled. A label-scale check: for families whose replicates are hard outcomes use
    :func:`softbayes.plot_ppc`, which draws the check their family calls for.

    Parameters
    ----------
    labels : array_like, shape (n,) or (n, K)
    replicates : mapping of str to DataArray or array
        Per fit, posterior predictive label draws, dims ``(chain, draw, obs[, class])`` or an
        ``(S, n[, K])`` array.
    n_draws : int
    seed : int
        Which replicated sets are shown.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import arviz_plots as azp
    import matplotlib.pyplot as plt

    labels = np.asarray(labels, dtype=float)
    n = labels.shape[0]
    rng = np.random.default_rng(seed)
    pp, obs = {}, {}
    for name, rep in replicates.items():
        mat = _draw_matrix(rep, n)
        pick = np.sort(rng.choice(mat.shape[0], size=min(n_draws, mat.shape[0]), replace=False))
        title = (titles or {}).get(name, name)
        # one chain of the shown draws; the classes of K-class labels pooled
        pp[title] = (("chain", "draw", "obs"), mat[pick].reshape(1, pick.size, -1))
        obs[title] = (("obs",), labels.ravel())
    tree = xr.DataTree.from_dict({"posterior_predictive": xr.Dataset(pp),
                                  "observed_data": xr.Dataset(obs)})
    pc = azp.plot_ppc_dist(tree, kind="ecdf", num_samples=min(v[1].shape[1] for v in pp.values()),
                           backend="matplotlib")
    fig = pc.viz["figure"].item()
    plt.close(fig)  # hand the figure to the caller, not to pyplot's registry (still savable)
    fig.suptitle("Posterior predictive check (labels)")
    fig.set_layout_engine("constrained")
    return fig


def plot_marginal_effects(
    effects: Mapping[str, pd.DataFrame],
    *,
    estimate: str = "estimate",
    lower: str = "lower",
    upper: str = "upper",
    term: str = "term",
):
    """Forest plot of marginal effects across fits (one row per term, one colour per fit).

    Marginal effects (changes in :math:`E[y \\mid x]`) are on the same scale in every family,
    unlike coefficients (the Continuous Bernoulli's ``eta`` is not the logit of the mean).

    Parameters
    ----------
    effects : mapping of str to pandas.DataFrame
        Per fit, a table with one row per term and the columns named by ``term``,
        ``estimate``, ``lower`` and ``upper`` (the ``term`` column may be the index).

    Returns
    -------
    matplotlib.figure.Figure
    """
    frames = {}
    for name, df in effects.items():
        df = df.reset_index() if term not in df.columns else df
        missing = [c for c in (term, estimate, lower, upper) if c not in df.columns]
        if missing:
            raise ValueError(
                f"marginal effects of {name!r} lack the columns {missing}; "
                f"columns: {list(df.columns)}."
            )
        frames[name] = df
    terms = list(dict.fromkeys(t for df in frames.values() for t in df[term].astype(str)))
    n_fit = max(1, len(frames))
    fig = _figure(figsize=(6.4, 0.9 + 0.35 * max(1, len(terms)) * n_fit))
    ax = fig.subplots()
    step = 0.8 / n_fit
    for j, (name, df) in enumerate(frames.items()):
        df = df.assign(_t=df[term].astype(str)).set_index("_t")
        ys, est, lo, hi = [], [], [], []
        for i, t in enumerate(terms):
            if t not in df.index:
                continue
            row = df.loc[[t]].iloc[0]
            ys.append(i - 0.4 + step * (j + 0.5))
            est.append(float(row[estimate]))
            lo.append(float(row[lower]))
            hi.append(float(row[upper]))
        est, lo, hi = map(np.asarray, (est, lo, hi))
        ax.errorbar(
            est,
            ys,
            xerr=np.vstack([est - lo, hi - est]),
            fmt="o",
            ms=4,
            capsize=0,
            color=f"C{j}",
            label=name,
        )
    ax.axvline(0.0, color="0.6", lw=1, ls="--")
    ax.set_yticks(np.arange(len(terms)), terms)
    ax.invert_yaxis()
    ax.set_xlabel("marginal effect on E[y | x]")
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title("Average marginal effects across fits (posterior mean, interval)")
    return fig


def _effect_predictors(desc) -> tuple[list[str], set]:
    """The population-level predictors of the model (formula order) and the categorical
    ones among them."""
    names, categorical = [], set()
    for pred in (desc.main, desc.phi):
        if pred is None:
            continue
        for t in pred.design.common_terms:
            names += [v for v in sorted(t.var_names) if v in desc.predictor_columns]
            categorical |= set(t.categorical_vars)
    names = list(dict.fromkeys(names))
    for v in names:
        col = desc.data[v]
        if not pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
            categorical.add(v)
    return names, categorical


def _levels(desc, var) -> list:
    """The levels of a categorical predictor, the model's reference level first."""
    for pred in (desc.main, desc.phi):
        if pred is not None and var in pred.design.levels:
            return list(pred.design.levels[var])
    col = desc.data[var]
    if isinstance(col.dtype, pd.CategoricalDtype):
        return list(col.cat.categories)
    return sorted(pd.unique(col), key=lambda v: (str(type(v)), v))


def _reference_rows(desc, n, numeric, categorical):
    """``n`` rows with every predictor at its training mean (numeric) or reference level;
    grouping factors at a level unseen in training (their effects are then zero: the
    population-level prediction, as brms' ``re_formula = NA``)."""
    rows = desc.data.iloc[[0] * n].reset_index(drop=True)
    for v in desc.predictor_columns:
        col = desc.data[v]
        if v in categorical:
            rows[v] = pd.Series([_levels(desc, v)[0]] * n).astype(col.dtype)
        elif v in numeric:
            rows[v] = float(col.to_numpy(dtype=float).mean())
        elif pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col):
            rows[v] = float(np.nanmax(col.to_numpy(dtype=float))) + 1.0
        else:
            rows[v] = pd.Series(["(population)"] * n, dtype=object)
    return rows


def conditional_effects(model, fit, predictor=None, *, n_points=50, prob=0.9):
    r"""Posterior of :math:`E[y \mid x]` along one predictor, the others held fixed.

    As brms' ``conditional_effects`` and Bambi's ``plot_predictions``: ``predictor`` runs
    over a grid of ``n_points`` values from its training minimum to maximum (every level
    when categorical) while the other predictors stay at their training mean (numeric) or
    reference level (categorical); group-level effects are left out (population-level
    prediction). The mean is the family's :math:`E[y \mid x]` (:func:`softbayes.predict`,
    ``kind="mean"``), on the same scale in every family.

    Parameters
    ----------
    model : softbayes.Model, ModelDescription or None
        The fit's model (None: rebuilt from the fit).
    fit : xarray.DataTree
    predictor : str or list of str, optional
        Predictor column(s) (default: every population-level predictor).
    n_points : int, default 50
        Grid size of a numeric predictor.
    prob : float, default 0.9
        Mass of the equal-tailed credible interval.

    Returns
    -------
    pandas.DataFrame
        Columns ``predictor``, ``value`` (the grid value or level), ``class`` (multiclass
        families), ``estimate`` (posterior mean), ``lower``, ``upper``.
    """
    desc = description_from_fit(fit, check=False) if model is None else as_description(model)
    names, categorical = _effect_predictors(desc)
    wanted = names if predictor is None else (
        [predictor] if isinstance(predictor, str) else list(predictor))
    bad = [v for v in wanted if v not in names]
    if bad:
        raise ValueError(f"predictor {bad} is not a population-level predictor of "
                         f"{desc.formula!r} (those are {names}).")
    numeric = set(names) - categorical
    out = []
    for var in wanted:
        col = desc.data[var]
        if var in categorical:
            grid = _levels(desc, var)
            rows = _reference_rows(desc, len(grid), numeric, categorical)
            rows[var] = pd.Series(grid).astype(col.dtype)
        else:
            v = col.to_numpy(dtype=float)
            grid = np.linspace(v.min(), v.max(), int(n_points))
            rows = _reference_rows(desc, len(grid), numeric, categorical)
            rows[var] = grid
        mean = predict(fit, rows, kind="mean", new_groups="zero", model=desc)
        draws = np.asarray(mean.stack(sample=("chain", "draw")).transpose("sample", ...))
        lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        est = draws.mean(axis=0)
        classes = desc.class_labels if desc.family.multiclass else [None]
        for k, cls in enumerate(classes):
            sl = (slice(None), k) if cls is not None else (slice(None),)
            frame = pd.DataFrame({"predictor": var, "value": list(grid)})
            if cls is not None:
                frame["class"] = cls
            frame["estimate"], frame["lower"], frame["upper"] = est[sl], lo[sl], hi[sl]
            out.append(frame)
    return pd.concat(out, ignore_index=True)


def plot_conditional_effects(model, fit, predictor=None, *, n_points=50, prob=0.9,
                             points=True, title=None):
    r"""Conditional effects on :math:`E[y \mid x]`, one panel per predictor.

    The curves (with credible bands) of :func:`conditional_effects`; categorical
    predictors as points with intervals. ``points`` adds the observed labels against the
    predictor (faint; they vary with the other predictors too). Multiclass families draw
    one curve per class.

    Parameters
    ----------
    model, fit, predictor, n_points, prob
        As in :func:`conditional_effects`.
    points : bool, default True
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    desc = description_from_fit(fit, check=False) if model is None else as_description(model)
    table = conditional_effects(desc, fit, predictor, n_points=n_points, prob=prob)
    names = list(dict.fromkeys(table["predictor"]))
    categorical_vars = _effect_predictors(desc)[1]
    fig, axes = _grid(max(1, len(names)), width=3.4, height=2.9)
    classes = list(dict.fromkeys(table["class"])) if "class" in table else [None]
    for ax, var in zip(axes, names, strict=False):
        t = table[table["predictor"] == var]
        categorical = var in categorical_vars
        for j, cls in enumerate(classes):
            c = t if cls is None else t[t["class"] == cls]
            label = None if cls is None else str(cls)
            if categorical:
                xs = np.arange(len(c)) + (j - (len(classes) - 1) / 2) * 0.12
                ax.errorbar(xs, c["estimate"], yerr=[c["estimate"] - c["lower"],
                            c["upper"] - c["estimate"]], fmt="o", color=f"C{j}", label=label)
                ax.set_xticks(np.arange(len(c)), [str(v) for v in c["value"]])
            else:
                x = c["value"].to_numpy(dtype=float)
                ax.fill_between(x, c["lower"], c["upper"], color=f"C{j}", alpha=0.25, lw=0)
                ax.plot(x, c["estimate"], color=f"C{j}", label=label)
        if points and not categorical and not desc.family.multiclass:
            ax.scatter(desc.data[var], desc.labels, s=4, color="0.5", alpha=0.3, zorder=0)
        ax.set_ylim(0, 1)
        ax.set_xlabel(str(var))
        ax.set_ylabel("E[y | x]")
    if classes != [None] and len(axes):
        axes[0].legend(fontsize="small", title="class")
    fig.suptitle(title or f"Conditional effects on E[y | x] ({prob:.0%} intervals)")
    return fig
