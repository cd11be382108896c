"""Convergence thresholds of NUTS fits and the warnings a fit gives when it crosses them.

One source for the thresholds ArviZ documents (used here after every NUTS fit and by
:func:`softbayes.diagnose_fit`):

* :data:`RHAT_MAX`: rank-normalized split R-hat above ``1.01``;
* :data:`ESS_MIN_PER_CHAIN`: bulk or tail ESS below ``100`` per chain;
* :data:`BFMI_MIN`: E-BFMI below ``0.3`` in any chain;
* any divergent transition, and any draw whose trajectory hit the maximum tree depth.

:func:`convergence_messages` computes them with ``arviz_stats`` on a fit's ``posterior`` and
``sample_stats`` groups; :func:`warn_convergence` issues one ``UserWarning`` per problem, as
PyMC does after ``pm.sample``.
"""

from __future__ import annotations

import warnings

import numpy as np

from softbayes.io.fits import posterior_dataset

__all__ = [
    "BFMI_MIN",
    "ESS_MIN_PER_CHAIN",
    "RHAT_MAX",
    "convergence_messages",
    "warn_convergence",
]

#: Largest acceptable rank-normalized split R-hat.
RHAT_MAX = 1.01
#: Smallest acceptable bulk and tail ESS per chain.
ESS_MIN_PER_CHAIN = 100
#: Smallest acceptable E-BFMI of a chain.
BFMI_MIN = 0.3

#: Sample-stats names of "the trajectory hit the maximum tree depth" (nutpie, PyMC).
_TREEDEPTH_STATS = ("maxdepth_reached", "reached_max_treedepth")


def _dataset(group):
    return group.to_dataset() if hasattr(group, "to_dataset") else group


def _extreme(ds, how) -> float:
    values = [np.asarray(da.values, dtype=float).ravel() for da in ds.data_vars.values()]
    values = np.concatenate([v for v in values if v.size] or [np.array([np.nan])])
    return float("nan") if np.all(np.isnan(values)) else float(how(values))


def _after_tuning(stats, name) -> int:
    """Draws after tuning for which the boolean sample stat ``name`` is true."""
    flag = stats[name]
    if "tuning" in stats:  # nutpie keeps tuning draws only when asked; drop them
        flag = flag.where(~stats["tuning"].astype(bool), False)
    return int(np.asarray(flag.values, dtype=bool).sum())


def convergence_messages(fit) -> list[str]:
    """One plain sentence per convergence threshold ``fit`` crosses (empty: none).

    Parameters
    ----------
    fit : xarray.DataTree
        A fit with a ``posterior`` group (``sample_stats`` used when present).

    Returns
    -------
    list of str
        R-hat above :data:`RHAT_MAX` (with at least 2 chains), bulk or tail ESS below
        :data:`ESS_MIN_PER_CHAIN` per chain, divergent transitions and maximum tree depth
        hits after tuning, in that order.
    """
    from arviz_stats import ess as az_ess
    from arviz_stats import rhat as az_rhat

    post = posterior_dataset(fit)  # the centred intercepts are sampled: checked too
    post = post[[n for n, da in post.data_vars.items()
                 if np.issubdtype(da.dtype, np.number) and {"chain", "draw"} <= set(da.dims)]]
    n_chains = int(post.sizes["chain"])
    messages = []
    with warnings.catch_warnings():  # arviz_stats' own warnings on tiny or constant chains
        warnings.simplefilter("ignore")
        rhat = _extreme(az_rhat(post), np.nanmax) if n_chains > 1 else float("nan")
        ess = {kind: _extreme(az_ess(post, method=kind), np.nanmin) for kind in ("bulk", "tail")}
    if not np.isnan(rhat) and rhat > RHAT_MAX:
        messages.append(
            f"R-hat is {rhat:.3f} > {RHAT_MAX}: the chains have not converged to the same "
            f"distribution. Do not use this fit's estimates; run longer (more tune and draws).")
    ess_min = ESS_MIN_PER_CHAIN * n_chains
    for kind, value in ess.items():
        if not np.isnan(value) and value < ess_min:
            messages.append(
                f"The smallest {kind} ESS is {value:.0f} < {ess_min} ({ESS_MIN_PER_CHAIN} per "
                f"chain): too few effective draws for reliable "
                f"{'means' if kind == 'bulk' else 'intervals'}. Draw more samples.")
    stats = _dataset(fit["sample_stats"]) if "sample_stats" in fit.children else None
    if stats is not None and "diverging" in stats:
        n_div = _after_tuning(stats, "diverging")
        if n_div:
            messages.append(
                f"{n_div} divergent transition(s) after tuning: the sampler may have missed "
                f"part of the posterior. Reparametrize or raise target_accept.")
    name = next((s for s in _TREEDEPTH_STATS if stats is not None and s in stats), None)
    if name is not None:
        n_deep = _after_tuning(stats, name)
        if n_deep:
            messages.append(
                f"{n_deep} draw(s) hit the maximum tree depth: the sampler's trajectories "
                f"were cut short, so it explores slowly. Reparametrize or raise the maximum "
                f"depth.")
    return messages


def warn_convergence(fit, *, stacklevel=2) -> list[str]:
    """Issue :func:`convergence_messages` of ``fit`` as ``UserWarning`` warnings; returns them.

    ``stacklevel`` is that of :func:`warnings.warn` as seen from the caller.
    """
    messages = convergence_messages(fit)
    for msg in messages:
        warnings.warn(msg, UserWarning, stacklevel=stacklevel + 1)
    return messages
