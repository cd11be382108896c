"""The :func:`compare` entry point: guards, out-of-sample estimates, ELPD tables and scores."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from softbayes.analysis.comparison.cross_validation import (
    description_of,
    kfold_folds,
    kfold_result,
    kfold_tasks,
    psis_loo,
    psis_means,
    record_group_folds,
)
from softbayes.analysis.comparison.groups import (
    CROSS_GROUP,
    FitRecord,
    check_same_observations,
    fit_record,
    soft_labels,
)
from softbayes.analysis.comparison.result import Comparison
from softbayes.analysis.diagnostics import FitDiagnostics, diagnose_fit
from softbayes.analysis.predict import predict
from softbayes.analysis.scores import SCORES, calibration_error, score_table
from softbayes.backend.executor import as_executor
from softbayes.io.fits import TRAINING_GROUP

__all__ = ["compare"]

METHODS = ("stacking", "bb-pseudo-bma", "pseudo-bma")


def _check_options(fits, scores, loo, kfold_fallback, elpd, method) -> tuple[str, ...]:
    """Raise a ``ValueError`` on an unknown option; return the scores as a tuple."""
    if not isinstance(fits, Mapping) or not fits:
        raise ValueError("fits must be a non-empty mapping of names to softbayes fits.")
    scores = tuple(scores)
    unknown = [s for s in scores if s not in SCORES]
    if unknown or not scores:
        raise ValueError(f"scores must be a non-empty subset of {list(SCORES)}, got {scores}.")
    if loo not in ("psis", "kfold"):
        raise ValueError(f"loo must be 'psis' or 'kfold', got {loo!r}.")
    if kfold_fallback not in ("all", "fit", None):
        raise ValueError(f"kfold_fallback must be 'all', 'fit' or None, got {kfold_fallback!r}.")
    if elpd not in ("by_group", "all"):
        raise ValueError(f"elpd must be 'by_group' or 'all', got {elpd!r}.")
    if str(method).lower() not in METHODS:
        raise ValueError(
            f"method must be 'stacking', 'BB-pseudo-BMA' or 'pseudo-BMA', got {method!r}."
        )
    return scores


def _first_psis(records: dict[str, FitRecord]):
    """PSIS-LOO of every fit; a fit whose PSIS fails is left out with the reason.

    ArviZ raises e.g. "All tail values are the same" when stuck chains give constant
    log-likelihood draws; leaving such a fit out (with its diagnostics) lets the others
    still be compared. Returns the ELPD objects, the failures and their warnings.
    """
    first_loo: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for r in records.values():
        try:
            first_loo[r.name] = psis_loo(r)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
            failed[r.name] = f"{type(err).__name__}: {err}"
    failed_warns: list[str] = []
    for name, why in failed.items():
        failed_warns.append(
            f"{name}: left out of the comparison: PSIS-LOO failed ({why}). Its log-likelihood "
            "draws are degenerate, typically because the chains are stuck; see its "
            "diagnostics, and refit it (more tuning, a higher target_accept)."
        )
        failed_warns.extend(diagnose_fit(records[name].fit, name=name).warnings)
    if failed and len(failed) == len(records):
        raise ValueError("No fit could be compared: " + " | ".join(failed_warns))
    return first_loo, failed, failed_warns


def _elpd_groups(records: dict[str, FitRecord]) -> dict[str, list[str]]:
    """ELPD group -> the names of its fits, in the order given."""
    groups: dict[str, list[str]] = {}
    for r in records.values():
        groups.setdefault(r.group, []).append(r.name)
    return groups


def _refuse_cross_group(groups: dict[str, list[str]]):
    listing = "; ".join(f"{g}: {', '.join(repr(n) for n in names)}" for g, names in groups.items())
    raise ValueError(
        "Refusing to rank these fits by ELPD: their observation models are of different "
        f"kinds ({listing}). The ELPD of a density of the label (Continuous Bernoulli, "
        "Beta), of the weighted-Bernoulli cross-entropy (not a density of the label) and "
        "of a Bernoulli probability of thresholded labels are different kinds of numbers; "
        "since log C(lambda) >= log 2 the Continuous Bernoulli would 'win' by at least "
        "0.69 nats per observation whatever the fit. Use elpd='by_group' and the "
        "common-scale scores (Comparison.scores), or pass allow_cross_group_elpd=True to "
        "build the invalid table anyway (it will be flagged)."
    )


def _kfold_plan(records, fit_diag, *, loo, kfold_fallback, k, warns) -> list[str]:
    """The fits to re-estimate with K-fold (those that can be refit), with warnings."""
    unreliable = [
        name for name, d in fit_diag.items() if (d.n_k_bad or 0) + (d.n_k_very_bad or 0) > 0
    ]
    use_kfold: list[str] = []
    if loo == "kfold" or (unreliable and kfold_fallback == "all"):
        use_kfold = list(records)
    elif unreliable and kfold_fallback == "fit":
        use_kfold = unreliable
    refittable = []
    for name in use_kfold:
        rec = records[name]
        if TRAINING_GROUP in rec.fit.children and rec.attrs.formula is not None:
            refittable.append(name)
        else:
            warns.append(
                f"{name}: cannot be refit (no training_data group / formula in the fit); "
                "PSIS-LOO kept although K-fold was wanted."
            )
    if unreliable and loo == "psis":
        if kfold_fallback is None:
            warns.append(
                f"PSIS-LOO is unreliable for {unreliable} (Pareto k above "
                f"{fit_diag[unreliable[0]].pareto_k_threshold:.2f}); their ELPD and scores "
                "may be biased. Use loo='kfold'."
            )
        elif refittable:
            scope = "all fits" if kfold_fallback == "all" else f"{refittable}"
            warns.append(
                f"PSIS-LOO is unreliable for {unreliable} (high Pareto k): {scope} re-estimated "
                f"with exact {k}-fold cross-validation (same folds)."
            )
    return refittable


def _run_folds(records, use_kfold, folds, executor, *, seed, refit_kwargs, progress):
    """Every fold of every K-fold fit as one list of tasks on ``executor`` (so that folds of
    different fits run side by side); ``{name: [TaskResult per fold]}``."""
    tasks, owner = [], []
    for name in use_kfold:
        fold_tasks = kfold_tasks(records[name], folds, executor, seed=seed,
                                 refit_kwargs=refit_kwargs)
        tasks += fold_tasks
        owner += [name] * len(fold_tasks)
    k = int(folds.max()) + 1
    done = dict.fromkeys(use_kfold, 0)

    def on_result(i, _):
        done[owner[i]] += 1
        if progress:
            progress(owner[i], done[owner[i]], k)

    results = executor.run(tasks, on_result=on_result)
    by_fit: dict[str, list] = {name: [] for name in use_kfold}
    for name, res in zip(owner, results, strict=True):
        by_fit[name].append(res)
    return by_fit


def _out_of_sample(records, elpd_data, use_kfold, compute, *, k, seed, refit_kwargs,
                   progress, warns, kfold_group=None):
    """Out-of-sample ELPDs (replaced in ``elpd_data`` for K-fold fits) and predictive means.

    ``compute``: ``(client, workers)`` of the refits (a cluster starts only if there are
    refits). A fit whose K-fold refits failed keeps its PSIS-LOO, with a warning naming the
    fold. Returns the method per fit, the means per fit and the folds (None without K-fold).
    """
    cv = {name: "psis-loo" for name in records}
    loo_means: dict[str, np.ndarray] = {}
    recs = list(records.values())
    folds = None
    if use_kfold and kfold_group is not None:
        folds = record_group_folds([records[n] for n in use_kfold], kfold_group, k, seed)
        k = int(folds.max()) + 1
    elif use_kfold:
        folds = kfold_folds(recs[0].n_obs, k, seed)
    by_fit = {}
    if use_kfold:
        with as_executor(compute[0], workers=compute[1]) as executor:
            by_fit = _run_folds(records, use_kfold, folds, executor, seed=seed,
                                refit_kwargs=refit_kwargs, progress=progress)
    for r in recs:
        bad = [res for res in by_fit.get(r.name, []) if not res.ok]
        if r.name in by_fit and not bad:
            elpd_data[r.name], loo_means[r.name] = kfold_result(r, folds, by_fit[r.name])
            cv[r.name] = f"kfold(k={k})"
            continue
        if bad:
            warns.append(
                f"{r.name}: K-fold failed ({len(bad)} of {k} folds; {bad[0].label}: "
                f"{bad[0].error}); its PSIS-LOO estimate is kept."
            )
        draws = predict(r.fit, kind="mean", model=description_of(r))
        loo_means[r.name] = psis_means(r, elpd_data[r.name], draws)
    if len(set(cv.values())) > 1:
        warns.append(
            "Out-of-sample estimates mix PSIS-LOO and K-fold "
            f"({', '.join(f'{n}: {c}' for n, c in cv.items())}); K-fold trains on less data "
            "and is slightly pessimistic, so differences between the two kinds are biased."
        )
    return cv, loo_means, folds


def _elpd_tables(records, groups, elpd_data, *, method, elpd, warns, notes):
    """``arviz.compare`` per ELPD group, and the flagged cross-group table on request.

    Returns the tables and whether a cross-group table was built.
    """
    import arviz_stats as azs

    def az_compare(names):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return azs.compare({n: elpd_data[n] for n in names}, method=method, round_to="none")

    tables = {g: az_compare(names) for g, names in groups.items()}
    if elpd == "all" and len(groups) > 1:
        table = az_compare(list(records))
        table["group"] = [records[n].group for n in table.index]
        table.attrs["cross_group"] = True
        table.attrs["warning"] = "NOT COMPARABLE: ELPDs of different observation models."
        tables[CROSS_GROUP] = table
        warns.append(
            "Cross-group ELPD ranking built with allow_cross_group_elpd=True: it ranks "
            f"different kinds of numbers ({', '.join(groups)}) and is not a valid model "
            "comparison; use the common-scale scores."
        )
        return tables, True
    if elpd == "all":
        notes.append("elpd='all': all fits are in one ELPD group; its table ranks them all.")
    return tables, False


def _score_tables(records, scores, loo_means, labels, cv, n_bins):
    """The common-scale scores: pointwise per score, ranking per score, and the summary
    table (one row per fit, best first by the first score)."""
    pointwise = {}
    score_tables = {}
    for key in scores:
        fn, higher = SCORES[key]
        pw = {name: fn(loo_means[name], labels) for name in records}
        pointwise[key] = pd.DataFrame(pw)
        score_tables[key] = score_table(pw, higher_is_better=higher)
    table = pd.DataFrame(index=score_tables[scores[0]].index)
    table["family"] = [records[n].family for n in table.index]
    table["group"] = [records[n].group for n in table.index]
    table["cv"] = [cv[n] for n in table.index]
    for key in scores:
        st = score_tables[key].reindex(table.index)
        table[key] = st["score"]
        table[f"{key}_se"] = st["se"]
        table[f"{key}_diff"] = st["diff"]
        table[f"{key}_dse"] = st["dse"]
        table[f"{key}_rank"] = st["rank"]
    table["ece"] = [calibration_error(loo_means[n], labels, n_bins=n_bins) for n in table.index]
    return pointwise, score_tables, table


def _diagnostics_table(fit_diag: dict[str, FitDiagnostics]) -> pd.DataFrame:
    return pd.DataFrame(
        [{c: v for c, v in d.as_dict().items() if c != "name"} for d in fit_diag.values()],
        index=pd.Index(list(fit_diag), name="fit"),
    )


def compare(
    fits: Mapping[str, Any],
    *,
    method: str = "stacking",
    scores: Sequence[str] = ("log", "brier"),
    loo: str = "psis",
    k: int = 10,
    kfold_group: str | None = None,
    kfold_fallback: str | None = "all",
    elpd: str = "by_group",
    allow_cross_group_elpd: bool = False,
    n_bins: int = 10,
    seed: int = 0,
    refit_kwargs: Mapping[str, Any] | None = None,
    progress=None,
    warn: bool = True,
    client=None,
    workers: int | None = None,
) -> Comparison:
    r"""Compare softbayes fits of the same soft labels, refusing invalid ELPD rankings.

    Parameters
    ----------
    fits : mapping of str to xarray.DataTree
        Fit name -> fit from :meth:`softbayes.Model.fit` (or :func:`softbayes.load_fit`).
    method : {"stacking", "BB-pseudo-BMA", "pseudo-BMA"}
        Weights of ``arviz.compare`` within each ELPD group.
    scores : sequence of {"log", "brier"}
        Common-scale scores to compute; the first orders :attr:`Comparison.scores`.
    loo : {"psis", "kfold"}
        ``"psis"``: PSIS-LOO from each fit's own pointwise log-likelihood (no refits),
        with the K-fold fallback below. ``"kfold"``: exact K-fold refits for every fit.
    k : int
        Number of folds for K-fold (the same random folds for every fit).
    kfold_group : str, optional
        Hold out whole groups in K-fold (leave-one-group-out, e.g. one annotator pool at a
        time): a column of the fits' training rows. Every group is its own fold when there
        are at most ``k`` groups; more groups are randomly spread (with ``seed``) over ``k``
        folds, each group whole in one fold.
    kfold_fallback : {"all", "fit", None}
        What to do when PSIS is unreliable for a fit (a Pareto :math:`\hat k` above
        ``min(1 - 1/log10(S), 0.7)``): ``"all"`` (default) re-estimates *every* fit with
        K-fold on the same folds, so that no ranking mixes PSIS-LOO with K-fold estimates
        (rstanarm's ``loo_compare`` refuses such a mix); ``"fit"`` refits only the
        unreliable fits (flagged as mixed); ``None`` keeps PSIS and warns.
    elpd : {"by_group", "all"}
        ``"by_group"``: one ELPD table per group of comparable observation models.
        ``"all"``: also rank all fits together, which is refused with an explanation when
        the fits span several groups, unless ``allow_cross_group_elpd=True``.
    allow_cross_group_elpd : bool
        Build the cross-group ELPD table anyway (key ``"all (cross-group)"``); it is flagged
        in the text, the figure title, a ``group`` column and :attr:`Comparison.warnings`.
    n_bins : int
        Bins of the calibration error and the reliability diagram.
    seed : int
        Seed of the K-fold split and refits.
    refit_kwargs : mapping, optional
        Passed to :meth:`softbayes.Model.fit` for K-fold refits (default: the draws, tune,
        chains and sampler recorded in each fit). Each refit is the fit's model on the
        training folds: same formula, family and options, and the *priors recorded in the
        fit* held fixed (data-scaled default priors are not recomputed on the fold); the
        design (centring, stateful transforms) is evaluated on the training folds, as any
        refit does. Held-out rows of a group level absent from their training folds are
        predicted as a new group (effects drawn from the fitted group distribution).
    progress : callable, optional
        ``progress(fit_name, fold, k)`` after each K-fold refit (``fold``: how many of
        that fit's refits have finished).
    warn : bool, default True
        Also emit the collected warnings (:attr:`Comparison.warnings`) as one Python
        ``UserWarning``.
    client : distributed.Client or softbayes.backend.Executor, optional
        Run the K-fold refits on this Dask cluster (or executor); default serially, here.
        The numbers do not depend on where the refits run (seeds per fold).
    workers : int, optional
        Run the K-fold refits on a local Dask cluster of this many processes, started and
        closed by this call (not with ``client``).

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        Fits of different labels or observations (the message names them), a cross-group
        ELPD ranking without the override, unknown scores or options, or PSIS-LOO failing
        for every fit. (A fit whose PSIS-LOO fails is otherwise left out, see
        :attr:`Comparison.failed`.)
    """
    scores = _check_options(fits, scores, loo, kfold_fallback, elpd, method)
    records = {str(name): fit_record(str(name), fit) for name, fit in fits.items()}
    check_same_observations(list(records.values()))
    first_loo, failed, warns = _first_psis(records)
    records = {n: r for n, r in records.items() if n not in failed}

    groups = _elpd_groups(records)
    if elpd == "all" and len(groups) > 1 and not allow_cross_group_elpd:
        _refuse_cross_group(groups)
    labels = soft_labels(next(iter(records.values())))
    for r in records.values():
        r.labels = labels
    notes: list[str] = [note for r in records.values() for note in r.notes]

    elpd_data = {name: first_loo[name] for name in records}
    fit_diag = {
        r.name: diagnose_fit(r.fit, name=r.name, elpd_data=elpd_data[r.name])
        for r in records.values()
    }
    use_kfold = _kfold_plan(
        records, fit_diag, loo=loo, kfold_fallback=kfold_fallback, k=k, warns=warns
    )
    cv, loo_means, folds = _out_of_sample(
        records, elpd_data, use_kfold, (client, workers), k=k, seed=seed,
        refit_kwargs=refit_kwargs, progress=progress, warns=warns, kfold_group=kfold_group,
    )
    elpd_tables, cross = _elpd_tables(
        records, groups, elpd_data, method=method, elpd=elpd, warns=warns, notes=notes
    )
    pointwise, score_tables, table = _score_tables(records, scores, loo_means, labels, cv, n_bins)
    for d in fit_diag.values():
        warns.extend(d.warnings)
    if warn and warns:
        warnings.warn(
            "softbayes.compare: " + " | ".join(warns) + " (see Comparison.warnings)",
            UserWarning,
            stacklevel=2,
        )
    return Comparison(
        names=list(records),
        families={n: r.family for n, r in records.items()},
        groups=groups,
        elpd_tables=elpd_tables,
        scores=table,
        score_tables=score_tables,
        diagnostics=_diagnostics_table(fit_diag),
        warnings=warns,
        cv=cv,
        loo_means=loo_means,
        pointwise=pointwise,
        labels=labels,
        elpd_data=elpd_data,
        fit_diagnostics=fit_diag,
        cross_group_elpd=cross,
        folds=folds,
        method=method,
        n_bins=n_bins,
        notes=notes,
        failed=failed,
        records=records,
    )
