r"""Posterior predictive checks that fit soft labels: reliability, binned means, LOO-PIT.

A family's :attr:`~softbayes.terms.families.base.Family.predictive_check` says which check
applies. The cross-entropy families (``weighted_bernoulli``, ``soft_categorical``) and the
hard ``bernoulli`` draw hard outcomes (0/1 labels, one-hot rows): their replicated labels
never look like soft labels, so an ECDF, KDE or LOO-PIT of the draws against the labels
rejects even the model that generated the data. What they do predict is the mean,
:math:`E[l \mid x] = p(x)`, and that is what :func:`reliability_curve` (PAVA reliability
diagram) and :func:`binned_mean_ppc` check. Density families (Continuous Bernoulli, Beta, ...)
draw labels of the kind observed: :func:`loo_pit` and label-scale PPCs apply to them.

Replicated labels come from the fit's ``posterior_predictive`` group when it holds the
labels, else from the family's own draws
(:func:`softbayes.analysis.predict.predictive_draws`). The observed labels are those the
likelihood sees (the thresholded labels of ``bernoulli``, the squeezed ones of a squeezed
Beta). Multiclass labels are checked class by class (one against the rest for hard outcomes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy.optimize import isotonic_regression

from softbayes.analysis.predict import predict, predictive_draws
from softbayes.io.fits import description_from_fit, fit_likelihood_var
from softbayes.terms.description import as_description

__all__ = ["binned_mean_ppc", "loo_pit", "plot_ppc", "reliability_curve"]

SAMPLE_DIMS = ("chain", "draw")
PPC_KINDS = ("reliability", "binned_means", "ecdf", "kde", "loo_pit")
_DENSITY_KINDS = ("ecdf", "kde", "loo_pit")


def _description(fit, model):
    return description_from_fit(fit, check=False) if model is None else as_description(model)


def _flat(values) -> np.ndarray:
    """``(chain, draw, obs[, class])`` values as an ``(S, n[, K])`` array."""
    arr = np.asarray(values.transpose(*SAMPLE_DIMS, ...).values, dtype=float)
    return arr.reshape(-1, *arr.shape[2:])


def _stored_replicates(fit, desc):
    """The fit's ``posterior_predictive`` labels as ``(S, n[, K])``, or None when absent or
    not shaped like the labels."""
    if "posterior_predictive" not in getattr(fit, "children", {}):
        return None
    pp = fit["posterior_predictive"].to_dataset()
    var = fit_likelihood_var(fit)
    if var not in pp.data_vars:
        if len(pp.data_vars) != 1:
            return None
        var = next(iter(pp.data_vars))
    if not set(SAMPLE_DIMS) <= set(pp[var].dims):
        return None
    arr = _flat(pp[var])
    return arr if arr.shape[1:] == np.shape(desc.labels) else None


def _replicated_labels(fit, *, model=None, random_seed=0) -> np.ndarray:
    """Posterior predictive labels, ``(S, n[, K])``: the fit's ``posterior_predictive``
    group if it holds them, else one draw of the family per posterior draw."""
    desc = _description(fit, model)
    stored = _stored_replicates(fit, desc)
    if stored is not None:
        return stored
    return _flat(predictive_draws(fit, random_seed=random_seed, model=desc))


def _columns(desc, values):
    """``[(name, values[..., k])]``: one entry per class (one against the rest for hard
    outcomes, the class's marginal for densities) or one."""
    if not desc.family.multiclass:
        return [(str(desc.label_columns[0]), values)]
    rest = " vs rest" if desc.family.predictive_check == "reliability" else ""
    return [(f"{c}{rest}", values[..., k]) for k, c in enumerate(desc.class_labels)]


def _subsample(arr, n_draws, rng):
    if n_draws is None or n_draws >= arr.shape[0]:
        return arr
    return arr[np.sort(rng.choice(arr.shape[0], size=n_draws, replace=False))]


def _pava(x, y):
    """Isotonic (non-decreasing) regression of ``y`` on ``x``, ties in ``x`` pooled first
    (as scikit-learn does); returned in the order of ``np.sort(x)``."""
    xs, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=y, minlength=xs.size) / counts
    fitted = isotonic_regression(means, weights=counts.astype(float)).x
    return np.repeat(fitted, counts)


def _checked_prob(prob):
    prob = float(prob)
    if not 0.0 < prob < 1.0:
        raise ValueError(f"prob must lie strictly between 0 and 1, got {prob}.")
    return prob


def _per_class(fit, model, prob, n_draws, random_seed):
    """``(prob, [(class name, posterior mean prediction, labels, replicated labels)])``, one
    entry per label column (one-vs-rest for K classes), for the checks on the mean scale."""
    prob = _checked_prob(prob)
    desc = _description(fit, model)
    rng = np.random.default_rng(random_seed)
    mean = _flat(predict(fit, kind="mean", model=desc)).mean(axis=0)
    reps = _subsample(_replicated_labels(fit, model=desc, random_seed=random_seed), n_draws, rng)
    columns = zip(_columns(desc, mean), _columns(desc, desc.labels), _columns(desc, reps),
                  strict=True)
    return prob, [(name, pred, lab, rep) for (name, pred), (_, lab), (_, rep) in columns]


def reliability_curve(fit, *, model=None, prob=0.9, n_draws=200, random_seed=0):
    r"""Reliability diagram data: PAVA of the labels on the predicted mean, with PPC bands.

    The observed curve is the isotonic (pool-adjacent-violators) regression of the labels on
    the posterior mean prediction :math:`\bar p_i = E[E[y_i \mid x_i]]` (over posterior
    draws): the conditional event probability, CEP. A model whose predicted mean is right
    keeps it on the diagonal. The band is the central ``prob`` interval, at each
    :math:`\bar p_i`, of the same PAVA curve fitted to replicated labels (one replicated
    label set per posterior draw): how far from the diagonal a correct model's curve
    wanders. For the hard-outcome families the replicates are 0/1 draws, noisier than soft
    labels with the same mean, so the band is conservative (wide) for soft labels.

    Parameters
    ----------
    fit : xarray.DataTree
    model : softbayes.Model or ModelDescription, optional
        The fit's model (default: rebuilt from the fit).
    prob : float, default 0.9
        Mass of the band.
    n_draws : int or None, default 200
        Replicated label sets used for the band (None: every draw).
    random_seed : int, optional
        Seeds the replicated labels and the choice of draws.

    Returns
    -------
    pandas.DataFrame
        One row per observation (and class): ``class`` (the label column, or ``"<class>
        vs rest"``), ``predicted`` (sorted), ``observed`` (the CEP), ``lower``, ``upper``.
    """
    prob, columns = _per_class(fit, model, prob, n_draws, random_seed)
    frames = []
    for name, pred, lab, rep in columns:
        order = np.argsort(pred, kind="stable")
        curves = np.stack([_pava(pred, r) for r in rep])
        lo, hi = np.quantile(curves, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        frames.append(pd.DataFrame({"class": name, "predicted": pred[order],
                                    "observed": _pava(pred, lab), "lower": lo, "upper": hi}))
    return pd.concat(frames, ignore_index=True)


def _bin_index(pred, bins):
    """Bin of each prediction: ``bins`` equal-count (quantile) bins, or explicit edges."""
    if np.ndim(bins) == 0:
        k = int(bins)
        if k < 1:
            raise ValueError(f"bins must be a positive integer or edges, got {bins!r}.")
        edges = np.quantile(pred, np.linspace(0.0, 1.0, k + 1))
    else:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("bins: edges must be an increasing 1-D sequence of 2 or more.")
    idx = np.clip(np.searchsorted(edges, pred, side="right") - 1, 0, edges.size - 2)
    return idx, edges


def binned_mean_ppc(fit, bins=10, *, model=None, prob=0.9, n_draws=None, random_seed=0):
    r"""Observed mean label per bin of the predicted mean against its posterior predictive.

    Observations are binned by their posterior mean prediction :math:`\bar p_i`. In each
    bin the observed mean label is compared with the distribution of the same mean over
    replicated label sets (one per posterior draw). The check holds for soft labels under
    a cross-entropy family, whose replicates are 0/1: a bin mean has expectation
    :math:`\text{mean}_i\, p(x_i)` whether the labels are soft or hard, and the variance of
    soft labels with mean :math:`p` is at most that of 0/1 outcomes, so a correct model's
    observed means fall inside the central ``prob`` band at least that often. Means are
    unweighted: :math:`E[l_i \mid x_i] = p(x_i)` row by row, whatever the row weights.

    Parameters
    ----------
    fit : xarray.DataTree
    bins : int or sequence of float, default 10
        Number of equal-count bins (quantiles of the predictions), or bin edges.
    model : softbayes.Model or ModelDescription, optional
    prob : float, default 0.9
    n_draws : int, optional
        Replicated label sets used (default: every draw).
    random_seed : int, optional

    Returns
    -------
    pandas.DataFrame
        One row per (class and) non-empty bin: ``class``, ``bin``, ``left``, ``right``
        (edges), ``n``, ``predicted`` (mean :math:`\bar p`), ``observed`` (mean label),
        ``replicated`` (mean of the replicated bin means), ``lower``, ``upper``,
        ``p_value`` (two-sided posterior predictive p-value) and ``inside``.
    """
    prob, columns = _per_class(fit, model, prob, n_draws, random_seed)
    rows = []
    for name, pred, lab, rep in columns:
        idx, edges = _bin_index(pred, bins)
        for b in np.unique(idx):
            m = idx == b
            obs = float(lab[m].mean())
            rep_means = rep[:, m].mean(axis=1)
            lo, hi = np.quantile(rep_means, [(1 - prob) / 2, (1 + prob) / 2])
            tail = min(np.mean(rep_means <= obs), np.mean(rep_means >= obs))
            rows.append({"class": name, "bin": int(b), "left": edges[b], "right": edges[b + 1],
                         "n": int(m.sum()), "predicted": float(pred[m].mean()),
                         "observed": obs, "replicated": float(rep_means.mean()),
                         "lower": float(lo), "upper": float(hi),
                         "p_value": float(min(1.0, 2 * tail)),
                         "inside": bool(lo <= obs <= hi)})
    return pd.DataFrame(rows)


def _require_density_check(family, what: str) -> None:
    """Raise a ValueError when ``what`` (a label-scale check) does not apply to ``family``:
    its posterior predictive draws are hard outcomes, not labels of the kind observed."""
    if family.predictive_check == "density":
        return
    raise ValueError(
        f"{what} compares replicated labels with the observed ones, but the {family.name} "
        "family's posterior predictive draws are hard outcomes (0/1 labels or one-hot rows), "
        "not soft labels: it would reject even the model that generated the data. Check "
        "what the family predicts, the mean E[l | x], with softbayes.reliability_curve or "
        "softbayes.binned_mean_ppc (plot_ppc(fit, kind='reliability' or 'binned_means'))."
    )


def _check_tree(fit, desc, reps, *, log_likelihood=False):
    """A DataTree for ArviZ: per label column (or class), the observed and replicated
    labels (and the pointwise log-likelihood) under one shared variable name."""
    chains, draws = fit["posterior"].sizes["chain"], fit["posterior"].sizes["draw"]
    # every draw keeps its chain (LOO-PIT pairs draws with log-likelihoods); a subsample
    # is one chain
    shape = (chains, draws) if reps.shape[0] == chains * draws else (1, reps.shape[0])
    reps = reps.reshape(*shape, *reps.shape[1:])
    obs_dims = ("obs",)
    groups = {"posterior_predictive": {}, "observed_data": {}}
    if log_likelihood:
        var = fit_likelihood_var(fit)
        ll_ds = fit["log_likelihood"].to_dataset()
        ll = ll_ds[var if var in ll_ds else next(iter(ll_ds.data_vars))]
        ll = ll.transpose(*SAMPLE_DIMS, ...).values.reshape(chains, draws, -1)
        groups["log_likelihood"] = {}
        groups["posterior"] = fit["posterior"].to_dataset()
    for (name, r), (_, lab) in zip(_columns(desc, reps), _columns(desc, desc.labels),
                                   strict=True):
        groups["posterior_predictive"][name] = xr.DataArray(r, dims=(*SAMPLE_DIMS, *obs_dims))
        groups["observed_data"][name] = xr.DataArray(lab, dims=obs_dims)
        if log_likelihood:
            groups["log_likelihood"][name] = xr.DataArray(ll, dims=(*SAMPLE_DIMS, *obs_dims))
    return xr.DataTree.from_dict({g: v if isinstance(v, xr.Dataset) else xr.Dataset(v)
                                  for g, v in groups.items()})


def loo_pit(fit, *, model=None, random_seed=0):
    r"""LOO-PIT values of the labels, :math:`P(\tilde y_i \le y_i \mid y_{-i})` (density
    families only).

    Computed by :func:`arviz_stats.loo_pit` (PSIS weights from the fit's pointwise
    log-likelihood; ties of discrete labels broken at random) on replicated labels drawn
    from every posterior draw. A calibrated model's values are uniform on [0, 1].

    Parameters
    ----------
    fit : xarray.DataTree
        A fit with a ``log_likelihood`` group.
    model : softbayes.Model or ModelDescription, optional
    random_seed : int, optional

    Returns
    -------
    xarray.Dataset
        One variable per label column (per class of a multiclass family: the PIT of its
        marginal), over ``obs``.

    Raises
    ------
    ValueError
        For families whose replicated labels are hard outcomes (cross-entropy families and
        the hard Bernoulli): use :func:`reliability_curve` or :func:`binned_mean_ppc`.
    """
    from arviz_stats import loo_pit as az_loo_pit

    desc = _description(fit, model)
    _require_density_check(desc.family, "LOO-PIT")
    if "log_likelihood" not in fit.children:
        raise ValueError("loo_pit needs the fit's log_likelihood group (fit with "
                         "log_likelihood=True, or add it with softbayes.compute_log_likelihood).")
    reps = _replicated_labels(fit, model=desc, random_seed=random_seed)
    tree = _check_tree(fit, desc, reps, log_likelihood=True)
    out = az_loo_pit(tree, random_state=random_seed)
    return out if isinstance(out, xr.Dataset) else xr.Dataset({"pit": out})


def _figure_of(pc, title):
    """The matplotlib Figure of an arviz-plots PlotCollection, off pyplot's registry."""
    import matplotlib.pyplot as plt

    fig = pc.viz["figure"].item()
    plt.close(fig)  # hand the figure to the caller (still savable)
    if title:
        fig.suptitle(title)
    fig.set_layout_engine("constrained")  # room for the title and labels added here
    return fig


def _label_axes(pc, xlabel, ylabel):
    for ax in pc.viz["figure"].item().axes:
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    return pc


def _plot_binned(table, prob, title):
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(table["class"]))
    fig = Figure(figsize=(3.8 * len(names), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(names), squeeze=False).ravel())
    for ax, name in zip(axes, names, strict=True):
        t = table[table["class"] == name]
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
        ax.vlines(t["predicted"], t["lower"], t["upper"], color="C0", lw=4, alpha=0.4,
                  label=f"{prob:.0%} posterior predictive")
        ax.scatter(t["predicted"], t["observed"], color=np.where(t["inside"], "C1", "C3"),
                   zorder=3, s=18, label="observed bin mean")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("mean predicted E[y | x]")
        ax.set_ylabel("mean label")
        ax.set_title(name, fontsize="medium")
    axes[0].legend(loc="upper left", fontsize="small")
    fig.suptitle(title or "Binned-mean posterior predictive check")
    return fig


def plot_ppc(fit, *, model=None, kind=None, prob=0.9, n_draws=None, bins=10,
             random_seed=0, title=None):
    """The posterior predictive check that fits the fit's family, as a matplotlib Figure.

    Parameters
    ----------
    fit : xarray.DataTree
    model : softbayes.Model or ModelDescription, optional
    kind : {"reliability", "binned_means", "ecdf", "kde", "loo_pit"}, optional
        Default: ``"reliability"`` for families whose draws are hard outcomes (a PAVA
        reliability diagram, :func:`arviz_plots.plot_ppc_pava`), ``"ecdf"`` for density
        families (:func:`arviz_plots.plot_ppc_dist`). ``"binned_means"`` draws
        :func:`binned_mean_ppc`; ``"loo_pit"`` :func:`arviz_plots.plot_loo_pit`. The
        label-scale kinds (``"ecdf"``, ``"kde"``, ``"loo_pit"``) raise a ValueError for
        families whose draws are hard outcomes.
    prob : float, default 0.9
        Mass of the bands.
    n_draws : int, optional
        Replicated label sets drawn (default: 500 for ``"reliability"``, whose x axis is
        their mean; 50 for ``"ecdf"`` / ``"kde"``; every draw otherwise).
    bins : int or sequence of float
        Bins of ``"binned_means"``.
    random_seed : int, optional
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import arviz_plots as azp

    desc = _description(fit, model)
    kind = desc.family.predictive_check if kind is None else kind
    kind = {"density": "ecdf"}.get(kind, kind)
    if kind not in PPC_KINDS:
        raise ValueError(f"kind must be one of {PPC_KINDS}, got {kind!r}.")
    prob = _checked_prob(prob)
    if kind in _DENSITY_KINDS:
        _require_density_check(desc.family, f"plot_ppc(kind={kind!r})")
    if kind == "binned_means":
        table = binned_mean_ppc(fit, bins, model=desc, prob=prob, n_draws=n_draws,
                                random_seed=random_seed)
        return _plot_binned(table, prob, title)
    rng = np.random.default_rng(random_seed)
    reps = _replicated_labels(fit, model=desc, random_seed=random_seed)
    if kind == "loo_pit":
        tree = _check_tree(fit, desc, reps, log_likelihood=True)
        return _figure_of(azp.plot_loo_pit(tree, envelope_prob=prob, backend="matplotlib"),
                          title)
    default = {"reliability": 500, "ecdf": 50, "kde": 50}[kind]
    tree = _check_tree(fit, desc, _subsample(reps, n_draws or default, rng))
    if kind == "reliability":
        pc = azp.plot_ppc_pava(tree, ci_prob=prob, backend="matplotlib")
        return _figure_of(_label_axes(pc, "posterior mean prediction",
                                      "PAVA mean of the labels (CEP)"), title)
    else:
        pc = azp.plot_ppc_dist(tree, kind=kind, num_samples=n_draws or default,
                               backend="matplotlib")
    return _figure_of(pc, title)
