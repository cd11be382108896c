"""What :func:`compare` reads from each fit, the ELPD groups, and the same-observations guard."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from softbayes.io.attrs import FitAttrs, attr_key
from softbayes.io.fits import TRAINING_GROUP, dataset_to_frame
from softbayes.terms.design import parse_response
from softbayes.terms.families import Family, family_class, family_names, get_family

__all__ = [
    "CROSS_GROUP",
    "ELPD_GROUPS",
    "GROUP_DESCRIPTIONS",
    "SAMPLE_DIMS",
    "FitRecord",
    "check_same_observations",
    "elpd_group",
    "fit_attrs",
    "fit_family",
    "fit_record",
    "group_dataset",
    "soft_labels",
    "training_frame",
]

SAMPLE_DIMS = ("chain", "draw")

#: Family name -> ELPD group, as each family declares it. Fits in one group have observation
#: models whose pointwise log-likelihoods are the same kind of number for the same data, so
#: their ELPDs compare.
ELPD_GROUPS = {name: family_class(name).elpd_group for name in family_names()}

#: ELPD group -> what its log-likelihoods are, for reports.
GROUP_DESCRIPTIONS = {
    family_class(name).elpd_group: family_class(name).elpd_group_description
    for name in family_names()
}

#: Key of the flagged ELPD table that ranks fits across groups (on request only).
CROSS_GROUP = "all (cross-group)"


def fit_attrs(fit, *, source="the fit") -> FitAttrs:
    """The checked ``softbayes_*`` attrs of a fit (keys this version does not know are
    ignored quietly).

    Raises
    ------
    softbayes.io.attrs.FitFileError
        (a ValueError) naming ``source`` and the attr that fails its check.
    """
    return FitAttrs.from_attrs(getattr(fit, "attrs", None), source=source, warn_unknown=False)


def fit_family(attrs: FitAttrs) -> Family:
    """The registry's family of a softbayes fit, with the options recorded in the fit."""
    return get_family(attrs.family, **(attrs.options or {}))


def elpd_group(fit) -> str:
    """The ELPD group of a softbayes fit (see :data:`ELPD_GROUPS`).

    A family may refine its group by its options: Bernoulli fits with a threshold other than
    0.5 form their own group per threshold (different thresholds make different hard labels).
    """
    attrs = fit_attrs(fit)
    if attrs.family is None:
        raise ValueError(f"Not a softbayes fit: its attrs lack {attr_key('family')!r}.")
    return fit_family(attrs).comparison_group()


def group_dataset(fit, name):
    """The group ``name`` of a fit as an ``xarray.Dataset``."""
    grp = fit[name]
    return grp.to_dataset() if hasattr(grp, "to_dataset") else grp


def training_frame(fit):
    """The training rows stored in a fit, as a data frame with a fresh 0..n-1 index."""
    return dataset_to_frame(fit[TRAINING_GROUP]).reset_index(drop=True)


@dataclass
class FitRecord:
    """What :func:`compare` knows about one fit.

    Attributes
    ----------
    name : str
        The fit's name in the comparison.
    fit : xarray.DataTree
        The fit.
    attrs : softbayes.io.attrs.FitAttrs
        Its checked ``softbayes_*`` attrs.
    family : str
        The family's name.
    group : str
        Its ELPD group (:func:`elpd_group`).
    n_obs : int
        Number of observations (pointwise log-likelihood terms).
    labels_hash : str or None
        The recorded hash of the labels.
    ll_var : str
        The variable of the ``log_likelihood`` group.
    likelihood : Family
        The registry's family with the fit's options.
    description : object
        The fit's model description, rebuilt on first use (see
        :func:`softbayes.analysis.comparison.cross_validation.description_of`).
    labels : numpy.ndarray or None
        The soft labels the common-scale scores use.
    log_jacobian : float
        Per-observation log-Jacobian putting the ELPD on the scale of the labels as given.
    n_columns : int
        Number of label columns (K for a multiclass family).
    notes : list of str
        Plain sentences for the report.
    """

    name: str
    fit: Any
    attrs: FitAttrs
    family: str
    group: str
    n_obs: int
    labels_hash: str | None
    ll_var: str
    likelihood: Family
    description: Any = None
    labels: np.ndarray | None = None
    log_jacobian: float = 0.0
    n_columns: int = 1
    notes: list[str] = field(default_factory=list)


def _log_likelihood_var(name, fit, attrs: FitAttrs) -> str:
    ll_var = attrs.log_likelihood_var
    ll = group_dataset(fit, "log_likelihood")
    if ll_var is None:
        if len(ll.data_vars) != 1:
            raise ValueError(
                f"fit {name!r}: the log_likelihood group has several variables "
                f"{list(ll.data_vars)} and no {attr_key('log_likelihood_var')!r} attr."
            )
        ll_var = next(iter(ll.data_vars))
    if ll_var not in ll:
        raise ValueError(f"fit {name!r}: log_likelihood lacks the variable {ll_var!r}.")
    return ll_var


def _checked_attrs(name, fit) -> FitAttrs:
    """The attrs of a fit with the groups compare needs (an error naming the fit otherwise)."""
    if not hasattr(fit, "attrs") or not hasattr(fit, "children"):
        raise TypeError(
            f"fit {name!r}: expected an xarray.DataTree from softbayes.Model.fit, got "
            f"{type(fit).__name__}."
        )
    attrs = fit_attrs(fit, source=f"fit {name!r}")
    if attrs.family is None:
        raise ValueError(
            f"fit {name!r} is not a softbayes fit (its attrs lack {attr_key('family')!r}); "
            "compare takes fits from softbayes.Model.fit or softbayes.load_fit."
        )
    for group in ("posterior", "log_likelihood"):
        if group not in fit.children:
            raise ValueError(
                f"fit {name!r} has no {group!r} group; refit with log_likelihood=True."
            )
    return attrs


def fit_record(name, fit) -> FitRecord:
    """Check that ``fit`` is a softbayes fit with a pointwise log-likelihood and record it."""
    attrs = _checked_attrs(name, fit)
    ll_var = _log_likelihood_var(name, fit, attrs)
    ll = group_dataset(fit, "log_likelihood")[ll_var]
    n_obs = int(np.prod([ll.sizes[d] for d in ll.dims if d not in SAMPLE_DIMS]))
    family = fit_family(attrs)
    rec = FitRecord(
        name=name,
        fit=fit,
        attrs=attrs,
        family=attrs.family,
        group=family.comparison_group(),
        n_obs=n_obs if attrs.n_obs is None else attrs.n_obs,
        labels_hash=attrs.labels_hash,
        ll_var=ll_var,
        likelihood=family,
        n_columns=len(attrs.label_columns or ()) or 1,
    )
    if rec.n_obs != n_obs:
        raise ValueError(
            f"fit {name!r}: {attr_key('n_obs')} is {rec.n_obs} but its log-likelihood has "
            f"{n_obs} pointwise terms."
        )
    rec.log_jacobian = family.label_log_jacobian(rec.n_obs, rec.n_columns)
    if rec.log_jacobian:
        # a constant per-observation Jacobian of a density of the label is that of an affine
        # map of the label space ([0, 1] or the simplex) into itself: the labels were
        # squeezed towards the interior
        space = "the simplex" if family.multiclass else "[0, 1]"
        rec.notes.append(
            f"{name}: {rec.family} fit to labels squeezed into the interior of {space} by its "
            "family; its ELPD is put on the scale of the original labels with the "
            f"log-Jacobian {rec.log_jacobian:.4f} per observation."
        )
    return rec


def soft_labels(rec: FitRecord) -> np.ndarray:
    """The labels as given (before any thresholding or squeezing; the proportions k / m of
    a ``p(k, m)`` response)."""
    cols = rec.attrs.label_columns
    response = parse_response(rec.attrs.formula)[0] if rec.attrs.formula else None
    if TRAINING_GROUP in rec.fit.children and response is not None and response.counts:
        return response.labels(training_frame(rec.fit))
    if TRAINING_GROUP in rec.fit.children and cols is not None:
        values = training_frame(rec.fit)[cols].to_numpy(dtype=float)
        return values[:, 0] if not rec.likelihood.multiclass and len(cols) == 1 else values
    if rec.likelihood.transforms_labels():
        raise ValueError(
            f"fit {rec.name!r}: its observed_data holds transformed labels and it has no "
            "training_data group with the original ones."
        )
    obs = group_dataset(rec.fit, "observed_data")
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


def _check_same_labels(records: Sequence[FitRecord]):
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
            f"Fits {missing} record no labels hash ({attr_key('labels_hash')}); cannot check that "
            "all fits describe the same labels."
        )
    l_part = _partition({r.name: r.labels_hash for r in records})
    if len(l_part) > 1:
        raise ValueError(
            f"Fits were fit to different labels ({attr_key('labels_hash')} differs): "
            f"{_describe_partition(l_part, 'labels')}. Comparison needs the same labels of "
            "the same observations (as rstanarm's loo_compare requires the same y)."
        )


def check_same_observations(records: Sequence[FitRecord]):
    """Raise a ``ValueError`` naming the fits unless all describe the same labels of the
    same observations (count, labels hash, and the values of the training columns they
    share)."""
    _check_same_labels(records)
    # the training columns shared by two fits must hold the same values (compared decoded,
    # so a categorical and a string column of the same values agree)
    frames = {}
    for r in records:
        if TRAINING_GROUP in r.fit.children:
            weights = (r.attrs.options or {}).get("weights")
            frames[r.name] = training_frame(r.fit).drop(columns=[weights], errors="ignore")
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
