r"""Model comparison that refuses what is not comparable: :func:`compare` and :class:`Comparison`.

ArviZ's ``compare`` ranks any models by ELPD as long as their numbers of observations match.
For soft labels that is not enough (see ``notes/soft-labels.md`` section 4):

* the ELPD of a *density* of the label (Continuous Bernoulli, Beta) and the ELPD of the
  weighted-Bernoulli cross-entropy (not a density of the label) or of a Bernoulli
  probability of thresholded labels are different kinds of numbers; since
  :math:`\log C(\lambda) \ge \log 2`, the Continuous Bernoulli "wins" a naive ELPD comparison
  with the weighted Bernoulli by at least 0.69 nats per observation whatever the fit;
* models must describe the same labels of the same observations.

:func:`compare` therefore

1. checks that all fits share the labels (``softbayes_labels_hash``), the number of
   observations and the values of the training columns they share, and raises an error
   naming the fits that differ;
2. builds one ELPD table (PSIS-LOO, exactly ``arviz.compare``) per *group* of fits whose
   observation models are comparable (:data:`ELPD_GROUPS`) and refuses a ranking across
   groups unless ``allow_cross_group_elpd=True`` (then the table is built and flagged);
3. scores every fit on one common scale: the leave-one-out predictive mean
   :math:`E[y_i \mid x_i, y_{-i}]` (PSIS weights from the fit's own pointwise log-likelihood,
   or K-fold refits) against the soft labels with the log score and the Brier score
   (:mod:`softbayes.analysis.scores`), with paired differences against the best fit and a binned
   calibration error;
4. diagnoses every fit (:func:`softbayes.diagnose_fit`) and collects plain warnings;
5. draws the figures (:mod:`softbayes.analysis.plots`) on request.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special as sp

from softbayes.analysis.diagnostics import FitDiagnostics, diagnose_fit
from softbayes.analysis.scores import (
    SCORES,
    calibration_error,
    loo_predictive_mean,
    score_table,
)

__all__ = ["ELPD_GROUPS", "Comparison", "compare", "elpd_group"]

SAMPLE_DIMS = ("chain", "draw")

#: Family name -> ELPD group. Fits in one group have observation models whose pointwise
#: log-likelihoods are the same kind of number for the same data, so their ELPDs compare.
ELPD_GROUPS = {
    "continuous_bernoulli": "density",
    "beta": "density",
    "weighted_bernoulli": "weighted_bernoulli",
    "bernoulli": "bernoulli",
    "soft_categorical": "soft_categorical",
}

GROUP_DESCRIPTIONS = {
    "density": "densities of the soft label on [0, 1] (Continuous Bernoulli, Beta)",
    "weighted_bernoulli": "weighted-Bernoulli cross-entropy (not a density of the label)",
    "bernoulli": "Bernoulli probabilities of the labels thresholded to 0/1",
    "soft_categorical": "soft-label categorical cross-entropy (not a density of the label)",
}

SCORE_LABELS = {"log": "log score", "brier": "Brier score"}

CROSS_GROUP = "all (cross-group)"


# --------------------------------------------------------------------------- fit records


def _attrs(fit) -> dict:
    return dict(getattr(fit, "attrs", {}) or {})


def elpd_group(fit) -> str:
    """The ELPD group of a softbayes fit (see :data:`ELPD_GROUPS`).

    Bernoulli fits with a threshold other than 0.5 form their own group per threshold
    (different thresholds make different hard labels).
    """
    attrs = _attrs(fit)
    family = attrs.get("softbayes_family")
    if family is None:
        raise ValueError("Not a softbayes fit: its attrs lack 'softbayes_family'.")
    group = ELPD_GROUPS.get(family)
    if group is None:
        kind = attrs.get("softbayes_log_likelihood_kind", "unknown")
        return f"{family} ({kind})"
    if family == "bernoulli":
        thr = float(attrs.get("softbayes_threshold", 0.5))
        if thr != 0.5:
            group = f"bernoulli (threshold {thr:g})"
    return group


@dataclass
class _Record:
    """What compare needs to know about one fit."""

    name: str
    fit: Any
    family: str
    group: str
    n_obs: int
    labels_hash: str | None
    ll_var: str
    model: Any = None
    labels: np.ndarray | None = None
    log_jacobian: float = 0.0
    notes: list[str] = field(default_factory=list)


def _group_dataset(fit, name):
    grp = fit[name]
    return grp.to_dataset() if hasattr(grp, "to_dataset") else grp


def _record(name, fit) -> _Record:
    if not hasattr(fit, "attrs") or not hasattr(fit, "children"):
        raise TypeError(
            f"fit {name!r}: expected an xarray.DataTree from softbayes.Model.fit, got "
            f"{type(fit).__name__}."
        )
    attrs = _attrs(fit)
    if "softbayes_family" not in attrs:
        raise ValueError(
            f"fit {name!r} is not a softbayes fit (its attrs lack 'softbayes_family'); "
            "compare takes fits from softbayes.Model.fit or softbayes.load_fit."
        )
    for group in ("posterior", "log_likelihood"):
        if group not in fit.children:
            raise ValueError(
                f"fit {name!r} has no {group!r} group; refit with log_likelihood=True."
            )
    ll_var = attrs.get("softbayes_log_likelihood_var")
    ll = _group_dataset(fit, "log_likelihood")
    if ll_var is None:
        if len(ll.data_vars) != 1:
            raise ValueError(
                f"fit {name!r}: the log_likelihood group has several variables "
                f"{list(ll.data_vars)} and no 'softbayes_log_likelihood_var' attr."
            )
        ll_var = next(iter(ll.data_vars))
    if ll_var not in ll:
        raise ValueError(f"fit {name!r}: log_likelihood lacks the variable {ll_var!r}.")
    obs_dims = [d for d in ll[ll_var].dims if d not in SAMPLE_DIMS]
    n_obs = int(np.prod([ll[ll_var].sizes[d] for d in obs_dims]))
    family = attrs["softbayes_family"]
    rec = _Record(
        name=name,
        fit=fit,
        family=family,
        group=elpd_group(fit),
        n_obs=int(attrs.get("softbayes_n_obs", n_obs)),
        labels_hash=attrs.get("softbayes_labels_hash"),
        ll_var=ll_var,
    )
    if rec.n_obs != n_obs:
        raise ValueError(
            f"fit {name!r}: softbayes_n_obs is {rec.n_obs} but its log-likelihood has "
            f"{n_obs} pointwise terms."
        )
    if family == "beta" and int(attrs.get("softbayes_squeeze", 0)):
        n = rec.n_obs
        # z = (y (n - 1) + 1/2) / n: the density of y is p_z(z) |dz/dy|, dz/dy = (n - 1) / n
        rec.log_jacobian = float(np.log((n - 1) / n))
        rec.notes.append(
            f"{name}: Beta fit to squeezed labels (y(n-1)+1/2)/n; its ELPD is put on the "
            f"scale of the original labels with the log-Jacobian log((n-1)/n) = "
            f"{rec.log_jacobian:.4f} per observation."
        )
    return rec


def _model_of(rec: _Record):
    if rec.model is None:
        from softbayes.model import Model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            rec.model = Model.from_fit(rec.fit, check=False)
    return rec.model


def _soft_labels(rec: _Record) -> np.ndarray:
    """The labels as given (before any thresholding or squeezing)."""
    attrs = _attrs(rec.fit)
    if "training_data" in rec.fit.children and "softbayes_label_columns" in attrs:
        from softbayes.io.fits import dataset_to_frame

        frame = dataset_to_frame(rec.fit["training_data"])
        cols = json.loads(attrs["softbayes_label_columns"])
        values = frame[cols].to_numpy(dtype=float)
        return values[:, 0] if rec.family != "soft_categorical" and len(cols) == 1 else values
    if rec.family == "bernoulli" or (
        rec.family == "beta" and int(attrs.get("softbayes_squeeze", 0))
    ):
        raise ValueError(
            f"fit {rec.name!r}: its observed_data holds transformed labels and it has no "
            "training_data group with the original ones."
        )
    obs = _group_dataset(rec.fit, "observed_data")
    return np.asarray(obs[rec.ll_var].values, dtype=float)


# --------------------------------------------------------------------------- guards


def _partition(values: Mapping[str, Any]) -> list[list[str]]:
    groups: dict[Any, list[str]] = {}
    for name, v in values.items():
        groups.setdefault(v, []).append(name)
    return list(groups.values())


def _describe_partition(parts, what):
    return "; ".join(
        f"{{{', '.join(repr(n) for n in part)}}} share {what} {i + 1}"
        for i, part in enumerate(parts)
    )


def _check_same_observations(records: Sequence[_Record]):
    n_part = _partition({r.name: r.n_obs for r in records})
    if len(n_part) > 1:
        sizes = ", ".join(f"{r.name!r}: n={r.n_obs}" for r in records)
        raise ValueError(
            f"Fits have different numbers of observations ({sizes}); ELPD and scores "
            "compare only fits of the same observations."
        )
    missing = [r.name for r in records if r.labels_hash is None]
    if missing:
        raise ValueError(
            f"Fits {missing} record no labels hash (softbayes_labels_hash); cannot check that "
            "all fits describe the same labels."
        )
    l_part = _partition({r.name: r.labels_hash for r in records})
    if len(l_part) > 1:
        raise ValueError(
            "Fits were fit to different labels (softbayes_labels_hash differs): "
            f"{_describe_partition(l_part, 'labels')}. Comparison needs the same labels of "
            "the same observations (as rstanarm's loo_compare requires the same y)."
        )
    # Same observations: the training columns shared by two fits must hold the same values
    # (compared decoded, so a categorical and a string column of the same values agree).
    from softbayes.io.fits import dataset_to_frame

    frames = {}
    for r in records:
        if "training_data" in r.fit.children:
            frame = dataset_to_frame(r.fit["training_data"])
            opts = json.loads(_attrs(r.fit).get("softbayes_options", "{}") or "{}")
            frames[r.name] = frame.drop(columns=[opts.get("weights")], errors="ignore")
    names = list(frames)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            fa, fb = frames[a], frames[b]
            shared = [c for c in fa.columns if c in fb.columns]
            differ = [
                str(c)
                for c in shared
                if not np.array_equal(fa[c].to_numpy(dtype=object), fb[c].to_numpy(dtype=object))
            ]
            if differ:
                raise ValueError(
                    f"Fits {a!r} and {b!r} have the same labels but different values in the "
                    f"shared column(s) {differ}: they were fit to different observations "
                    "(or rows in a different order)."
                )


# --------------------------------------------------------------------------- cross-validation


def _loo(rec: _Record):
    import arviz_stats as azs

    jac = None
    if rec.log_jacobian:
        ll = _group_dataset(rec.fit, "log_likelihood")[rec.ll_var]
        obs_dims = [d for d in ll.dims if d not in SAMPLE_DIMS]
        jac = xr.DataArray(
            np.full([ll.sizes[d] for d in obs_dims], rec.log_jacobian),
            dims=obs_dims,
            coords={d: ll.coords[d] for d in obs_dims if d in ll.coords},
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # high Pareto k is reported by our diagnostics
        return azs.loo(rec.fit, pointwise=True, var_name=rec.ll_var, log_jacobian=jac)


def _psis_means(rec: _Record, elpd, draws: xr.DataArray) -> np.ndarray:
    lw = elpd.log_weights
    obs_dim = [d for d in lw.dims if d not in SAMPLE_DIMS]
    if len(obs_dim) != 1 or "obs" not in draws.dims:
        raise ValueError(f"fit {rec.name!r}: expected one observation dimension 'obs'.")
    lw = lw.rename({obs_dim[0]: "obs"}) if obs_dim[0] != "obs" else lw
    lw = lw.assign_coords(obs=draws["obs"].values)
    mean = loo_predictive_mean(draws, lw)
    return np.asarray(mean.transpose("obs", ...).values, dtype=float)


def _folds(n: int, k: int, seed) -> np.ndarray:
    if not 2 <= k <= n:
        raise ValueError(f"k must be between 2 and the number of observations ({n}), got {k}.")
    rng = np.random.default_rng(seed)
    folds = np.empty(n, dtype=int)
    folds[rng.permutation(n)] = np.arange(n) % k
    return folds


def _kfold(rec: _Record, folds: np.ndarray, *, seed, refit_kwargs, progress):
    """Exact K-fold: refit on each training fold, predict and score the held-out fold."""
    import arviz_stats as azs

    from softbayes.analysis.predict import predict
    from softbayes.model import Model

    model = _model_of(rec)
    attrs = _attrs(rec.fit)
    frame = model.data.reset_index(drop=True)
    k = int(folds.max()) + 1
    n = rec.n_obs
    means = None
    elpd_i = np.empty(n)
    fit_kwargs = {
        "draws": int(attrs.get("softbayes_draws", 1000)),
        "tune": int(attrs.get("softbayes_tune", 1000)),
        "chains": int(attrs.get("softbayes_chains", 4)),
        "sampler": attrs.get("softbayes_sampler"),
    }
    fit_kwargs.update(refit_kwargs or {})
    seed = int(fit_kwargs.pop("random_seed", seed))
    opts = json.loads(attrs.get("softbayes_options", "{}") or "{}")
    fam_kw = {}
    if rec.family == "bernoulli" and "threshold" in opts:
        fam_kw["threshold"] = opts["threshold"]
    if rec.family == "beta" and "squeeze" in opts:
        fam_kw["squeeze"] = bool(opts["squeeze"])
    n_samples = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # one model of the formula for all folds: each fold swaps its training rows in
        # (Model.set_data), reusing the compiled sampler; the formula state (levels,
        # scale() parameters) is that of all rows, so every group level has a parameter
        # the formulas of the model rebuilt (and sandbox-checked) from the fit's attrs, and
        # still untrusted: they came from a file
        sub = Model(
            model.formula,
            frame,
            likelihood=rec.family,
            priors=model.priors_dict(),
            phi_formula=model.phi_formula,
            weights=opts.get("weights"),
            extra_namespace=model.extra_namespace or None,
            _quiet=True,
            _untrusted=True,
            **fam_kw,
        )
    for j in range(k):
        test = np.flatnonzero(folds == j)
        train = np.flatnonzero(folds != j)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            sub.set_data(frame.iloc[train].reset_index(drop=True))
            fit_j = sub.fit(random_seed=int(seed) + 7919 * (j + 1), **fit_kwargs)
        held = frame.iloc[test].reset_index(drop=True)
        # a group level absent from the training rows keeps its prior-drawn effect (the
        # fitted group distribution), as new_groups="sample" would draw it
        ll = predict(
            fit_j, held, kind="log_likelihood", model=sub, new_groups="sample", random_seed=seed
        )
        jac = 0.0
        if rec.family == "beta" and fam_kw.get("squeeze"):
            m = sub.n_obs
            jac = float(np.log((m - 1) / m))
        ll_v = ll.transpose("chain", "draw", "obs").values.reshape(-1, len(test))
        n_samples = ll_v.shape[0]
        elpd_i[test] = sp.logsumexp(ll_v, axis=0) - np.log(ll_v.shape[0]) + jac
        mu = predict(fit_j, held, kind="mean", model=sub, new_groups="sample", random_seed=seed)
        mu_v = mu.mean(dim=list(SAMPLE_DIMS)).transpose("obs", ...).values
        if means is None:
            means = np.empty((n, *mu_v.shape[1:]))
        means[test] = mu_v
        if progress:
            progress(rec.name, j + 1, k)
    # the in-sample lpd for p_kfold, as arviz's loo_kfold
    ll_full = _group_dataset(rec.fit, "log_likelihood")[rec.ll_var]
    ll_full = ll_full.transpose("chain", "draw", ...).values.reshape(-1, n)
    lpd = sp.logsumexp(ll_full, axis=0) - np.log(ll_full.shape[0]) + rec.log_jacobian
    obs = np.arange(n)
    elpd = azs.ELPDDataLOOKFold(
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
    return elpd, means


# --------------------------------------------------------------------------- the result


@dataclass
class Comparison:
    """Result of :func:`compare`. Print it for a readable report.

    Attributes
    ----------
    names : list of str
        The fits, in the order given.
    families : dict
        Fit -> family.
    groups : dict
        ELPD group -> fits in it (fits whose ELPDs are comparable).
    elpd_tables : dict of pandas.DataFrame
        ELPD group -> ``arviz.compare`` table of its fits (unrounded). With
        ``allow_cross_group_elpd=True`` and ``elpd="all"`` also the flagged key
        ``"all (cross-group)"``.
    scores : pandas.DataFrame
        One row per fit, best first by the first score: the ELPD group, the
        cross-validation used (``cv``), per score the total, its SE, the paired difference
        with the best fit and its SE (``<score>_diff``, ``<score>_dse``), and ``ece`` (the
        calibration error of the out-of-sample predictive means).
    score_tables : dict of pandas.DataFrame
        Score -> :func:`softbayes.analysis.scores.score_table` ranking (best first).
    diagnostics : pandas.DataFrame
        One row per fit (see :class:`softbayes.FitDiagnostics`).
    warnings : list of str
        Plain sentences: crossed diagnostic thresholds, K-fold fallbacks, flagged
        cross-group ELPD, data transformations.
    cv : dict
        Fit -> ``"psis-loo"`` or ``"kfold(k=K)"``: how its out-of-sample quantities were
        estimated.
    loo_means : dict of numpy.ndarray
        Fit -> out-of-sample predictive means :math:`E[y_i \\mid x_i, y_{-i}]`, shape
        ``(n,)`` or ``(n, K)``.
    pointwise : dict of pandas.DataFrame
        Score -> (n x fits) pointwise scores.
    labels : numpy.ndarray
        The soft labels the scores use.
    elpd_data : dict
        Fit -> the ArviZ ELPD object (``ELPDDataLOO`` or ``ELPDDataLOOKFold``).
    cross_group_elpd : bool
        True when a cross-group ELPD table was built on request (and is invalid).
    folds : numpy.ndarray or None
        The K-fold assignment (fold index 0..K-1 per observation) when K-fold was used.
    method : str
        Weighting method passed to ``arviz.compare``.
    failed : dict
        Fit -> why it was left out (its PSIS-LOO failed, e.g. stuck chains); such fits are
        in no table, and :attr:`warnings` carries the reason and their diagnostics.
    """

    names: list[str]
    families: dict[str, str]
    groups: dict[str, list[str]]
    elpd_tables: dict[str, pd.DataFrame]
    scores: pd.DataFrame
    score_tables: dict[str, pd.DataFrame]
    diagnostics: pd.DataFrame
    warnings: list[str]
    cv: dict[str, str]
    loo_means: dict[str, np.ndarray]
    pointwise: dict[str, pd.DataFrame]
    labels: np.ndarray
    elpd_data: dict[str, Any] = field(repr=False)
    fit_diagnostics: dict[str, FitDiagnostics] = field(repr=False)
    cross_group_elpd: bool = False
    folds: np.ndarray | None = None
    method: str = "stacking"
    n_bins: int = 10
    notes: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    _records: dict[str, _Record] = field(default_factory=dict, repr=False)

    # -- text -------------------------------------------------------------------------------
    def __str__(self) -> str:
        out = []
        n = len(self.labels)
        out.append(
            f"softbayes model comparison: {len(self.names)} fit{'s' if len(self.names) > 1 else ''}"
            f" of the same {n} soft labels"
        )
        out.append("=" * len(out[0]))
        out.append("")
        for group, table in self.elpd_tables.items():
            if group == CROSS_GROUP:
                continue
            desc = GROUP_DESCRIPTIONS.get(group, group)
            out.append(f"ELPD ({self._elpd_kind(table)}), group '{group}': {desc}")
            out.append(_format_elpd(table))
            out.append("")
        if len([g for g in self.elpd_tables if g != CROSS_GROUP]) > 1:
            out.append(
                "ELPDs of different groups are not comparable (a density of the label, a "
                "cross-entropy and a probability of thresholded labels are different kinds "
                "of numbers). Compare all fits with the common-scale scores below."
            )
            out.append("")
        if CROSS_GROUP in self.elpd_tables:
            out.append(
                "!! CROSS-GROUP ELPD RANKING built on request (allow_cross_group_elpd=True). "
                "It is NOT a valid comparison: do not use it to choose a model."
            )
            out.append(_format_elpd(self.elpd_tables[CROSS_GROUP]))
            out.append("")
        out.append(
            "Common scale: out-of-sample predictive mean E[y_i | x_i, y_-i] scored against "
            "the soft labels"
        )
        out.append(
            "(log score = -cross-entropy, higher is better; Brier score, lower is better; "
            "diff = paired difference with the best fit, dse its SE; ECE = binned "
            f"calibration error, {self.n_bins} bins)"
        )
        out.append(_format_scores(self.scores, self.score_tables))
        out.append("")
        out.append("Diagnostics")
        out.append(_format_diagnostics(self.diagnostics))
        if self.notes:
            out.append("")
            out.append("Notes")
            out.extend(f"  - {s}" for s in self.notes)
        if self.warnings:
            out.append("")
            out.append(f"Warnings ({len(self.warnings)})")
            out.extend(f"  - {w}" for w in self.warnings)
        return "\n".join(out)

    def __repr__(self) -> str:
        return self.__str__()

    def _elpd_kind(self, table):
        kinds = {self.cv.get(name, "psis-loo") for name in table.index}
        return ", ".join(sorted(kinds))

    # -- figures ----------------------------------------------------------------------------
    def plot_elpd(self, group: str | None = None):
        """ELPD comparison plot: one Figure for ``group``, else a dict group -> Figure."""
        from softbayes.analysis.plots import plot_elpd_comparison

        if group is not None:
            if group not in self.elpd_tables:
                raise ValueError(f"No ELPD table {group!r}; have {list(self.elpd_tables)}.")
            return plot_elpd_comparison(self.elpd_tables[group], title=_plot_title(group))
        return {
            g: plot_elpd_comparison(t, title=_plot_title(g)) for g, t in self.elpd_tables.items()
        }

    def _mean_draws(self):
        from softbayes.analysis.predict import predict

        return {
            name: predict(rec.fit, kind="mean", model=_model_of(rec))
            for name, rec in self._records.items()
        }

    def plot_calibration(self, *, n_bins: int | None = None, prob: float = 0.9):
        """Reliability diagram per fit (out-of-sample means binned, posterior bands)."""
        from softbayes.analysis.plots import plot_calibration

        return plot_calibration(
            self.labels,
            self._mean_draws(),
            point=self.loo_means,
            n_bins=n_bins or self.n_bins,
            prob=prob,
            titles={
                n: f"{n} ({self.families[n]}, ECE {self.scores.loc[n, 'ece']:.3f})"
                for n in self.names
            },
        )

    def plot_ppc(self, *, n_draws: int = 50, seed: int = 0):
        """Posterior predictive check of the labels, one panel per fit."""
        from softbayes.analysis.plots import plot_ppc_labels
        from softbayes.analysis.predict import predict

        reps = {
            name: predict(rec.fit, kind="pp", random_seed=seed, model=_model_of(rec))
            for name, rec in self._records.items()
        }
        return plot_ppc_labels(
            self.labels,
            reps,
            n_draws=n_draws,
            seed=seed,
            titles={n: f"{n} ({self.families[n]})" for n in self.names},
        )

    def marginal_effects(self, **kwargs) -> dict[str, pd.DataFrame]:
        """Fit -> :func:`softbayes.marginal_effects` table (``kwargs`` passed on)."""
        from softbayes.analysis.predict import marginal_effects

        return {
            name: marginal_effects(rec.fit, model=_model_of(rec), **kwargs)
            for name, rec in self._records.items()
        }

    def plot_marginal_effects(self, **kwargs):
        """Forest of average marginal effects on E[y | x] across fits."""
        from softbayes.analysis.plots import plot_marginal_effects

        tables = {}
        for name, df in self.marginal_effects(**kwargs).items():
            df = df.copy()
            term = df["variable"].astype(str)
            if "contrast" in df and not (df["contrast"] == "dE/dx").all():
                term = term + np.where(df["contrast"] == "dE/dx", "", ": " + df["contrast"])
            if "class" in df:
                term = term + " [" + df["class"].astype(str) + "]"
            df["term"] = term
            tables[name] = df
        return plot_marginal_effects(tables)

    def figures(self) -> dict:
        """All figures by name: ``elpd_<group>``, ``calibration``, ``ppc``,
        ``marginal_effects`` (the last only when the fits have population-level predictors).
        Save each with ``fig.savefig(f"{name}.png")``."""
        figs = {f"elpd_{_slug(g)}": f for g, f in self.plot_elpd().items()}
        figs["calibration"] = self.plot_calibration()
        figs["ppc"] = self.plot_ppc()
        if any(len(df) for df in self.marginal_effects().values()):
            figs["marginal_effects"] = self.plot_marginal_effects()
        return figs


def _slug(text):
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


def _plot_title(group):
    if group == CROSS_GROUP:
        return "NOT COMPARABLE: cross-group ELPD (allow_cross_group_elpd=True)"
    return f"ELPD, {GROUP_DESCRIPTIONS.get(group, group)}"


def _fmt(x, digits=2):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    return f"{x:.{digits}f}"


def _format_elpd(table: pd.DataFrame) -> str:
    cols = [c for c in ("rank", "elpd", "se", "p", "elpd_diff", "dse", "weight") if c in table]
    extra = [c for c in ("diag_elpd", "diag_diff", "group") if c in table]
    t = table[cols + extra].copy()
    for c in ("elpd", "se", "p", "elpd_diff", "dse"):
        if c in t:
            t[c] = t[c].map(lambda v: _fmt(float(v)))
    if "weight" in t:
        t["weight"] = t["weight"].map(lambda v: _fmt(float(v), 3))
    return t.to_string()


def _format_scores(scores: pd.DataFrame, tables) -> str:
    t = pd.DataFrame(index=scores.index)
    t["group"] = scores["group"]
    t["cv"] = scores["cv"]
    for key in tables:
        t[key] = scores[key].map(lambda v: _fmt(float(v)))
        t[f"{key}_se"] = scores[f"{key}_se"].map(lambda v: _fmt(float(v)))
        t[f"{key}_diff"] = scores[f"{key}_diff"].map(lambda v: _fmt(float(v)))
        t[f"{key}_dse"] = scores[f"{key}_dse"].map(lambda v: _fmt(float(v)))
    t["ece"] = scores["ece"].map(lambda v: _fmt(float(v), 3))
    return t.to_string()


def _format_diagnostics(diag: pd.DataFrame) -> str:
    t = pd.DataFrame(index=diag.index)
    t["rhat_max"] = diag["rhat_max"].map(lambda v: _fmt(float(v), 3))
    t["ess_bulk_min"] = diag["ess_bulk_min"].map(lambda v: _fmt(float(v), 0))
    t["ess_tail_min"] = diag["ess_tail_min"].map(lambda v: _fmt(float(v), 0))
    t["divergent"] = diag["n_divergent"]
    t["bfmi_min"] = diag["bfmi_min"].map(lambda v: _fmt(v if v is None else float(v)))
    t["k_max"] = diag["pareto_k_max"].map(lambda v: _fmt(v if v is None else float(v)))
    t["k>thr"] = [
        "" if pd.isna(b) else int(b) + int(vb)
        for b, vb in zip(diag["n_k_bad"], diag["n_k_very_bad"], strict=True)
    ]
    t["warnings"] = diag["n_warnings"]
    return t.to_string()


# --------------------------------------------------------------------------- compare


def compare(
    fits: Mapping[str, Any],
    *,
    method: str = "stacking",
    scores: Sequence[str] = ("log", "brier"),
    loo: str = "psis",
    k: int = 10,
    kfold_fallback: str | None = "all",
    elpd: str = "by_group",
    allow_cross_group_elpd: bool = False,
    n_bins: int = 10,
    seed: int = 0,
    refit_kwargs: Mapping[str, Any] | None = None,
    progress=None,
    warn: bool = True,
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
        ``progress(fit_name, fold, k)`` after each K-fold refit.
    warn : bool, default True
        Also emit the collected warnings (:attr:`Comparison.warnings`) as one Python
        ``UserWarning``.

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
    if str(method).lower() not in ("stacking", "bb-pseudo-bma", "pseudo-bma"):
        raise ValueError(
            f"method must be 'stacking', 'BB-pseudo-BMA' or 'pseudo-BMA', got {method!r}."
        )

    records = {str(name): _record(str(name), fit) for name, fit in fits.items()}
    recs = list(records.values())
    _check_same_observations(recs)

    # PSIS-LOO first. A fit whose PSIS fails (ArviZ raises e.g. "All tail values are the
    # same" when stuck chains give constant log-likelihood draws) is left out with a warning
    # and its diagnostics, so that the other fits are still compared.
    first_loo: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for r in recs:
        try:
            first_loo[r.name] = _loo(r)
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
    if failed and len(failed) == len(recs):
        raise ValueError("No fit could be compared: " + " | ".join(failed_warns))
    if failed:
        records = {n: r for n, r in records.items() if n not in failed}
        recs = list(records.values())

    groups: dict[str, list[str]] = {}
    for r in recs:
        groups.setdefault(r.group, []).append(r.name)

    if elpd == "all" and len(groups) > 1 and not allow_cross_group_elpd:
        listing = "; ".join(
            f"{g}: {', '.join(repr(n) for n in names)}" for g, names in groups.items()
        )
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

    labels = _soft_labels(recs[0])
    for r in recs:
        r.labels = labels
    warns: list[str] = list(failed_warns)
    notes: list[str] = [note for r in recs for note in r.notes]

    # -- PSIS-LOO, diagnostics ----------------------------------------------------------------
    from softbayes.analysis.predict import predict

    elpd_data = {r.name: first_loo[r.name] for r in recs}
    fit_diag = {r.name: diagnose_fit(r.fit, name=r.name, elpd_data=elpd_data[r.name]) for r in recs}
    unreliable = [
        name for name, d in fit_diag.items() if (d.n_k_bad or 0) + (d.n_k_very_bad or 0) > 0
    ]

    use_kfold: list[str] = []
    if loo == "kfold":
        use_kfold = list(records)
    elif unreliable and kfold_fallback == "all":
        use_kfold = list(records)
    elif unreliable and kfold_fallback == "fit":
        use_kfold = unreliable

    refittable = {}
    for name in use_kfold:
        rec = records[name]
        ok = "training_data" in rec.fit.children and "softbayes_formula" in _attrs(rec.fit)
        refittable[name] = ok
        if not ok:
            warns.append(
                f"{name}: cannot be refit (no training_data group / formula in the fit); "
                "PSIS-LOO kept although K-fold was wanted."
            )
    use_kfold = [n for n in use_kfold if refittable[n]]
    if unreliable and loo == "psis":
        if kfold_fallback is None:
            warns.append(
                f"PSIS-LOO is unreliable for {unreliable} (Pareto k above "
                f"{fit_diag[unreliable[0]].pareto_k_threshold:.2f}); their ELPD and scores "
                "may be biased. Use loo='kfold'."
            )
        elif use_kfold:
            scope = "all fits" if kfold_fallback == "all" else f"{use_kfold}"
            warns.append(
                f"PSIS-LOO is unreliable for {unreliable} (high Pareto k): {scope} re-estimated "
                f"with exact {k}-fold cross-validation (same folds)."
            )

    cv = {name: "psis-loo" for name in records}
    loo_means: dict[str, np.ndarray] = {}
    folds = _folds(recs[0].n_obs, k, seed) if use_kfold else None
    for r in recs:
        if r.name in use_kfold:
            elpd_data[r.name], loo_means[r.name] = _kfold(
                r, folds, seed=seed, refit_kwargs=refit_kwargs, progress=progress
            )
            cv[r.name] = f"kfold(k={k})"
        else:
            draws = predict(r.fit, kind="mean", model=_model_of(r))
            loo_means[r.name] = _psis_means(r, elpd_data[r.name], draws)
    if len(set(cv.values())) > 1:
        warns.append(
            "Out-of-sample estimates mix PSIS-LOO and K-fold "
            f"({', '.join(f'{n}: {c}' for n, c in cv.items())}); K-fold trains on less data "
            "and is slightly pessimistic, so differences between the two kinds are biased."
        )

    # -- ELPD tables ---------------------------------------------------------------------------
    import arviz_stats as azs

    def _az_compare(names):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return azs.compare({n: elpd_data[n] for n in names}, method=method, round_to="none")

    elpd_tables = {g: _az_compare(names) for g, names in groups.items()}
    cross = False
    if elpd == "all" and len(groups) > 1:
        table = _az_compare(list(records))
        table["group"] = [records[n].group for n in table.index]
        table.attrs["cross_group"] = True
        table.attrs["warning"] = "NOT COMPARABLE: ELPDs of different observation models."
        elpd_tables[CROSS_GROUP] = table
        cross = True
        warns.append(
            "Cross-group ELPD ranking built with allow_cross_group_elpd=True: it ranks "
            f"different kinds of numbers ({', '.join(groups)}) and is not a valid model "
            "comparison; use the common-scale scores."
        )
    elif elpd == "all":
        notes.append("elpd='all': all fits are in one ELPD group; its table ranks them all.")

    # -- common-scale scores -------------------------------------------------------------------
    pointwise = {}
    score_tables = {}
    for key in scores:
        fn, higher = SCORES[key]
        pw = {name: fn(loo_means[name], labels) for name in records}
        pointwise[key] = pd.DataFrame(pw)
        score_tables[key] = score_table(pw, higher_is_better=higher)
    first = score_tables[scores[0]]
    table = pd.DataFrame(index=first.index)
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

    diag_table = pd.DataFrame(
        [{c: v for c, v in d.as_dict().items() if c != "name"} for d in fit_diag.values()],
        index=pd.Index(list(fit_diag), name="fit"),
    )
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
        diagnostics=diag_table,
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
        _records=records,
    )
