r"""Common-scale predictive scores of soft labels: every family on one scale.

Every softbayes family predicts :math:`\hat p_i = E[y_i \mid x_i]` (a probability vector
for K classes). Out of sample, :math:`\hat p_i` is the leave-one-out predictive mean
:math:`E[y_i \mid x_i, y_{-i}] = E_{p(\theta \mid y_{-i})}\, E[y_i \mid x_i, \theta]`,
estimated with the PSIS weights of the fit's *own* pointwise log-likelihood
(:func:`loo_predictive_mean`) or by K-fold refits. It is scored against the soft label
:math:`l_i` with two proper scoring rules, each the expectation of the usual hard-label score
over :math:`y_i \sim \text{Categorical}(l_i)`:

* log score (negative cross-entropy, higher is better):
  :math:`S_i = \sum_k l_{ik} \log \hat p_{ik}`, for two classes
  :math:`l_i \log \hat p_i + (1 - l_i) \log(1 - \hat p_i)`;
* Brier score (lower is better): :math:`B_i = \sum_k (\hat p_{ik} - l_{ik})^2 +
  \sum_k l_{ik}(1 - l_{ik})`, for two classes the one-column convention
  :math:`(\hat p_i - l_i)^2 + l_i(1 - l_i)`. The second term does not depend on the model
  (differences are plain squared errors) and makes :math:`B_i` the expected Brier score of a
  hard label drawn from :math:`l_i` (0 for a perfect forecast of a hard label).

Totals are sums over observations, with standard error :math:`\sqrt{n}\,\mathrm{sd}(S_i)`
as for ELPD; differences between fits are paired (pointwise) with the same SE formula.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special as sp
from scipy.stats import norm

__all__ = [
    "SCORES",
    "brier_score",
    "calibration_error",
    "log_score",
    "loo_predictive_mean",
    "psis_log_weights",
    "reliability_table",
    "score_table",
]

SAMPLE_DIMS = ("chain", "draw")


def psis_log_weights(log_likelihood: xr.DataArray, *, reff=None, sample_dims=SAMPLE_DIMS):
    """Normalized PSIS-LOO log weights and Pareto :math:`\\hat k` of a pointwise log-likelihood.

    Parameters
    ----------
    log_likelihood : xarray.DataArray
        Pointwise log-likelihood with dims ``(*sample_dims, obs)``.
    reff : float, optional
        Relative efficiency (default 1, i.e. draws treated as independent).
    sample_dims : sequence of str

    Returns
    -------
    log_weights : xarray.DataArray
        Same dims as ``log_likelihood``; ``logsumexp`` over the sample dims is 0.
    pareto_k : xarray.DataArray
        One value per observation.
    """
    import arviz_stats  # noqa: F401 (registers the .azstats accessor)

    lw, k = log_likelihood.azstats.psislw(r_eff=1.0 if reff is None else reff, dim=sample_dims)
    lw = lw - _logsumexp(lw, sample_dims)
    return lw.transpose(*log_likelihood.dims), k


def _logsumexp(da: xr.DataArray, dims) -> xr.DataArray:
    axes = [da.get_axis_num(d) for d in dims]
    return xr.DataArray(
        sp.logsumexp(da.values, axis=tuple(axes)),
        dims=[d for d in da.dims if d not in dims],
        coords={d: da.coords[d] for d in da.dims if d not in dims and d in da.coords},
    )


def loo_predictive_mean(
    draws: xr.DataArray, log_weights: xr.DataArray, *, sample_dims=SAMPLE_DIMS
) -> xr.DataArray:
    r"""Leave-one-out predictive mean :math:`\sum_s w_{is}\, \mu_{is}`.

    Parameters
    ----------
    draws : xarray.DataArray
        Per-draw predicted means :math:`\mu_{is} = E[y_i \mid x_i, \theta_s]`, dims
        ``(*sample_dims, obs[, class])``.
    log_weights : xarray.DataArray
        PSIS log weights, dims ``(*sample_dims, obs)`` with the same ``obs`` dim (normalized or
        not: they are normalized here).
    sample_dims : sequence of str

    Returns
    -------
    xarray.DataArray
        Dims ``(obs[, class])``.
    """
    lw = log_weights - _logsumexp(log_weights, sample_dims)
    w = np.exp(lw)
    return (draws * w).sum(dim=list(sample_dims))


def _as_2d(pred, labels):
    """Predictions and labels as ``(n, K)`` arrays (binary: K = 2, columns 1 - p, p)."""
    pred = np.asarray(getattr(pred, "values", pred), dtype=float)
    labels = np.asarray(getattr(labels, "values", labels), dtype=float)
    if pred.shape != labels.shape:
        raise ValueError(
            f"predictions have shape {pred.shape} but labels have shape {labels.shape}."
        )
    if labels.ndim == 1:
        return np.column_stack([1.0 - pred, pred]), np.column_stack([1.0 - labels, labels])
    if labels.ndim == 2:
        return pred, labels
    raise ValueError(f"labels must be 1-D (binary) or 2-D (n, K); got shape {labels.shape}.")


def log_score(pred, labels) -> np.ndarray:
    r"""Pointwise log score :math:`\sum_k l_{ik} \log \hat p_{ik}` (higher is better).

    ``pred`` and ``labels`` have shape ``(n,)`` (probability of class 1) or ``(n, K)``;
    :math:`0 \log 0 = 0`.
    """
    p2, l2 = _as_2d(pred, labels)
    with np.errstate(divide="ignore"):
        return sp.xlogy(l2, p2).sum(axis=1)


def brier_score(pred, labels) -> np.ndarray:
    r"""Pointwise Brier score (lower is better), the expected score of a hard label ~ ``l``.

    Binary (1-D inputs): :math:`(\hat p - l)^2 + l(1 - l)`; K classes:
    :math:`\sum_k (\hat p_k - l_k)^2 + l_k (1 - l_k)`.
    """
    pred_a = np.asarray(getattr(pred, "values", pred), dtype=float)
    lab_a = np.asarray(getattr(labels, "values", labels), dtype=float)
    if pred_a.shape != lab_a.shape:
        raise ValueError(
            f"predictions have shape {pred_a.shape} but labels have shape {lab_a.shape}."
        )
    out = (pred_a - lab_a) ** 2 + lab_a * (1.0 - lab_a)
    return out if out.ndim == 1 else out.sum(axis=1)


SCORES = {
    "log": (log_score, True),
    "brier": (brier_score, False),
}


def _bin_edges(n_bins):
    return np.linspace(0.0, 1.0, int(n_bins) + 1)


def reliability_table(pred, labels, *, n_bins: int = 10) -> pd.DataFrame:
    """Equal-width bins of the predicted probability: counts, mean prediction, mean label.

    Binary inputs are binned on the probability of class 1; for ``(n, K)`` inputs the table
    stacks one block per class (column ``cls``), binning each class's probability.
    """
    pred = np.asarray(getattr(pred, "values", pred), dtype=float)
    labels = np.asarray(getattr(labels, "values", labels), dtype=float)
    if pred.shape != labels.shape:
        raise ValueError(
            f"predictions have shape {pred.shape} but labels have shape {labels.shape}."
        )
    cols = (
        [(None, pred, labels)]
        if pred.ndim == 1
        else [(k, pred[:, k], labels[:, k]) for k in range(pred.shape[1])]
    )
    edges = _bin_edges(n_bins)
    rows = []
    for cls, p, lab in cols:
        idx = np.clip(np.digitize(p, edges[1:-1], right=True), 0, len(edges) - 2)
        for b in range(len(edges) - 1):
            m = idx == b
            rows.append(
                {
                    "cls": cls,
                    "bin": b,
                    "lower": edges[b],
                    "upper": edges[b + 1],
                    "n": int(m.sum()),
                    "mean_pred": float(p[m].mean()) if m.any() else np.nan,
                    "mean_label": float(lab[m].mean()) if m.any() else np.nan,
                }
            )
    table = pd.DataFrame(rows)
    if pred.ndim == 1:
        table = table.drop(columns="cls")
    return table


def calibration_error(pred, labels, *, n_bins: int = 10) -> float:
    r"""Binned expected calibration error of predicted means against soft labels.

    :math:`\mathrm{ECE} = \sum_b \frac{n_b}{n} \left|\bar l_b - \bar p_b\right|` over
    ``n_bins`` equal-width bins of the predicted probability. For K classes, the classwise
    ECE averaged over classes.
    """
    table = reliability_table(pred, labels, n_bins=n_bins)
    table = table[table["n"] > 0]
    gap = (table["n"] * (table["mean_label"] - table["mean_pred"]).abs()).sum()
    # the counts of all classes add up to n * K: the classwise ECEs averaged over classes
    return float(gap / table["n"].sum())


def score_table(
    pointwise: Mapping[str, np.ndarray], *, higher_is_better: bool = True, reference=None
) -> pd.DataFrame:
    r"""Rank fits by a pointwise score: totals, SEs and paired differences with the best.

    Parameters
    ----------
    pointwise : mapping of str to array_like
        Fit name to the pointwise score (same observations, same order, for every fit).
    higher_is_better : bool
        Orientation of the score (True for the log score, False for the Brier score).
    reference : str, optional
        Fit to difference against (default: the best).

    Returns
    -------
    pandas.DataFrame
        Indexed by fit, best first, with columns ``rank``, ``score`` (total), ``se``
        (:math:`\sqrt{n}\,\mathrm{sd}`), ``diff`` (``score - score_reference``), ``dse``
        (:math:`\sqrt{n}\,\mathrm{sd}` of the pointwise differences), ``p_worse`` (normal
        approximation of the probability that the fit scores worse than the reference)
        and ``mean`` (score per observation).
    """
    names = list(pointwise)
    values = {name: np.asarray(v, dtype=float).ravel() for name, v in pointwise.items()}
    sizes = {name: v.size for name, v in values.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"Pointwise scores have different numbers of observations: {sizes}.")
    sign = 1.0 if higher_is_better else -1.0
    totals = {name: float(v.sum()) for name, v in values.items()}
    order = sorted(names, key=lambda nm: -sign * totals[nm])
    ref = order[0] if reference is None else reference
    if ref not in values:
        raise ValueError(f"reference {ref!r} is not one of {names}.")
    rows = []
    for rank, name in enumerate(order):
        v = values[name]
        n = v.size
        d = v - values[ref]
        diff = float(d.sum())
        dse = float(np.sqrt(n) * np.std(d, ddof=0)) if name != ref else 0.0
        p_worse = float(norm.cdf(0.0, sign * diff, dse)) if name != ref and dse > 0 else np.nan
        rows.append(
            {
                "rank": rank,
                "score": totals[name],
                "se": float(np.sqrt(n) * np.std(v, ddof=0)),
                "diff": diff,
                "dse": dse,
                "p_worse": p_worse,
                "mean": totals[name] / n,
            }
        )
    return pd.DataFrame(rows, index=pd.Index(order, name="fit"))
