"""Sampling and PSIS diagnostics of one fit, with plain-language warnings.

Thresholds are the ones ArviZ documents:

* R-hat (rank-normalized, split) above ``1.01``;
* bulk or tail ESS below ``100`` per chain (``400`` for the usual 4 chains);
* any divergent transition;
* E-BFMI below ``0.3`` in any chain;
* Pareto :math:`\\hat k` above ``min(1 - 1/log10(S), 0.7)`` for ``S`` posterior draws, the
  threshold above which PSIS estimates are unreliable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

# one source for the thresholds: the backend warns with them after every NUTS fit
from softbayes.backend.convergence import BFMI_MIN, ESS_MIN_PER_CHAIN, RHAT_MAX
from softbayes.io.fits import posterior_dataset

__all__ = [
    "BFMI_MIN",
    "ESS_MIN_PER_CHAIN",
    "RHAT_MAX",
    "FitDiagnostics",
    "diagnose_fit",
    "pareto_k_threshold",
]

SAMPLE_DIMS = ("chain", "draw")


def pareto_k_threshold(n_samples: int) -> float:
    """ArviZ's reliability threshold for Pareto :math:`\\hat k`: ``min(1 - 1/log10(S), 0.7)``."""
    if n_samples <= 1:
        return 0.7
    return float(min(1.0 - 1.0 / np.log10(n_samples), 0.7))


@dataclass
class FitDiagnostics:
    """Convergence and PSIS diagnostics of one fit.

    Attributes
    ----------
    name : str
    n_chains, n_draws : int
    rhat_max : float
        Largest rank-normalized split R-hat over all posterior variables and elements.
    ess_bulk_min, ess_tail_min : float
        Smallest bulk / tail effective sample size.
    ess_min : float
        The ESS threshold used (``ess_min_per_chain * n_chains``).
    n_divergent : int or None
        Divergent transitions after tuning (``None``: the fit has no such statistic).
    bfmi_min : float or None
        Smallest E-BFMI over chains (``None``: no ``energy`` statistic).
    pareto_k_max : float or None
    pareto_k_threshold : float or None
    n_k_good, n_k_bad, n_k_very_bad : int or None
        Observations with :math:`\\hat k \\le` threshold, threshold < :math:`\\hat k \\le 1`,
        and :math:`\\hat k > 1`.
    n_nonfinite : int
        Posterior draws (chain, draw pairs) with a NaN or infinite value in any variable:
        unfinished chains padded with NaN, or a sampler failure. Any is an error.
    n_sampling_warnings : int
        The warnings about the sampling itself (non-finite draws, R-hat, ESS, divergences,
        E-BFMI), not about PSIS-LOO: a fit with any is not one to prefer or to read
        estimates from until it is sampled again.
    warnings : list of str
        One plain sentence per crossed threshold.
    """

    name: str
    n_chains: int
    n_draws: int
    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    ess_min: float
    n_divergent: int | None
    bfmi_min: float | None
    pareto_k_max: float | None = None
    pareto_k_threshold: float | None = None
    n_k_good: int | None = None
    n_k_bad: int | None = None
    n_k_very_bad: int | None = None
    n_nonfinite: int = 0
    n_sampling_warnings: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no threshold is crossed."""
        return not self.warnings

    def as_dict(self) -> dict:
        """One row of :attr:`softbayes.Comparison.diagnostics`: the fields, warnings counted."""
        row = asdict(self)
        row["n_warnings"] = len(row.pop("warnings"))
        return row

    def as_series(self) -> pd.Series:
        """:meth:`as_dict` as a Series named after the fit (values upcast to one dtype)."""
        row = self.as_dict()
        return pd.Series(row, name=row.pop("name"))


def _posterior(fit) -> xr.Dataset:
    return posterior_dataset(fit)  # the sampled centred intercepts are diagnosed too


def _group(fit, name):
    try:
        grp = fit[name]
    except KeyError:
        return None
    return grp.to_dataset() if hasattr(grp, "to_dataset") else grp


def _extreme(ds: xr.Dataset, how) -> float:
    values = [np.asarray(da.values, dtype=float).ravel() for da in ds.data_vars.values()]
    values = [v for v in values if v.size]
    if not values:
        return float("nan")
    allv = np.concatenate(values)
    if np.all(np.isnan(allv)):
        return float("nan")
    return float(how(allv))


def _numeric_posterior(post: xr.Dataset, var_names) -> xr.Dataset:
    names = var_names or [
        n
        for n, da in post.data_vars.items()
        if np.issubdtype(da.dtype, np.number) and set(SAMPLE_DIMS) <= set(da.dims)
    ]
    return post[list(names)]


def _nonfinite_draws(post: xr.Dataset) -> int:
    """Number of (chain, draw) pairs with a NaN or infinite value in any variable."""
    bad = np.zeros((post.sizes["chain"], post.sizes["draw"]), dtype=bool)
    for da in post.data_vars.values():
        values = np.asarray(da.transpose("chain", "draw", ...).values, dtype=float)
        bad |= ~np.isfinite(values.reshape(values.shape[0], values.shape[1], -1)).all(axis=2)
    return int(bad.sum())


def _sampler_stats(fit):
    """Divergent transitions after tuning and the smallest E-BFMI (``None`` when the fit
    lacks the statistic)."""
    from arviz_stats import bfmi as az_bfmi

    stats = _group(fit, "sample_stats")
    n_div = None
    bfmi_value = None
    if stats is None:
        return n_div, bfmi_value
    if "diverging" in stats:
        div = stats["diverging"]
        if "tuning" in stats:  # nutpie keeps tuning draws only when asked; drop them
            div = div.where(~stats["tuning"].astype(bool), False)
        n_div = int(np.asarray(div.values, dtype=bool).sum())
    if "energy" in stats:
        bf = az_bfmi(stats[["energy"]])
        bf = bf.to_dataset() if hasattr(bf, "to_dataset") else bf
        bfmi_value = float(np.nanmin(np.asarray(bf["energy"].values, dtype=float)))
    return n_div, bfmi_value


def _pareto_counts(pareto_k, n_samples):
    """Largest Pareto k, the threshold, and the counts of good, bad and very bad k (all
    ``None`` without Pareto k values)."""
    if pareto_k is None:
        return None, None, None, None, None
    k = np.asarray(getattr(pareto_k, "values", pareto_k), dtype=float).ravel()
    k_thr = pareto_k_threshold(n_samples)
    k_max = float(np.nanmax(k)) if k.size else float("nan")
    n_good = int(np.sum(k <= k_thr))
    n_bad = int(np.sum((k > k_thr) & (k <= 1.0)))
    n_very_bad = int(np.sum(k > 1.0))
    return k_max, k_thr, n_good, n_bad, n_very_bad


def _sampling_warnings(name, n_chains, rhat, rhat_max, ess_bulk, ess_tail, ess_min,
                       ess_min_per_chain) -> list[str]:
    """Warnings for too few chains, a high R-hat and a low bulk or tail ESS."""
    warns = []
    if n_chains < 2:
        warns.append(
            f"{name}: only one chain; R-hat cannot be computed, run at least 2 (ArviZ "
            f"recommends 4) chains to check convergence."
        )
    elif not np.isnan(rhat) and rhat > rhat_max:
        warns.append(
            f"{name}: R-hat is {rhat:.3f} > {rhat_max}; the chains have not converged to the "
            f"same distribution. Do not use this fit's estimates; run longer or reparametrize."
        )
    for kind, value in (("bulk", ess_bulk), ("tail", ess_tail)):
        if not np.isnan(value) and value < ess_min:
            warns.append(
                f"{name}: smallest {kind} ESS is {value:.0f} < {ess_min:.0f} "
                f"({ess_min_per_chain:g} per chain); too few effective draws for reliable "
                f"{'means' if kind == 'bulk' else 'intervals'}. Draw more samples."
            )
    return warns


def diagnose_fit(
    fit,
    *,
    name: str = "model",
    var_names=None,
    elpd_data=None,
    pareto_k=None,
    rhat_max: float = RHAT_MAX,
    ess_min_per_chain: float = ESS_MIN_PER_CHAIN,
    bfmi_min: float = BFMI_MIN,
) -> FitDiagnostics:
    """Diagnose one fit: R-hat, bulk/tail ESS, divergences, E-BFMI and Pareto :math:`\\hat k`.

    Parameters
    ----------
    fit : xarray.DataTree
        A fit with a ``posterior`` group (``sample_stats`` used when present).
    name : str
        Name used in the warnings.
    var_names : list of str, optional
        Posterior variables to check (default: every numeric variable).
    elpd_data : arviz ELPDData, optional
        A pointwise PSIS-LOO result (``az.loo(..., pointwise=True)``) whose Pareto
        :math:`\\hat k` values are counted. Alternatively give ``pareto_k`` directly.
    pareto_k : array_like, optional
        Pointwise Pareto :math:`\\hat k` values.
    rhat_max, ess_min_per_chain, bfmi_min : float
        Thresholds (ArviZ's documented defaults).

    Returns
    -------
    FitDiagnostics
    """
    from arviz_stats import ess as az_ess
    from arviz_stats import rhat as az_rhat

    post = _numeric_posterior(_posterior(fit), var_names)
    n_chains = int(post.sizes["chain"])
    n_draws = int(post.sizes["draw"])

    rhat = _extreme(az_rhat(post), np.nanmax) if n_chains > 1 else float("nan")
    ess_bulk = _extreme(az_ess(post, method="bulk"), np.nanmin)
    ess_tail = _extreme(az_ess(post, method="tail"), np.nanmin)
    ess_min = float(ess_min_per_chain * n_chains)
    n_div, bfmi_value = _sampler_stats(fit)
    if pareto_k is None and elpd_data is not None:
        pareto_k = getattr(elpd_data, "pareto_k", None)
    k_max, k_thr, n_good, n_bad, n_very_bad = _pareto_counts(pareto_k, n_chains * n_draws)

    n_nonfinite = _nonfinite_draws(post)
    warns = [] if not n_nonfinite else [
        f"{name}: {n_nonfinite} of {n_chains * n_draws} posterior draws are NaN or infinite "
        f"(an interrupted or failed sampler); do not use this fit: sample it again."
    ]
    warns += _sampling_warnings(
        name, n_chains, rhat, rhat_max, ess_bulk, ess_tail, ess_min, ess_min_per_chain
    )
    if n_div:
        warns.append(
            f"{name}: {n_div} divergent transition(s); the sampler may have missed part of "
            f"the posterior. Reparametrize or raise target_accept."
        )
    if bfmi_value is not None and bfmi_value < bfmi_min:
        warns.append(
            f"{name}: E-BFMI is {bfmi_value:.2f} < {bfmi_min} in at least one chain; the "
            f"momentum resampling explores the energy distribution poorly."
        )
    # one chain is unverified, not failed: it alone does not disqualify a fit
    n_sampling = len(warns) - (1 if n_chains < 2 else 0)
    if n_good is not None and (n_bad or n_very_bad):
        warns.append(
            f"{name}: {n_bad + n_very_bad} observation(s) with Pareto k > {k_thr:.2f} "
            f"(max {k_max:.2f}); PSIS-LOO is unreliable for them (exact K-fold "
            f"cross-validation avoids the approximation)."
        )

    return FitDiagnostics(
        name=name,
        n_chains=n_chains,
        n_draws=n_draws,
        rhat_max=rhat,
        ess_bulk_min=ess_bulk,
        ess_tail_min=ess_tail,
        ess_min=ess_min,
        n_divergent=n_div,
        bfmi_min=bfmi_value,
        pareto_k_max=k_max,
        pareto_k_threshold=k_thr,
        n_k_good=n_good,
        n_k_bad=n_bad,
        n_k_very_bad=n_very_bad,
        n_nonfinite=n_nonfinite,
        n_sampling_warnings=n_sampling,
        warnings=warns,
    )
