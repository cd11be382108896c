r"""Predictions and average marginal effects from a fit, in NumPy on the posterior draws.

Nothing here compiles a graph: the model's description is rebuilt from the fit
(:func:`softbayes.io.fits.description_from_fit`, a formula evaluation) unless given, and the
family's single math definition (:mod:`softbayes.terms.families`) is applied to the draws
(:meth:`softbayes.terms.description.ModelDescription.params`).

Both functions take ``model=``: a :class:`softbayes.Model`, a
:class:`~softbayes.terms.description.ModelDescription`, or anything with a ``description``
attribute that is one (:func:`softbayes.terms.description.as_description`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from softbayes.backend.build import label_dims
from softbayes.backend.result import predictive_dataset
from softbayes.io.attrs import FitAttrs
from softbayes.io.fits import (
    OBS_DIM,
    description_from_fit,
    fit_likelihood_var,
    obs_coords,
    posterior_dataset,
)
from softbayes.terms.description import as_description
from softbayes.terms.predictor import CLASS_DIM

__all__ = ["marginal_effects", "predict", "predictive_draws"]

KINDS = ("mean", "pp", "linear", "log_likelihood")


def _model_of(fit, model):
    """The model description of ``fit``: ``model``'s, or rebuilt from the fit."""
    if model is not None:
        return as_description(model)
    return description_from_fit(fit, check=False)


def _posterior(fit):
    return posterior_dataset(fit)


def _observed(model, data, n_ref):
    """The labels of the predicted rows as the likelihood sees them, or None when ``data``
    lacks the label columns."""
    if data is None:
        return model.labels
    if not all(c in data.columns for c in model.response.data_columns):
        return None
    return model.prepare_labels(data, n_ref=n_ref)[0]


def _pp_tree(fit, model, data, values, sample, obs) -> xr.DataTree:
    """``kind="pp"``: the draws as a ``posterior_predictive`` group, with the rows' labels as
    ``observed_data`` when known -- what ArviZ's predictive checks read."""
    name = fit_likelihood_var(fit)
    groups = {"posterior_predictive": predictive_dataset(model, values, sample, obs,
                                                         name=name)}
    n_ref = FitAttrs.from_attrs(fit.attrs, warn_unknown=False).n_obs
    labels = _observed(model, data, n_ref)
    if labels is not None:
        coords = {OBS_DIM: obs}
        if model.family.multiclass:
            coords[CLASS_DIM] = model.class_labels
        groups["observed_data"] = xr.Dataset({name: (label_dims(model), labels)},
                                             coords=coords)
    return xr.DataTree.from_dict(groups)


def predict(fit, data=None, kind="mean", *, random_seed=None, new_groups="error", model=None):
    r"""Posterior of :math:`E[y \mid x]`, posterior-predictive draws or log-likelihoods.

    Parameters
    ----------
    fit : xarray.DataTree
        A fit from :meth:`softbayes.Model.fit` (or :func:`softbayes.load_fit`).
    data : pandas.DataFrame, optional
        Rows to predict (default: the training data stored in the fit). Needs the
        predictor columns; categorical predictors only training levels.
    kind : {"mean", "pp", "linear", "log_likelihood"}
        ``"mean"``: :math:`E[y \mid x]` per draw -- sigmoid of the linear predictor for
        ``weighted_bernoulli`` and ``bernoulli``, the Continuous Bernoulli mean of
        :math:`\lambda` (not :math:`\lambda`) for ``continuous_bernoulli``, :math:`\mu` for
        ``beta``, the probability vector for ``soft_categorical``. ``"pp"``: one
        posterior-predictive draw of the label per posterior draw (hard 0/1 labels or
        one-hot rows for the cross-entropy and Bernoulli families, Continuous Bernoulli /
        Beta draws otherwise). ``"linear"``: the linear predictor (logit / logits).
        ``"log_likelihood"``: the pointwise log-likelihood of the labels in ``data`` (which
        must then hold the label columns, and the weights column if the fit had one) --
        out-of-sample log predictive densities for cross-validation.
    random_seed : int, optional
        Seed for ``"pp"`` draws and for ``new_groups="sample"``.
    new_groups : {"error", "sample", "zero"}
        Levels of a grouping factor unseen in training: an error, effects drawn from the
        fitted group distribution, or zero (population-level prediction).
    model : softbayes.Model or ModelDescription, optional
        The fit's model (or its description), to skip rebuilding it. Label transformations
        that use the training size (the Beta squeeze) take it from the fit's attrs.

    Returns
    -------
    xarray.DataArray or xarray.DataTree
        ``"mean"``, ``"linear"``, ``"log_likelihood"``: a DataArray with dims
        ``(chain, draw, obs)``, plus ``class`` for the multiclass families. ``"pp"``: a
        DataTree like a fit's predictive groups -- ``posterior_predictive`` holding one
        variable named as the fit's observed variable (the label column), and
        ``observed_data`` with the rows' labels when they are known (the training rows, or
        ``data`` holding the label columns) -- so ``az.plot_ppc_dist`` takes it as it is;
        its attrs say what the draws are (``predictive_check``: ``"density"`` for labels on
        the label scale, ``"reliability"`` for hard outcomes). ``obs`` holds the rows'
        index where that is unique integers or strings, else ``0 .. n-1``
        (:func:`softbayes.io.fits.obs_coords`), in the order of the rows.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    model = _model_of(fit, model)
    post = _posterior(fit)
    if data is not None:
        model.check_new_data(data, labels=kind == "log_likelihood")
    rows = model.data if data is None else data
    rng = np.random.default_rng(random_seed)
    fam = model.family
    if kind == "log_likelihood":
        n_ref = FitAttrs.from_attrs(fit.attrs, warn_unknown=False).n_obs
        values = model.log_likelihood(post, data, n_ref=n_ref, new_groups=new_groups, rng=rng)
    else:
        params = model.params(post, rows, new_groups=new_groups, rng=rng)
        if kind == "mean":
            values = fam.mean(**params)
        elif kind == "linear":
            values = params["eta"]
        else:
            values = fam.draws(rng, **params)
    values = np.asarray(values, dtype=float)
    sample = {"chain": post["chain"].values, "draw": post["draw"].values}
    obs = obs_coords(rows)
    if kind == "pp":
        return _pp_tree(fit, model, data, values, sample, obs)
    dims = ["chain", "draw", OBS_DIM]
    coords = {**sample, OBS_DIM: obs}
    if values.ndim == 4:
        dims.append(CLASS_DIM)
        coords[CLASS_DIM] = model.class_labels
    name = {"mean": "mean", "linear": "eta", "log_likelihood": fit_likelihood_var(fit)}[kind]
    return xr.DataArray(values, dims=dims, coords=coords, name=name,
                        attrs={"kind": kind, **FitAttrs(family=fam.name).to_attrs()})


def predictive_draws(fit, data=None, *, random_seed=None, new_groups="error", model=None):
    """The posterior predictive draws of :func:`predict` ``kind="pp"`` as one DataArray,
    dims ``(chain, draw, obs[, class])`` (the variable of its ``posterior_predictive``)."""
    tree = predict(fit, data, "pp", random_seed=random_seed, new_groups=new_groups,
                   model=model)
    (da,) = tree["posterior_predictive"].to_dataset().data_vars.values()
    return da


def _interval(samples, prob, interval):
    """Lower/upper bounds over the first axis (ETI or HDI)."""
    if interval == "eti":
        lo, hi = np.quantile(samples, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        return lo, hi
    if interval != "hdi":
        raise ValueError(f"interval must be 'eti' or 'hdi', got {interval!r}.")
    s = np.sort(samples, axis=0)
    n = s.shape[0]
    k = max(1, int(np.floor(prob * n)))
    widths = s[k:] - s[: n - k]
    i = np.argmin(widths, axis=0)
    lo = np.take_along_axis(s, i[None], axis=0)[0]
    hi = np.take_along_axis(s, (i + k)[None], axis=0)[0]
    return lo, hi


def _level_effects(mean_of, rows, var, col, levels):
    """``[(contrast, E[y | level] - E[y | reference])]`` of a categorical predictor, every row
    set to each level in turn (``levels``: formulae's, reference first, if known)."""
    if levels is not None:
        levels = list(levels)
    elif isinstance(col.dtype, pd.CategoricalDtype):
        levels = list(col.cat.categories)
    else:
        levels = sorted(pd.unique(col), key=lambda v: (str(type(v)), v))
    ref = levels[0]
    base_frame = rows.copy()
    base_frame[var] = pd.Series([ref] * len(rows), index=rows.index).astype(col.dtype)
    base = mean_of(base_frame)
    effects = []
    for lev in levels[1:]:
        f = rows.copy()
        f[var] = pd.Series([lev] * len(rows), index=rows.index).astype(col.dtype)
        effects.append((f"{lev} - {ref}", mean_of(f) - base))
    return effects


def _summary_rows(model, var, contrast, eff, prob, interval):
    """The table rows (one per class) of the average of the effect ``eff`` over the rows."""
    fam = model.family
    ame = eff.mean(axis=2)  # (chain, draw[, class])
    flat = ame.reshape((-1, *ame.shape[2:]))
    lo, hi = _interval(flat, prob, interval)
    est, sd = flat.mean(axis=0), flat.std(axis=0, ddof=1)
    out = []
    for k, cls in enumerate(model.class_labels if fam.multiclass else [None]):
        idx = (k,) if fam.multiclass else ()
        row = {"family": fam.name, "formula": model.formula, "variable": var,
               "contrast": contrast}
        if fam.multiclass:
            row["class"] = cls
        row.update({"estimate": float(est[idx]), "sd": float(sd[idx]),
                    "lower": float(lo[idx]), "upper": float(hi[idx]), "prob": prob,
                    "interval": interval})
        out.append(row)
    return out


def marginal_effects(fit, data=None, variables=None, *, prob=0.94, interval="eti",
                     eps=1e-4, new_groups="error", model=None):
    r"""Average marginal effect of each predictor on :math:`E[y \mid x]`.

    For a numeric predictor ``x``: the derivative :math:`\partial E[y \mid x] / \partial x`
    by central finite difference (step ``eps * sd(x)`` on the training data), through every
    term ``x`` enters (transformations, interactions, group-level slopes), averaged over the
    rows of ``data``. For a categorical predictor: for each level, the average change in
    :math:`E[y \mid x]` when every row is set to that level instead of the reference level
    (the first of formulae's levels, the model's reference). Computed per posterior draw,
    then summarized, so the interval is that of the average effect. On the mean scale,
    different families are comparable side by side
    (``pd.concat`` of their tables).

    Parameters
    ----------
    fit : xarray.DataTree
    data : pandas.DataFrame, optional
        Rows to average over (default: the training data).
    variables : list of str, optional
        Predictor columns (default: every column in the population-level terms).
    prob : float, default 0.94
        Interval probability.
    interval : {"eti", "hdi"}
        Equal-tailed or highest-density interval.
    eps : float
        Relative finite-difference step.
    new_groups : see :func:`predict`.
    model : softbayes.Model or ModelDescription, optional

    Returns
    -------
    pandas.DataFrame
        Columns ``family``, ``formula``, ``variable``, ``contrast`` (``"dE/dx"`` or
        ``"level - reference"``), ``class`` (``soft_categorical`` only), ``estimate`` (the
        posterior mean), ``sd``, ``lower``, ``upper``, ``prob``, ``interval``.
    """
    model = _model_of(fit, model)
    post = _posterior(fit)
    rows = (model.data if data is None else data).copy()
    if data is not None:
        model.check_new_data(rows)
    design = model.main.design
    common_vars = set()
    categorical = set()
    for t in design.common_terms:
        common_vars |= {v for v in t.var_names if v in model.predictor_columns}
        categorical |= t.categorical_vars
    if variables is None:
        variables = sorted(common_vars)
    else:
        bad = [v for v in variables if v not in common_vars]
        if bad:
            raise ValueError(
                f"variables {bad} are not population-level predictors of {model.formula!r} "
                f"(those are {sorted(common_vars)})."
            )
    fam = model.family

    def mean_of(frame):
        return fam.mean(**model.params(post, frame, new_groups=new_groups,
                                       rng=np.random.default_rng(0)))

    out = []
    for var in variables:
        col = model.data[var]
        is_cat = (
            var in categorical
            or isinstance(col.dtype, pd.CategoricalDtype)
            or pd.api.types.is_bool_dtype(col.dtype)
            or not pd.api.types.is_numeric_dtype(col.dtype)
        )
        if not is_cat:
            sd = float(np.std(col.to_numpy(dtype=float), ddof=1)) if len(col) > 1 else 1.0
            h = eps * (sd if sd > 0 else 1.0)
            up, down = rows.copy(), rows.copy()
            up[var] = rows[var].to_numpy(dtype=float) + h
            down[var] = rows[var].to_numpy(dtype=float) - h
            effects = [("dE/dx", (mean_of(up) - mean_of(down)) / (2 * h))]
        else:
            effects = _level_effects(mean_of, rows, var, col, design.levels.get(var))
        for contrast, eff in effects:
            out += _summary_rows(model, var, contrast, eff, prob, interval)
    columns = ["family", "formula", "variable", "contrast"]
    columns += ["class"] if fam.multiclass else []
    columns += ["estimate", "sd", "lower", "upper", "prob", "interval"]
    return pd.DataFrame(out, columns=columns)
