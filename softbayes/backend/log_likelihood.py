"""Pointwise log-likelihood for models with softbayes weighted potentials.

``pm.compute_log_likelihood`` evaluates observed random variables only, so a model whose
likelihood is a :func:`softbayes.WeightedBernoulli` / :func:`softbayes.WeightedCategorical`
Potential gets no ``log_likelihood`` group, and ``az.loo`` / ``az.compare`` fail on it.
:func:`compute_log_likelihood` fills that group: PyMC's own values for observed variables,
plus one variable per weighted potential with one term per original observation. A
``pm.Potential`` written by hand has no pointwise form: it is left out of the group, with a
warning naming it (:func:`unregistered_potentials`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pymc.model import modelcontext
from pymc.model.transform.conditioning import remove_value_transforms
from pymc.pytensorf import compile as pm_compile
from pytensor.graph.replace import vectorize_graph
from pytensor.graph.traversal import explicit_graph_inputs
from scipy import sparse

from softbayes.distributions.potentials import get_weighted_term
from softbayes.io.fits import posterior_dataset

__all__ = ["compute_log_likelihood", "unregistered_potentials"]

# Target size of one chunk of output rows (float64 values) per compiled call.
_CHUNK_VALUES = 2**22


def _posterior_dataset(idata):
    return posterior_dataset(idata)  # a softbayes fit keeps its centred intercepts apart


def _aggregation_matrix(info):
    """Sparse (n_rows, n_obs) 0/1 matrix summing rows into their original observations."""
    if info.obs_index is None:
        return None
    return sparse.csr_matrix(
        (np.ones(info.n_rows), (np.arange(info.n_rows), info.obs_index)),
        shape=(info.n_rows, info.n_obs),
    )


def _compile_batched(inputs, outputs, compile_kwargs):
    """One function of a leading batch (draw) axis; falls back to a per-draw function."""
    # Named after creation: pt.tensor(name=...) chokes on names numpy can parse as a dtype
    # spec (e.g. Bambi-style "1|g_offset" raises ValueError inside pytensor's check).
    batched_inputs = []
    for v in inputs:
        b = pt.tensor(dtype=v.type.dtype, shape=(None, *v.type.shape))
        b.name = v.name
        batched_inputs.append(b)
    try:
        batched_outputs = vectorize_graph(
            outputs, replace=dict(zip(inputs, batched_inputs, strict=True))
        )
        fn = pm_compile(batched_inputs, batched_outputs, on_unused_input="ignore", **compile_kwargs)
        return fn, True
    except Exception:  # an Op without a batched form: evaluate draw by draw
        fn = pm_compile(inputs, outputs, on_unused_input="ignore", **compile_kwargs)
        return fn, False


def _potential_log_likelihood(model, idata, names, sample_dims, chunk_size, compile_kwargs):
    """Dataset of pointwise log-likelihoods of the weighted potentials ``names``."""
    umodel = remove_value_transforms(model)  # the posterior holds untransformed values
    infos, rows = [], []
    for pot in umodel.potentials:
        if pot.name not in names:
            continue
        info = get_weighted_term(pot, model)
        infos.append(info)
        rows.append(info.rows_of(pot))
    rows = umodel.replace_rvs_by_values(rows)

    value_vars = set(umodel.value_vars)
    inputs = [v for v in explicit_graph_inputs(rows) if v in value_vars]
    posterior = _posterior_dataset(idata)
    missing = [v.name for v in inputs if v.name not in posterior]
    if missing:
        raise ValueError(f"The posterior lacks variables the potentials need: {missing}.")

    fn, batched = _compile_batched(inputs, rows, compile_kwargs)

    arrays = []
    for v in inputs:
        da = posterior[v.name].transpose(*sample_dims, ...)
        arrays.append(da.values.reshape(-1, *da.shape[len(sample_dims) :]))
    sample_shape = tuple(posterior.sizes[d] for d in sample_dims)
    n_draws = int(np.prod(sample_shape))

    aggregators = [_aggregation_matrix(info) for info in infos]
    outs = [np.empty((n_draws, info.n_obs)) for info in infos]
    total_rows = max(1, sum(info.n_rows for info in infos))
    step = chunk_size or max(1, _CHUNK_VALUES // total_rows)
    if not batched:
        step = 1
    for start in range(0, n_draws, step):
        sl = slice(start, min(start + step, n_draws))
        args = [a[sl].astype(v.type.dtype, copy=False) for a, v in zip(arrays, inputs, strict=True)]
        if not batched:
            args = [a[0] for a in args]
        values = fn(*args)
        for out, agg, val in zip(outs, aggregators, values, strict=True):
            val = np.asarray(val).reshape(sl.stop - sl.start, -1)
            out[sl] = val if agg is None else (agg.T @ val.T).T

    coords = {d: posterior[d].values for d in sample_dims if d in posterior.coords}
    data_vars = {}
    for info, out in zip(infos, outs, strict=True):
        obs_coords = model.coords.get(info.obs_dim)
        da_coords = dict(coords)
        da_coords[info.obs_dim] = (
            np.asarray(obs_coords) if obs_coords is not None else np.arange(info.n_obs)
        )
        data_vars[info.name] = xr.DataArray(
            out.reshape(*sample_shape, info.n_obs),
            dims=(*sample_dims, info.obs_dim),
            coords=da_coords,
        )
    return xr.Dataset(data_vars)


def unregistered_potentials(model=None) -> list[str]:
    """The names of ``model``'s potentials that are not softbayes weighted likelihood terms
    (plain ``pm.Potential`` terms, whose pointwise log-likelihood is unknown)."""
    model = modelcontext(model)
    return [pot.name for pot in model.potentials if get_weighted_term(pot, model) is None]


def _warn_unregistered(names, stacklevel):
    warnings.warn(
        f"The model's potentials {names} are not softbayes likelihood terms: their "
        "contribution is not in the log_likelihood group, so az.loo / az.compare on it "
        "leave them out. If they are likelihood terms, write them with "
        "softbayes.WeightedBernoulli / WeightedCategorical (registered potentials) or as "
        "observed variables (softbayes.SoftBernoulli, SoftCategorical); if they are part of "
        "the prior, ignore this warning.",
        UserWarning, stacklevel=stacklevel + 1)


def compute_log_likelihood(
    idata,
    model=None,
    *,
    var_names: Sequence[str] | None = None,
    extend_inferencedata: bool = True,
    sample_dims: Sequence[str] = ("chain", "draw"),
    chunk_size: int | None = None,
    progressbar: bool = False,
    compile_kwargs: dict | None = None,
):
    """Pointwise log-likelihood of observed variables *and* softbayes weighted potentials.

    Like :func:`pymc.compute_log_likelihood` (used as is for the observed random variables),
    plus, for every :func:`softbayes.WeightedBernoulli` / :func:`softbayes.WeightedCategorical`
    potential, a ``log_likelihood`` variable named after it with dims
    ``(chain, draw, <obs dim>)``: one term per *original* observation, the rows of one
    duplicated point summed through its ``obs_index``. Afterwards ``az.loo`` and
    ``az.compare`` work on Potential-based models. Any other ``pm.Potential`` of the model
    (one written by hand) cannot be split by observation: it is left out, with a
    ``UserWarning`` naming it (when ``var_names`` is None).

    Parameters
    ----------
    idata : xarray.DataTree
        Result of sampling, with a ``posterior`` group.
    model : pm.Model, optional
        Defaults to the model on the context stack.
    var_names : sequence of str, optional
        Observed variables and/or weighted potentials to evaluate (default: all of them).
    extend_inferencedata : bool, default True
        Put the ``log_likelihood`` group into ``idata`` (replacing an existing one, as PyMC
        does) and return ``idata``; otherwise return the Dataset.
    sample_dims : sequence of str, default ("chain", "draw")
    chunk_size : int, optional
        Draws per call of the compiled function (default: about 4 M output values a call).
        The function is compiled once, with a batch axis over draws; the posterior is read
        through views, so memory beyond the output is one chunk.
    progressbar : bool, default False
        Passed to PyMC for the observed variables.
    compile_kwargs : dict, optional
        Passed to the compiler (e.g. ``{"mode": "NUMBA"}``).

    Returns
    -------
    xarray.DataTree or xarray.Dataset
    """
    model = modelcontext(model)
    compile_kwargs = dict(compile_kwargs or {})
    sample_dims = tuple(sample_dims)

    observed = [rv.name for rv in model.observed_RVs]
    weighted = [pot.name for pot in model.potentials if get_weighted_term(pot, model) is not None]
    unregistered = unregistered_potentials(model)
    if var_names is None:
        obs_names, pot_names = observed, weighted
    else:
        var_names = list(var_names)
        unknown = [n for n in var_names if n not in observed and n not in weighted]
        if unknown:
            raise ValueError(
                f"var_names must name observed variables or softbayes weighted potentials; "
                f"unknown: {unknown}. Available: {observed + weighted}."
            )
        obs_names = [n for n in var_names if n in observed]
        pot_names = [n for n in var_names if n in weighted]
    if not obs_names and not pot_names:
        plain = (f" (its potentials {unregistered} are plain pm.Potential terms)"
                 if unregistered else "")
        raise ValueError(
            "The model has no observed variables and no softbayes weighted potentials"
            f"{plain}; there is no likelihood to evaluate. Write soft-label likelihoods with "
            "softbayes.WeightedBernoulli / WeightedCategorical or as observed variables."
        )
    if unregistered and var_names is None:
        _warn_unregistered(unregistered, stacklevel=2)

    parts = []
    if obs_names:
        parts.append(
            pm.compute_log_likelihood(
                xr.DataTree.from_dict({"posterior": _posterior_dataset(idata)}),
                var_names=obs_names,
                extend_inferencedata=False,
                model=model,
                sample_dims=sample_dims,
                progressbar=progressbar,
                compile_kwargs=compile_kwargs or None,
            )
        )
    if pot_names:
        parts.append(
            _potential_log_likelihood(
                model, idata, set(pot_names), sample_dims, chunk_size, compile_kwargs
            )
        )
    dataset = xr.merge(parts, compat="override", join="outer", combine_attrs="drop_conflicts")
    if not extend_inferencedata:
        return dataset
    idata["log_likelihood"] = dataset
    return idata
