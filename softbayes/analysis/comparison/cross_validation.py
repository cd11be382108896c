"""Out-of-sample estimates for :func:`compare`: PSIS-LOO from a fit, and exact K-fold refits."""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special as sp

from softbayes.analysis.comparison.groups import (
    SAMPLE_DIMS,
    FitRecord,
    fit_record,
    group_dataset,
    training_frame,
)
from softbayes.analysis.predict import predict
from softbayes.analysis.scores import loo_predictive_mean
from softbayes.backend.executor import (
    REFIT,
    Executor,
    Task,
    as_executor,
    cached_refitter,
    task_seed,
)
from softbayes.io.fits import description_from_fit

__all__ = [
    "approx_densities",
    "description_of",
    "fold_task",
    "kfold",
    "kfold_fit",
    "kfold_folds",
    "kfold_group_folds",
    "kfold_result",
    "kfold_tasks",
    "psis_loo",
    "psis_means",
    "record_group_folds",
    "structure_key",
]


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
    densities = approx_densities(rec.fit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # high Pareto k is reported by our diagnostics
        if densities is None:
            return azs.loo(rec.fit, pointwise=True, var_name=rec.ll_var, log_jacobian=jac)
        log_p, log_q = densities
        elpd = azs.loo_approximate_posterior(rec.fit, log_p, log_q, pointwise=True,
                                             var_name=rec.ll_var, log_jacobian=jac)
        # the smoothed weights of the corrected ratios p(theta) / (q(theta) p(y_i | theta)),
        # as loo_approximate_posterior forms them, for the leave-one-out predictive means
        ll = group_dataset(rec.fit, "log_likelihood")[rec.ll_var]
        elpd.log_weights, _ = (ll - (log_p - log_q)).azstats.psislw(r_eff=1.0,
                                                                   dim=list(SAMPLE_DIMS))
    return elpd


def approx_densities(fit):
    """``(log p, log q)`` of the draws of an approximate fit (``sample_stats`` ``lp`` and
    ``log_q``, written by :mod:`softbayes.backend.approx` for Laplace and Pathfinder), or None
    when the fit lacks them or they do not match its log-likelihood draws."""
    try:
        stats = group_dataset(fit, "sample_stats")
        ll = group_dataset(fit, "log_likelihood")
    except KeyError:
        return None
    if "lp" not in stats or "log_q" not in stats:
        return None
    if any(stats["log_q"].sizes.get(d) != ll.sizes.get(d) for d in SAMPLE_DIMS):
        return None
    return stats["lp"], stats["log_q"]


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


def kfold_group_folds(groups, k: int | None = None, seed=0, *, name: str = "group_by"):
    """Folds that hold out whole groups (leave-one-group-out, as ``loo_kfold(group_by=...)``).

    Parameters
    ----------
    groups : array-like
        The group of each observation (e.g. the annotator pool of each row).
    k : int, optional
        Number of folds. ``None`` or at least the number of groups: every group is held out
        once, alone (folds numbered in the sorted order of the groups). Fewer: the groups
        are randomly assigned (with ``seed``) to ``k`` folds of (almost) equal numbers of
        groups, each group whole in one fold.
    seed : int
        Seed of the assignment of groups to folds when ``k`` is smaller.
    name : str
        How the groups are named in error messages (the column).

    Returns
    -------
    numpy.ndarray
        The fold of each observation, ``0 .. n_folds - 1``.

    Raises
    ------
    ValueError
        Missing group values (rows named), or fewer than two groups.
    """
    codes, uniques = pd.factorize(pd.Series(np.asarray(groups, dtype=object)), sort=True)
    missing = np.flatnonzero(codes < 0)
    if missing.size:
        raise ValueError(f"{name}: rows {missing[:10].tolist()} have no group value; every "
                         "row must belong to a group.")
    n_groups = len(uniques)
    if n_groups < 2:
        raise ValueError(f"{name}: leave-one-group-out needs at least two groups, got "
                         f"{n_groups}.")
    if k is None or int(k) >= n_groups:
        return codes.astype(int)
    if int(k) < 2:
        raise ValueError(f"k must be at least 2, got {k}.")
    return kfold_folds(n_groups, int(k), seed)[codes]


def record_group_folds(recs, column: str, k: int | None, seed) -> np.ndarray:
    """:func:`kfold_group_folds` of the training-row column ``column`` of the fits ``recs``
    (which must all hold it, with the same values).

    Raises
    ------
    ValueError
        A fit without the column (the message lists its columns), fits whose columns differ,
        or fewer than two groups.
    """
    values = None
    for rec in recs:
        frame = training_frame(rec.fit)
        if column not in frame.columns:
            raise ValueError(f"group_by: {column!r} is not a column of the training rows of "
                             f"fit {rec.name!r} (columns: {', '.join(map(str, frame.columns))});"
                             " the grouping column must be a column the model uses.")
        col = frame[column].to_numpy()
        if values is None:
            values = col
        elif not pd.Series(col).equals(pd.Series(values)):
            raise ValueError(f"group_by: column {column!r} differs between the fits; they "
                             "must be fits of the same rows.")
    return kfold_group_folds(values, k, seed, name=f"group_by {column!r}")


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


def structure_key(rec: FitRecord) -> str:
    """A key of the fit's model structure (its attrs: formula, family, priors, options and
    the hashes of its data), for :func:`softbayes.backend.executor.cached_refitter`."""
    text = json.dumps({str(k): str(v) for k, v in rec.fit.attrs.items()}, sort_keys=True)
    return "kfold-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def fold_task(description, frame, seed, *, structure, test, fit_kwargs):
    """Task function of one fold: refit on the rows of ``frame`` not in ``test``, predict
    and score the held-out rows ``test``.

    One compiled model per worker serves all folds of a structure (``structure``): each
    fold swaps its training rows in; the formula state (levels, ``scale()`` parameters) is
    that of all rows, so every group level has a parameter. A group level absent from the
    training rows keeps its prior-drawn effect (the fitted group distribution), as
    ``new_groups="sample"`` draws it. The description's formulas were rebuilt (and
    sandbox-checked) from the fit's attrs and are still untrusted: they came from a file.

    Returns ``{"lpd": log mean likelihood of each held-out row, "means": their predictive
    means, "n_samples": posterior draws, "n_train": training rows}``.
    """
    test = np.asarray(test, dtype=int)
    train_rows = np.setdiff1d(np.arange(len(frame)), test)
    refitter = cached_refitter(structure, description)
    refitter.set_data(frame.iloc[train_rows].reset_index(drop=True))
    fit_j = refitter.fit(random_seed=seed, **{**REFIT, **fit_kwargs})
    held = frame.iloc[test].reset_index(drop=True)
    fold_model = refitter.description
    ll = predict(fit_j, held, kind="log_likelihood", model=fold_model, new_groups="sample",
                 random_seed=seed)
    ll_v = ll.transpose("chain", "draw", "obs").values.reshape(-1, len(test))
    mu = predict(fit_j, held, kind="mean", model=fold_model, new_groups="sample",
                 random_seed=seed)
    return {
        "lpd": sp.logsumexp(ll_v, axis=0) - np.log(ll_v.shape[0]),
        "means": mu.mean(dim=list(SAMPLE_DIMS)).transpose("obs", ...).values,
        "n_samples": ll_v.shape[0],
        "n_train": len(train_rows),
    }


def kfold_tasks(rec: FitRecord, folds: np.ndarray, executor, *, seed, refit_kwargs):
    """The K-fold refits of a fit as :class:`~softbayes.backend.executor.Task` (one per
    fold): the description and the training rows are scattered once, fold ``j``'s seed is
    ``task_seed(seed, "fold", j)`` (``seed``: ``refit_kwargs["random_seed"]`` if given)."""
    seed, fit_kwargs = _fit_options(rec, seed, refit_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        description = executor.scatter(description_of(rec))
    frame = executor.scatter(training_frame(rec.fit))
    k = int(folds.max()) + 1
    key = structure_key(rec)
    return [
        Task(fold_task, description, frame, task_seed(seed, "fold", j),
             label=f"fold {j + 1} of {k} of model {rec.name}",
             options={"structure": key, "test": np.flatnonzero(folds == j),
                      "fit_kwargs": fit_kwargs})
        for j in range(k)
    ]


def kfold_result(rec: FitRecord, folds: np.ndarray, results):
    """The K-fold ELPD object and held-out predictive means from the results of
    :func:`kfold_tasks` (all successful)."""
    k = int(folds.max()) + 1
    elpd_i = np.empty(rec.n_obs)
    means = None
    n_samples = None
    for j, res in enumerate(results):
        test = np.flatnonzero(folds == j)
        out = res.value
        elpd_i[test] = out["lpd"] + rec.likelihood.label_log_jacobian(out["n_train"],
                                                                      rec.n_columns)
        if means is None:
            means = np.empty((rec.n_obs, *np.shape(out["means"])[1:]))
        means[test] = out["means"]
        n_samples = out["n_samples"]
    return _kfold_elpd(rec, elpd_i, n_samples, k), means


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


def kfold(rec: FitRecord, folds: np.ndarray, *, seed, refit_kwargs, progress=None,
          executor=None):
    """Exact K-fold: refit on each training fold, predict and score the held-out fold.

    The folds run on ``executor`` (:class:`~softbayes.backend.executor.Executor`; default
    serial). Returns the K-fold ELPD object and the held-out predictive means.

    Raises
    ------
    RuntimeError
        A fold's refit failed (the message names the fold and the reason).
    """
    executor = Executor() if executor is None else executor
    tasks = kfold_tasks(rec, folds, executor, seed=seed, refit_kwargs=refit_kwargs)
    k = len(tasks)
    done = []

    def on_result(_, res):
        done.append(res)
        if progress:
            progress(rec.name, len(done), k)

    results = executor.run(tasks, on_result=on_result)
    failed = [r for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{failed[0].label}: {failed[0].error}")
    return kfold_result(rec, folds, results)


def kfold_fit(fit, k: int | None = None, *, seed: int = 0, group_by: str | None = None,
              description=None, refit_kwargs=None, client=None, workers=None, progress=None):
    """Exact K-fold cross-validation of one fit: its model refitted without each fold, each
    held-out fold scored.

    Without ``group_by``: ``k`` (default 10) random folds (:func:`kfold_folds` with
    ``seed``). With ``group_by`` (a column of the fit's training rows, e.g. the annotator
    pool): whole groups are held out (:func:`kfold_group_folds`): every group alone when
    ``k`` is ``None`` (leave-one-group-out), else the groups spread over ``k`` folds.
    ``description``: the fit's model description (default: rebuilt from the fit's attrs).
    ``refit_kwargs``: sampler options of the refits (default: those the fit recorded).
    ``client`` / ``workers``: run the folds on Dask (see :func:`softbayes.compare`).
    Returns ArviZ's K-fold ELPD object (``kind == "loo_kfold"``, pointwise ``elpd_i``).

    Raises
    ------
    ValueError
        ``group_by`` is not a column of the training rows, or has fewer than two groups.
    """
    rec = fit_record("fit", fit)
    if description is not None:
        rec.description = description
    if group_by is None:
        folds = kfold_folds(rec.n_obs, 10 if k is None else int(k), seed)
    else:
        folds = record_group_folds([rec], group_by, k, seed)
    with as_executor(client, workers=workers) as executor:
        elpd, _ = kfold(rec, folds, seed=seed, refit_kwargs=refit_kwargs, progress=progress,
                        executor=executor)
    return elpd
