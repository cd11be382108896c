"""The PyMC model of a model description: priors, linear predictors, likelihood term.

:func:`build_pymc_model` turns a :class:`~softbayes.terms.description.ModelDescription` into a
``pm.Model`` whose row-indexed inputs (centred design, group-level columns and indices,
labels, row weights) are ``pm.Data`` containers with a flexible number of rows, so that a
compiled model can take other rows or labels without recompiling
(:class:`softbayes.backend.refit.Refitter`) and ADVI can swap in minibatch views
(:mod:`softbayes.backend.approx`).

:func:`build_sampling_model` is the model NUTS samples when identical rows collapse: for
families whose log-likelihood is a weighted sum over rows, linear in the label given the
linear predictor (:attr:`Family.aggregates_rows <softbayes.terms.families.base.Family>`), on
a fused kernel, rows with the same design row become one row whose weight is their summed
weight and whose label is their weighted mean label
(:func:`softbayes.data.aggregation.aggregate_rows`): the same log-density, up to rounding,
from fewer rows. The pointwise log-likelihood, the observed data and everything else of a
fit come from :func:`build_pymc_model`, one entry per original row.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

from softbayes.data.aggregation import aggregate_rows
from softbayes.io.fits import LOGLIK_VAR, OBS_DIM, likelihood_var, obs_coords
from softbayes.terms.predictor import CLASS_DIM, CLASS_REDUCED_DIM

__all__ = [
    "AGGREGATE_MIN_SHARE",
    "LABELS_DATA",
    "TEMPERING_TERM",
    "TRIALS_DATA",
    "WEIGHTS_DATA",
    "aggregated_rows",
    "build_pymc_model",
    "build_sampling_model",
    "data_containers",
    "label_dims",
    "model_coords",
]

#: Name of the labels' data container.
LABELS_DATA = "labels_data"
#: Name of the row weights' data container (families with row weights).
WEIGHTS_DATA = "weights_data"
#: Name of the trials' data container (count families, the response ``p(k, m)``).
TRIALS_DATA = "trials_data"
#: Name of the potential that tempers a likelihood without row weights (``rate=``).
TEMPERING_TERM = f"{LOGLIK_VAR}__tempering"
#: :func:`build_sampling_model` collapses identical rows when that removes at least this
#: share of the rows (below it the saving per gradient is small and the model is the same).
AGGREGATE_MIN_SHARE = 0.1


def label_dims(description) -> tuple:
    """The dims of the labels: ``(obs,)`` or ``(obs, class)``."""
    return (OBS_DIM, CLASS_DIM) if description.family.multiclass else (OBS_DIM,)


def model_coords(description) -> dict:
    """The coords of the PyMC model of ``description``."""
    coords = {OBS_DIM: obs_coords(description.data)}
    if description.family.multiclass:
        coords[CLASS_DIM] = description.class_labels
        coords[CLASS_REDUCED_DIM] = description.class_labels[1:]
    coords.update(description.main.coords())
    if description.phi is not None:
        coords.update(description.phi.coords())
    return coords


def _likelihood_params(description):
    """The family's parameters as PyTensor expressions (in a model context)."""
    fused = description.fused and description.family.glm_kernel is not None
    eta, glm = description.main.build(description.priors, fused=fused,
                                      dtype=description.dtype)
    if description.family.multiclass:
        eta = pt.concatenate([pt.zeros((eta.shape[0], 1)), eta], axis=1)
    params = {"eta": eta}
    if description.family.takes_trials:
        params["trials"] = pm.Data(TRIALS_DATA, description.row_trials(description.data),
                                   dims=OBS_DIM)
    if "phi" in description.family.parameters:
        if description.phi is None:
            params["phi"] = description.priors["phi"].build("phi", shape=())
        else:
            params["phi"] = pt.exp(description.phi.build(description.priors)[0])
    for name, _, _ in description.family.scalar_parameters():
        params[name] = description.priors[name].build(name, shape=())
    if glm is not None:
        params["glm"] = glm
    return params


def build_pymc_model(description, labels=None, weights=None, *, rate=None) -> pm.Model:
    """The PyMC model of ``description``.

    Parameters
    ----------
    description : ModelDescription
    labels : ndarray, optional
        The labels as the likelihood sees them (default: the description's).
    weights : ndarray, optional
        Row weights (default: the description's).
    rate : float, optional
        Multiply the log-likelihood by ``rate`` (``calibrate="dispersion"``): through the
        row weights for families with row weights, else as a potential
        ``(rate - 1) * loglik`` beside the likelihood term.
    """
    labels = description.labels if labels is None else labels
    weights = description.weights if weights is None else weights
    return _build(description, labels, weights, rate)


def _build(description, labels, weights, rate, n_rows=None):
    # n_rows: the number of aggregated rows (the model then always has a weights container)
    family = description.family
    coords = model_coords(description)
    if n_rows is not None:
        coords[OBS_DIM] = np.arange(n_rows)
    with pm.Model(coords=coords) as m:
        with pytensor.config.change_flags(floatX=description.dtype):  # pm.Data's dtype
            labels = pm.Data(LABELS_DATA, np.asarray(labels), dims=label_dims(description))
        params = _likelihood_params(description)
        dims = OBS_DIM if family.multiclass else label_dims(description)
        if family.supports_weights or n_rows is not None:
            # a container (unit weights if none) so that refits and ADVI minibatches can
            # swap or rescale the rows' weights
            weights = (np.ones(len(coords[OBS_DIM])) if weights is None
                       else np.asarray(weights, float))
            if rate is not None:
                weights = weights * float(rate)
            weights = pm.Data(WEIGHTS_DATA, weights)
        term = family.add_likelihood(likelihood_var(description), labels, weights=weights,
                                     dims=dims, **params)
        if rate is not None and not family.supports_weights:
            # (rate - 1) times the same log-likelihood term (the fused one if fused)
            loglik = m.logp(vars=[term], sum=True, jacobian=False)
            pm.Potential(TEMPERING_TERM, (float(rate) - 1.0) * loglik)
    return m


def aggregated_rows(description):
    """``(first, labels, weights)`` of the distinct design rows of ``description``, or None
    when its likelihood does not aggregate (:attr:`Family.aggregates_rows
    <softbayes.terms.families.base.Family>` and a fused kernel).

    ``first[g]`` is the first row of group ``g``, ``labels[g]`` and ``weights[g]`` the
    group's weighted mean label and summed weight (:func:`aggregate_rows` on the design).
    """
    if not (description.family.aggregates_rows and description.likelihood_kernel == "fused"):
        return None
    _, labels, weights, index = aggregate_rows(description.main.design.X, description.labels,
                                               description.weights)
    first = np.unique(index, return_index=True)[1]
    return first, labels, weights


def build_sampling_model(description, *, always=False) -> pm.Model | None:
    """The model of the distinct design rows of ``description`` (see the module docstring),
    or None (sample :func:`build_pymc_model`) when its likelihood does not aggregate or,
    unless ``always``, aggregation removes fewer than :data:`AGGREGATE_MIN_SHARE` of the
    rows.

    Same variables as :func:`build_pymc_model`; its data containers (same names) hold the
    distinct rows, their mean labels and summed weights.
    """
    agg = aggregated_rows(description)
    if agg is None:
        return None
    first, labels, weights = agg
    if not always and len(first) > (1.0 - AGGREGATE_MIN_SHARE) * description.n_obs:
        return None
    m = _build(description, labels, weights, None, n_rows=len(first))
    name = description.main.data_names()["X"]
    m.set_data(name, m[name].get_value()[first])
    return m


def data_containers(description, pymc_model):
    """``({name: shared variable}, weights container or None)``: the row-indexed data
    containers of ``pymc_model`` (labels, designs, group columns and indices)."""
    names = [LABELS_DATA, TRIALS_DATA, *description.main.data_names().values()]
    if description.phi is not None:
        names += list(description.phi.data_names().values())
    data = {n: pymc_model.named_vars[n] for n in names if n in pymc_model.named_vars}
    return data, pymc_model.named_vars.get(WEIGHTS_DATA)
