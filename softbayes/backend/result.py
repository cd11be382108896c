"""What every fit gets after its posterior is drawn: log-likelihood, data groups and attrs.

:func:`complete_fit` is shared by NUTS (:class:`softbayes.backend.refit.Refitter`) and the
approximations (:mod:`softbayes.backend.approx`): the pointwise ``log_likelihood`` group, the
``observed_data``, ``constant_data`` and ``training_data`` groups and the root attrs of
:class:`~softbayes.io.attrs.FitAttrs` (see :mod:`softbayes.model` for what a fit holds).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from softbayes._version import __version__
from softbayes.backend.build import label_dims
from softbayes.backend.log_likelihood import compute_log_likelihood
from softbayes.io.attrs import FitAttrs
from softbayes.io.fits import (
    LOGLIK_VAR,
    OBS_DIM,
    TRAINING_GROUP,
    description_hashes,
    frame_to_dataset,
)
from softbayes.terms.predictor import CLASS_DIM

__all__ = ["add_data_groups", "complete_fit", "fit_attrs"]

#: Groups a sampler may write that :func:`complete_fit` replaces by its own.
_REPLACED = ("observed_data", "constant_data", "log_likelihood")


def fit_attrs(description, *, sampler, random_seed, draws, tune, chains, method) -> FitAttrs:
    """The attrs every fit of ``description`` records (with the labels' preparation facts)."""
    dh, lh = description_hashes(description)
    family = description.family
    priors = {k: {"dist": p.dist, "kwargs": {a: v for a, v in p.to_dict().items() if a != "dist"},
                  "source": p.source}
              for k, p in description.priors.items()}
    attrs = FitAttrs(
        version=__version__, family=family.name, formula=description.formula,
        phi_formula=description.phi_formula or "", label_columns=description.class_labels,
        options=description.options(), priors=priors, data_hash=dh, labels_hash=lh,
        n_obs=description.n_obs, log_likelihood_var=LOGLIK_VAR,
        log_likelihood_kind=family.log_likelihood_kind, sampler=sampler,
        random_seed=int(random_seed), draws=int(draws), tune=int(tune), chains=int(chains),
        likelihood_kernel=description.likelihood_kernel, method=method,
    )
    return attrs.replace(**description.labels_info)


def add_data_groups(idata, description):
    """Add ``observed_data`` (the labels as the likelihood saw them), ``constant_data``
    (``X``, ``X_phi``, ``weights``) and ``training_data`` (the used columns)."""
    n = description.n_obs
    coords = {OBS_DIM: np.arange(n)}
    if description.family.multiclass:
        coords[CLASS_DIM] = description.class_labels
    idata["observed_data"] = xr.Dataset(
        {LOGLIK_VAR: (label_dims(description), description.labels)}, coords=coords)
    const = {"X": ((OBS_DIM, "coef"), description.main.design.X)}
    cc = {OBS_DIM: np.arange(n), "coef": description.main.design.common_labels}
    if description.phi is not None:
        const["X_phi"] = ((OBS_DIM, "phi_coef"), description.phi.design.X)
        cc["phi_coef"] = description.phi.design.common_labels
    if description.weights is not None:
        const["weights"] = ((OBS_DIM,), description.weights)
    idata["constant_data"] = xr.Dataset(const, coords=cc)
    idata[TRAINING_GROUP] = frame_to_dataset(description.data)
    return idata


def complete_fit(idata, description, pymc_model, attrs: FitAttrs, *, log_likelihood=True,
                 max_log_likelihood_values=None) -> int:
    """Finish the DataTree ``idata`` of a posterior in place; returns the number of draws per
    chain the log-likelihood was computed on (0 without it).

    Parameters
    ----------
    idata : xarray.DataTree
        With a ``posterior`` group.
    description : ModelDescription
    pymc_model : pm.Model
        The (untempered) model whose likelihood gives the pointwise log-likelihood.
    attrs : FitAttrs
        Written as the fit's root attrs.
    log_likelihood : bool, default True
    max_log_likelihood_values : int, optional
        Cap on ``chains * draws * n`` values: beyond it the log-likelihood is computed on
        the first draws of each chain that fit.
    """
    for group in _REPLACED:
        if group in idata.children:
            del idata[group]
    post = idata["posterior"]
    draws = post.sizes["draw"]
    ll_draws = 0
    if log_likelihood:
        ll_draws = draws
        if max_log_likelihood_values is not None:
            per_draw = max(1, description.n_obs * post.sizes["chain"])
            ll_draws = int(min(draws, max(1, max_log_likelihood_values // per_draw)))
        if ll_draws < draws:
            sub = xr.DataTree.from_dict(
                {"posterior": post.to_dataset().isel(draw=slice(0, ll_draws))})
            idata["log_likelihood"] = compute_log_likelihood(sub, model=pymc_model,
                                                             extend_inferencedata=False)
        else:
            compute_log_likelihood(idata, model=pymc_model)
    add_data_groups(idata, description)
    attrs.write(idata)
    return ll_draws
