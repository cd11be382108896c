"""Refits without recompiling: new rows (or labels) for a model of the same formula.

The model's data -- the centred design matrix, group-level columns and indices, labels and
row weights -- are ``pm.Data`` containers with a flexible number of rows
(:meth:`softbayes.Model._build`). :func:`set_data` evaluates new rows with the *stored*
formula state (categorical and group levels, ``scale()`` / ``center()`` parameters, the
centring means and the priors of the original data), rebuilds the (cheap) PyMC graph and, if
the model was compiled for nutpie, swaps the data into the compiled sampler with nutpie's
``CompiledModel.with_data`` -- the numba compilation, which dominates the time to the first
draw, is done once per model structure. With ``sampler="pymc"`` PyTensor's compilation cache
does the same job.

Restrictions: the new rows may not hold group levels or categorical levels unseen in the
original data (the model's parameters are those of the original levels; levels absent from
the new rows keep their prior through partial pooling). Stateful transforms are *not*
re-estimated on the new rows: a ``Model`` built from scratch on them would centre and scale
with their own statistics and set default priors from them, so its posterior differs
slightly (a reparametrization of the intercept and, for data-dependent default priors, their
scales).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

__all__ = ["refit", "set_data"]


def _design_for(design, frame):
    """A shallow copy of ``design`` evaluated on ``frame`` with the training state."""
    new = copy.copy(design)
    new.X = design.common_matrix(frame)
    new.n = len(frame)
    parts = design.group_parts(frame) if design.group_terms else []
    for g, (_, _, levels) in zip(design.group_terms, parts, strict=True):
        if levels:
            raise ValueError(
                f"set_data: group-level term {g.name!r} has {len(levels)} level(s) not in the "
                f"model's data ({levels[:5]}); a refit keeps the model's parameters. Build a new "
                "softbayes.Model for data with new groups."
            )
    new.group_parts_train = parts
    return new


def _used_columns(model):
    cols = list(model.label_columns) + list(model.predictor_columns)
    if model.weights_column is not None:
        cols.append(model.weights_column)
    return cols


def set_data(model, data, *, weights=None):
    """Replace the model's rows by ``data`` (same formula), keeping the compiled sampler.

    Parameters
    ----------
    model : softbayes.Model
    data : pandas.DataFrame
        Label, predictor (and weights) columns of the model, any number of rows.
    weights : array_like, optional
        Row weights when the model's weights were given as an array (not a column).

    Returns
    -------
    softbayes.Model
        ``model``, changed in place.
    """
    from softbayes.model import WEIGHTS_COLUMN
    from softbayes.terms.design import check_columns

    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
    data = data.copy()
    if model.weights_column == WEIGHTS_COLUMN and WEIGHTS_COLUMN not in data.columns:
        if weights is None:
            raise ValueError(
                "set_data: the model's weights were given as an array; pass weights= for the "
                "new rows."
            )
        data[WEIGHTS_COLUMN] = np.asarray(weights)
    elif weights is not None:
        raise ValueError("set_data: weights= applies to models whose weights were an array.")
    cols = _used_columns(model)
    check_columns(data, cols, what="model (new data)")
    frame = data[cols].reset_index(drop=True)
    if len(frame) == 0:
        raise ValueError("set_data: data has no rows.")

    main = _design_for(model._main.design, frame)
    phi = _design_for(model._phi.design, frame) if model._phi is not None else None

    saved = {k: getattr(model, k) for k in ("data", "n_obs", "labels", "labels_info",
                                            "weights")}
    model.data = frame
    model.n_obs = len(frame)
    try:
        model._set_labels_from_frame(quiet=True)
        if model.weights_column is not None:
            from softbayes.data.validation import validate_weights

            model.weights = validate_weights(
                frame[model.weights_column].to_numpy(), model.n_obs,
                name=f"weights column {model.weights_column!r}",
            )
    except Exception:
        for k, v in saved.items():
            setattr(model, k, v)
        raise
    model._main.design = main
    if phi is not None:
        model._phi.design = phi
    compiled = model._compiled
    model._pymc_model = model._build()
    model._compiled = None if compiled is None else swap_compiled(compiled, model._pymc_model)
    return model


def swap_compiled(compiled, pymc_model):
    """``compiled.with_data(...)`` with every shared value of ``pymc_model`` (by name).

    Returns None (recompile on the next fit) if a shared variable of the compiled model has
    no counterpart in ``pymc_model``.
    """
    named = dict(pymc_model.named_vars)
    named.update({k: v for k, v in pymc_model.dim_lengths.items() if k not in named})
    updates = {}
    for var in compiled.shared_var_keys:
        new = named.get(var.name)
        if new is None or not hasattr(new, "get_value"):
            return None
        updates[var.name] = np.asarray(new.get_value())
    try:
        return compiled.with_data(**updates)
    except (KeyError, ValueError):
        return None


def refit(model, data=None, labels=None, *, weights=None, **fit_kwargs):
    """:func:`set_data` and/or :meth:`Model.set_labels`, then :meth:`Model.fit`."""
    if data is not None:
        set_data(model, data, weights=weights)
    if labels is not None:
        model.set_labels(labels)
    return model.fit(**fit_kwargs)
