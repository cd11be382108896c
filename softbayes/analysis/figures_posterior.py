"""A fit's posterior in tables and figures: intervals, group-level effects, rank plots, Pareto k.

The parameters a reader looks at are the *population-level* ones (intercepts, slopes, the
parts of a precision formula, group-level standard deviations), flattened into one
``(chain, draw)`` variable per element (``x``, ``x[b]``, ``Intercept[class 2]``) by
:func:`population_draws`; the *group-level effects* (one value per level of a ``(1|g)``
term) come from :func:`group_effect_terms` and :func:`group_draws`. :func:`interval_table`
summarizes such draws (mean, sd, highest-density interval, bulk ESS, R-hat). The figures are
drawn with arviz-plots (``plot_forest``, ``plot_rank``, ``plot_khat``) on matplotlib and
returned as :class:`matplotlib.figure.Figure` objects that pyplot does not keep (nothing is
shown; save them with ``fig.savefig``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "GROUP_LEVEL_DIM_SUFFIX",
    "HDI_PROB",
    "INNER_PROB",
    "group_draws",
    "group_effect_terms",
    "interval_table",
    "plot_group_effects",
    "plot_pareto_k",
    "plot_posterior_forest",
    "plot_rank_draws",
    "population_draws",
]

SAMPLE_DIMS = ("chain", "draw")
#: The dim of a group-level effect's levels ends with this (``"1|g__factor_dim"``).
GROUP_LEVEL_DIM_SUFFIX = "__factor_dim"
#: Mass of the outer (highest-density) interval of the tables and forest plots.
HDI_PROB = 0.94
#: Mass of the inner interval of the forest plots.
INNER_PROB = 0.5
_WIDTH = 7.2  # inches: 691 px at the report's 96 dpi, inside the report's column


def _posterior(fit) -> xr.Dataset:
    post = fit["posterior"]
    return post.to_dataset() if hasattr(post, "to_dataset") else post


def _elements(da: xr.DataArray, name: str, skip=()) -> dict[str, xr.DataArray]:
    """``name`` or ``name[a, b]`` -> ``(chain, draw)`` draws of each element of ``da`` over
    its non-sample dims except ``skip`` (those stay and are labelled by the caller)."""
    other = [d for d in da.dims if d not in SAMPLE_DIMS and d not in skip]
    if not other:
        return {name: da}
    stacked = da.stack(_element=other)
    out = {}
    for j in range(stacked.sizes["_element"]):
        idx = stacked["_element"].values[j]
        idx = idx if isinstance(idx, tuple) else (idx,)
        label = ", ".join(str(v) for v in idx)
        out[f"{name}[{label}]"] = stacked.isel(_element=j, drop=True)
    return out


def _is_group_effect(da: xr.DataArray) -> bool:
    return any(str(d).endswith(GROUP_LEVEL_DIM_SUFFIX) for d in da.dims)


def population_draws(fit) -> xr.Dataset:
    """The population-level parameters of ``fit``, one ``(chain, draw)`` variable per element.

    Intercepts, slopes, parameters of a precision formula and the standard deviations of
    group-level terms; left out are the sampled centred intercept (``*Intercept_centered``),
    the non-centred offsets (``*_offset``) and the per-level group effects.
    """
    out = {}
    for var, da in _posterior(fit).data_vars.items():
        name = str(var)
        if name.endswith("_offset") or name.endswith("Intercept_centered"):
            continue
        if _is_group_effect(da) or not np.issubdtype(da.dtype, np.number):
            continue
        out.update(_elements(da.transpose(*SAMPLE_DIMS, ...), name))
    # intercepts first, as in a model summary (the posterior stores them after the slopes)
    order = sorted(out, key=lambda k: not k.split("[")[0].endswith("Intercept"))
    return xr.Dataset({k: out[k].reset_coords(drop=True) for k in order})


def group_effect_terms(fit) -> list[str]:
    """The group-level effect variables of ``fit`` (``"1|g"``, ``"x|g"``), in posterior order."""
    return [str(v) for v, da in _posterior(fit).data_vars.items()
            if _is_group_effect(da) and not str(v).endswith("_offset")]


def group_draws(fit, term: str) -> tuple[xr.Dataset, xr.Dataset]:
    """``(standard deviations, effects)`` of the group-level term ``term``.

    The effects hold one ``(chain, draw)`` variable per level (``"1|g[a]"``; for several
    expressions or classes ``"x|g[a, x]"``); the standard deviations those of
    ``<term>_sigma`` (empty when the fit lacks it).
    """
    post = _posterior(fit)
    da = post[term].transpose(*SAMPLE_DIMS, ...)
    effects = _elements(da, term)
    sd_name = f"{term}_sigma"
    sds = _elements(post[sd_name].transpose(*SAMPLE_DIMS, ...), sd_name) if sd_name in post else {}

    def clean(d):
        return xr.Dataset({k: v.reset_coords(drop=True) for k, v in d.items()})

    return clean(sds), clean(effects)


def interval_table(draws: xr.Dataset, prob: float = HDI_PROB) -> pd.DataFrame:
    """Posterior mean, sd, ``prob`` highest-density interval, bulk ESS and R-hat per variable.

    Parameters
    ----------
    draws : xarray.Dataset
        ``(chain, draw)`` variables (e.g. from :func:`population_draws`).
    prob : float
        Mass of the highest-density interval (ArviZ's ``hdi``, "nearest" method).

    Returns
    -------
    pandas.DataFrame
        Columns ``term, mean, sd, hdi_lower, hdi_upper, ess_bulk, r_hat``.
    """
    import arviz_stats as azs

    cols = ["term", "mean", "sd", "hdi_lower", "hdi_upper", "ess_bulk", "r_hat"]
    if not draws.data_vars:
        return pd.DataFrame(columns=cols)
    hdi = azs.hdi(draws, prob=prob, dim=list(SAMPLE_DIMS))
    ess = azs.ess(draws, method="bulk")
    rhat = azs.rhat(draws) if draws.sizes.get("chain", 1) > 1 else None
    rows = []
    for name, da in draws.data_vars.items():
        v = np.asarray(da.values, dtype=float).ravel()
        bounds = np.asarray(hdi[name].values, dtype=float).ravel()
        rows.append({
            "term": str(name), "mean": float(v.mean()),
            "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "hdi_lower": float(bounds[0]), "hdi_upper": float(bounds[-1]),
            "ess_bulk": float(ess[name]), "r_hat": np.nan if rhat is None else float(rhat[name]),
        })
    return pd.DataFrame(rows, columns=cols)


def _detach(pc):
    """The figure of an arviz-plots collection, released from pyplot's registry."""
    import matplotlib.pyplot as plt

    fig = pc.viz["figure"].item()
    plt.close(fig)  # the caller owns it (still savable)
    return fig


def _tree(ds: xr.Dataset):
    return xr.DataTree.from_dict({"posterior": ds})


def _zero_line(fig):
    for ax in fig.axes[1:]:
        ax.axvline(0.0, color="0.7", lw=0.8, ls="--", zorder=0)


def plot_posterior_forest(draws: Mapping[str, xr.Dataset], *, title: str | None = None):
    """Forest plot of several fits' parameters: 50% and 94% highest-density intervals and
    the posterior mean (``arviz_plots.plot_forest``), one colour per fit.

    Parameters
    ----------
    draws : mapping of str to xarray.Dataset
        Fit name -> ``(chain, draw)`` variables (e.g. :func:`population_draws`); a variable
        missing from a fit is left out for that fit.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from arviz_plots import plot_forest

    names = list(dict.fromkeys(str(v) for ds in draws.values() for v in ds.data_vars))
    n_rows = sum(len(ds.data_vars) for ds in draws.values())
    height = 1.2 + 0.15 * n_rows + 0.12 * len(names) + (0.3 if len(draws) > 1 else 0.0)
    pc = plot_forest(
        {str(k): _tree(v) for k, v in draws.items()} if len(draws) > 1
        else _tree(next(iter(draws.values()))),
        combined=True, point_estimate="mean", ci_kind="hdi", ci_probs=(INNER_PROB, HDI_PROB),
        labels=["__variable__"], backend="matplotlib",
        figure_kwargs={"figsize": (_WIDTH, height), "layout": "constrained",
                       "width_ratios": [1, 2.4]},
    )
    if len(draws) > 1:
        pc.add_legend("model", loc="outside lower center", ncols=min(len(draws), 2), title=None)
    fig = _detach(pc)
    _zero_line(fig)
    if title:
        fig.suptitle(title)
    return fig


def plot_group_effects(sd: xr.Dataset, effects: xr.Dataset, *, title: str | None = None,
                       max_levels: int = 40):
    """Forest plot of a group-level term: its standard deviation(s) and the effect of each
    level (50% and 94% highest-density intervals, posterior mean).

    With more than ``max_levels`` levels, those with the largest absolute posterior mean
    are shown (the title says so).

    Returns
    -------
    matplotlib.figure.Figure
    """
    keep = list(effects.data_vars)
    if len(keep) > max_levels:
        size = {k: abs(float(effects[k].mean())) for k in keep}
        keep = sorted(keep, key=lambda k: -size[k])[:max_levels]
        keep = [k for k in effects.data_vars if k in keep]
        title = f"{title or ''} ({max_levels} of {len(effects.data_vars)} levels: the largest)"
    ds = xr.merge([sd, effects[keep]])
    return plot_posterior_forest({"": ds}, title=title)


def plot_rank_draws(draws: xr.Dataset, *, max_panels: int = 8, title: str | None = None):
    """Rank plots (``arviz_plots.plot_rank``: per chain, the ECDF of the fractional ranks of
    its draws minus the uniform ECDF, with the multi-chain test's p-value; draws thinned by
    their ESS) of up to ``max_panels`` variables; with more, those with the largest R-hat
    (the title says so).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from arviz_plots import plot_rank

    names = [str(v) for v in draws.data_vars]
    if len(names) > max_panels:
        import arviz_stats as azs

        rhat = azs.rhat(draws)
        worst = sorted(names, key=lambda n: -np.nan_to_num(float(rhat[n]), nan=0.0))
        worst = worst[:max_panels]
        names = [n for n in names if n in worst]
        title = (f"{title or 'Rank plots'} ({max_panels} of {len(draws.data_vars)} "
                 "parameters: the largest R-hat)")
    cols = min(4, len(names))
    rows = int(np.ceil(len(names) / cols))
    pc = plot_rank(
        _tree(draws[names]), backend="matplotlib", col_wrap=cols, thin=True,
        visuals={"xlabel": False},
        figure_kwargs={"figsize": (_WIDTH, 0.5 + 1.5 * rows), "layout": "constrained"},
    )
    fig = _detach(pc)
    if title:
        fig.suptitle(title)
    return fig


def plot_pareto_k(elpd_data, threshold: float, *, title: str | None = None):
    """PSIS Pareto :math:`\\hat k` per observation (``arviz_plots.plot_khat``) with the
    reliability threshold and 1 drawn as lines; points above the threshold are labelled.

    Parameters
    ----------
    elpd_data : arviz_stats ELPDData
        A PSIS-LOO result with ``pareto_k``.
    threshold : float
        E.g. :func:`softbayes.analysis.diagnostics.pareto_k_threshold` of the draws.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from arviz_plots import plot_khat

    pc = plot_khat(
        elpd_data, threshold=threshold, hline_values=[threshold, 1.0],
        visuals={"hlines": {"color": "C3", "ls": "--", "lw": 1.0}}, backend="matplotlib",
        figure_kwargs={"figsize": (_WIDTH / 2 + 0.4, 2.6), "layout": "constrained"},
    )
    fig = _detach(pc)
    ax = fig.axes[0]
    ax.set_xlabel("observation")
    ax.set_ylabel("Pareto k")
    k = np.asarray(elpd_data.pareto_k.values, dtype=float)
    if np.isfinite(k).any():
        ax.set_ylim(min(-0.1, np.nanmin(k) - 0.05), max(1.1, np.nanmax(k) + 0.1))
    ax.text(0.99, threshold, f" k = {threshold:.2f}", transform=ax.get_yaxis_transform(),
            ha="right", va="bottom", fontsize="small", color="C3")
    if title:
        ax.set_title(title)
    return fig
