"""Out-of-sample estimates for :func:`compare`: PSIS-LOO from a fit, and exact K-fold refits."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from scipy import special as sp

from softbayes.analysis.comparison.groups import (
    SAMPLE_DIMS,
    FitRecord,
    group_dataset,
    training_frame,
)
from softbayes.analysis.predict import predict
from softbayes.analysis.scores import loo_predictive_mean
from softbayes.backend import Refitter
from softbayes.io.fits import description_from_fit

__all__ = ["description_of", "kfold", "kfold_folds", "psis_loo", "psis_means"]

# seeds of the fold refits: the comparison's seed plus a prime times the fold number
FOLD_SEED_STEP = 7919


def description_of(rec: FitRecord):
    """The model description of a fit, rebuilt from its attrs once and kept on the record."""
    if rec.description is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            rec.description = description_from_fit(rec.fit, check=False)
    return rec.description


def psis_loo(rec: FitRecord):
    """PSIS-LOO of a fit (``arviz_stats.loo``), on the scale of the labels as given."""
    import arviz_stats as azs

    jac = None
    if rec.log_jacobian:
        ll = group_dataset(rec.fit, "log_likelihood")[rec.ll_var]
        obs_dims = [d for d in ll.dims if d not in SAMPLE_DIMS]
        jac = xr.DataArray(
            np.full([ll.sizes[d] for d in obs_dims], rec.log_jacobian),
            dims=obs_dims,
            coords={d: ll.coords[d] for d in obs_dims if d in ll.coords},
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # high Pareto k is reported by our diagnostics
        return azs.loo(rec.fit, pointwise=True, var_name=rec.ll_var, log_jacobian=jac)


def psis_means(rec: FitRecord, elpd, draws: xr.DataArray) -> np.ndarray:
    """Leave-one-out predictive means from the PSIS weights of ``elpd`` and the posterior
    draws of :math:`E[y \\mid x]`, shape ``(n,)`` or ``(n, K)``."""
    lw = elpd.log_weights
    obs_dim = [d for d in lw.dims if d not in SAMPLE_DIMS]
    if len(obs_dim) != 1 or "obs" not in draws.dims:
        raise ValueError(f"fit {rec.name!r}: expected one observation dimension 'obs'.")
    lw = lw.rename({obs_dim[0]: "obs"}) if obs_dim[0] != "obs" else lw
    lw = lw.assign_coords(obs=draws["obs"].values)
    mean = loo_predictive_mean(draws, lw)
    return np.asarray(mean.transpose("obs", ...).values, dtype=float)


def kfold_folds(n: int, k: int, seed) -> np.ndarray:
    """A random assignment of ``n`` observations to ``k`` folds of (almost) equal size."""
    if not 2 <= k <= n:
        raise ValueError(f"k must be between 2 and the number of observations ({n}), got {k}.")
    rng = np.random.default_rng(seed)
    folds = np.empty(n, dtype=int)
    folds[rng.permutation(n)] = np.arange(n) % k
    return folds


def _fit_options(rec: FitRecord, seed, refit_kwargs) -> tuple[int, dict]:
    """The seed and sampler options of the fold refits (default: those the fit recorded)."""
    attrs = rec.attrs
    fit_kwargs = {
        "draws": 1000 if attrs.draws is None else attrs.draws,
        "tune": 1000 if attrs.tune is None else attrs.tune,
        "chains": 4 if attrs.chains is None else attrs.chains,
        "sampler": attrs.sampler,
    }
    fit_kwargs.update(refit_kwargs or {})
    return int(fit_kwargs.pop("random_seed", seed)), fit_kwargs


def _fold_fits(rec: FitRecord, folds: np.ndarray, seed: int, fit_kwargs: dict):
    """Refit the fit's model on each training fold.

    Yields ``(held-out rows, held-out frame, training rows, fold description, fold fit)``;
    the fold description is the model on the training rows, whose size is the one the
    family's label transformations use for the held-out labels. One refitter serves all
    folds: each fold swaps its training rows in, reusing the compiled sampler; the formula
    state (levels, ``scale()`` parameters) is that of all rows, so every group level has a
    parameter. The description's formulas were rebuilt (and sandbox-checked) from the fit's
    attrs and are still untrusted: they came from a file.
    """
    frame = training_frame(rec.fit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        refitter = Refitter(description_of(rec), frame)
    for j in range(int(folds.max()) + 1):
        test = np.flatnonzero(folds == j)
        train = frame.iloc[np.flatnonzero(folds != j)].reset_index(drop=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            refitter.set_data(train)
            fit_j = refitter.fit(random_seed=seed + FOLD_SEED_STEP * (j + 1), **fit_kwargs)
        held = frame.iloc[test].reset_index(drop=True)
        yield test, held, train, refitter.description, fit_j


def _kfold_elpd(rec: FitRecord, elpd_i: np.ndarray, n_samples: int, k: int):
    """ArviZ's K-fold ELPD object, with the in-sample lpd for ``p_kfold`` as ``loo_kfold``."""
    import arviz_stats as azs

    n = rec.n_obs
    ll_full = group_dataset(rec.fit, "log_likelihood")[rec.ll_var]
    ll_full = ll_full.transpose("chain", "draw", ...).values.reshape(-1, n)
    lpd = sp.logsumexp(ll_full, axis=0) - np.log(ll_full.shape[0]) + rec.log_jacobian
    obs = np.arange(n)
    return azs.ELPDDataLOOKFold(
        elpd=float(elpd_i.sum()),
        se=float(np.sqrt(n * np.var(elpd_i))),
        p=float((lpd - elpd_i).sum()),
        n_samples=int(n_samples),
        n_data_points=n,
        scale="log",
        warning=False,
        good_k=None,
        elpd_i=xr.DataArray(elpd_i, dims=["obs"], coords={"obs": obs}),
        n_folds=k,
        p_kfold_i=xr.DataArray(lpd - elpd_i, dims=["obs"], coords={"obs": obs}),
    )


def kfold(rec: FitRecord, folds: np.ndarray, *, seed, refit_kwargs, progress):
    """Exact K-fold: refit on each training fold, predict and score the held-out fold.

    Returns the K-fold ELPD object and the held-out predictive means.
    """
    seed, fit_kwargs = _fit_options(rec, seed, refit_kwargs)
    k = int(folds.max()) + 1
    means = None
    elpd_i = np.empty(rec.n_obs)
    n_samples = None
    fold_fits = _fold_fits(rec, folds, seed, fit_kwargs)
    for j, (test, held, train, description, fit_j) in enumerate(fold_fits):
        # a group level absent from the training rows keeps its prior-drawn effect (the
        # fitted group distribution), as new_groups="sample" would draw it
        ll = predict(fit_j, held, kind="log_likelihood", model=description,
                     new_groups="sample", random_seed=seed)
        ll_v = ll.transpose("chain", "draw", "obs").values.reshape(-1, len(test))
        n_samples = ll_v.shape[0]
        jac = rec.likelihood.label_log_jacobian(len(train))
        elpd_i[test] = sp.logsumexp(ll_v, axis=0) - np.log(n_samples) + jac
        mu = predict(fit_j, held, kind="mean", model=description,
                     new_groups="sample", random_seed=seed)
        mu_v = mu.mean(dim=list(SAMPLE_DIMS)).transpose("obs", ...).values
        if means is None:
            means = np.empty((rec.n_obs, *mu_v.shape[1:]))
        means[test] = mu_v
        if progress:
            progress(rec.name, j + 1, k)
    return _kfold_elpd(rec, elpd_i, n_samples, k), means
