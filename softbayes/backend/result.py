"""What every fit gets after its posterior is drawn: log-likelihood, predictive draws, data
groups and attrs.

:func:`complete_fit` is shared by NUTS (:class:`softbayes.backend.refit.Refitter`) and the
approximations (:mod:`softbayes.backend.approx`): the pointwise ``log_likelihood`` group, the
``posterior_predictive``, ``prior`` and ``prior_predictive`` groups (:func:`add_predictive`),
the ``observed_data``, ``constant_data`` and ``training_data`` groups, the centred intercepts
moved out of the posterior (:func:`softbayes.io.fits.hide_internal`) and the root attrs of
:class:`~softbayes.io.attrs.FitAttrs` (see :mod:`softbayes.model` for what a fit holds).

Predictive draws come from the family's own NumPy draws (:meth:`Family.draws`, the formula
that :func:`softbayes.predict` ``kind="pp"`` uses) on the posterior or prior draws of the
parameters: nothing is compiled for the posterior predictive, and the prior's parameters are
drawn by one small PyTensor function of the priors (``FAST_COMPILE``: no numba compilation).
What the draws are is in each group's attrs (:func:`predictive_attrs`): labels on the label
scale for the density families, hard outcomes (0/1 labels, one-hot rows) whose mean -- not
whose distribution -- matches the soft labels for the cross-entropy families.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pymc as pm
import xarray as xr

from softbayes._version import __version__
from softbayes.backend.build import label_dims
from softbayes.backend.log_likelihood import compute_log_likelihood
from softbayes.io.attrs import FitAttrs
from softbayes.io.fits import (
    OBS_DIM,
    TRAINING_GROUP,
    description_hashes,
    frame_to_dataset,
    hide_internal,
    likelihood_var,
    obs_coords,
    posterior_dataset,
)
from softbayes.terms.predictor import CLASS_DIM

__all__ = [
    "PREDICTIVE_MAX_VALUES",
    "PRIOR_DRAWS",
    "add_data_groups",
    "add_predictive",
    "complete_fit",
    "fit_attrs",
    "predictive_attrs",
    "predictive_dataset",
    "wants_predictive",
]

#: ``predictive=None`` adds the predictive groups when the posterior and prior predictive
#: together hold at most this many values (rows x (chains x draws + :data:`PRIOR_DRAWS`),
#: x classes for the multiclass families): 10 M values, 80 MB as float64 (n = 2 222 rows at
#: 4 x 1 000 draws).
PREDICTIVE_MAX_VALUES = 10_000_000
#: Draws of the ``prior`` and ``prior_predictive`` groups (one chain).
PRIOR_DRAWS = 500
#: Groups a sampler may write that :func:`complete_fit` replaces by its own.
_REPLACED = ("observed_data", "constant_data", "log_likelihood", "posterior_predictive",
             "prior", "prior_predictive")
#: What :meth:`Family.draws` gives, by the family's ``predictive_check``.
_DRAWS_ARE = {
    "density": "labels on the label scale (the kind observed)",
    "reliability": "hard outcomes (0/1 labels or one-hot rows), not soft labels: compare "
                   "their mean with the soft labels (reliability diagram, binned means)",
}


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
        n_obs=description.n_obs, log_likelihood_var=likelihood_var(description),
        log_likelihood_kind=family.log_likelihood_kind, sampler=sampler,
        random_seed=int(random_seed), draws=int(draws), tune=int(tune), chains=int(chains),
        likelihood_kernel=description.likelihood_kernel, method=method, dtype=description.dtype,
    )
    return attrs.replace(**description.labels_info)


def predictive_attrs(family) -> dict:
    """The attrs of a predictive group or variable of ``family``: ``family``,
    ``predictive_check`` (``"density"`` or ``"reliability"``, see
    :attr:`~softbayes.terms.families.base.Family.predictive_check`) and ``draws`` (what the
    draws are, in words)."""
    check = family.predictive_check
    return {"family": family.name, "predictive_check": check,
            "draws": _DRAWS_ARE.get(check, check)}


def predictive_dataset(description, values, sample_coords, obs, *, name=None) -> xr.Dataset:
    """Draws of the labels ``(chain, draw, obs[, class])`` as a Dataset: one variable named
    ``name`` (default: after the label columns, :func:`~softbayes.io.fits.likelihood_var`)
    with the observations' coords ``obs`` and the attrs of :func:`predictive_attrs`."""
    values = np.asarray(values, dtype=float)
    coords = dict(sample_coords)
    coords[OBS_DIM] = obs
    dims = ["chain", "draw", OBS_DIM]
    if values.ndim == 4:
        dims.append(CLASS_DIM)
        coords[CLASS_DIM] = description.class_labels
    attrs = predictive_attrs(description.family)
    da = xr.DataArray(values, dims=dims, coords=coords, attrs=attrs)
    return xr.Dataset({name or likelihood_var(description): da}, attrs=attrs)


def wants_predictive(predictive, description, chains, draws) -> bool:
    """Whether a fit gets its predictive groups: ``predictive`` if given, else when the
    posterior and prior predictive together hold at most :data:`PREDICTIVE_MAX_VALUES` values
    (the prior's draws count: at n = 100 000 they alone are 50 M labels, however short the
    fit)."""
    if predictive is not None:
        if not isinstance(predictive, bool | np.bool_):
            raise TypeError(f"predictive must be None, True or False, got {predictive!r}.")
        return bool(predictive)
    classes = len(description.class_labels) if description.family.multiclass else 1
    values = description.n_obs * (int(chains) * int(draws) + PRIOR_DRAWS) * classes
    return values <= PREDICTIVE_MAX_VALUES


def _prior_draws(pymc_model, draws, random_seed) -> xr.Dataset:
    """``draws`` prior draws of the parameters (free and deterministic variables)."""
    names = [v.name for v in (*pymc_model.free_RVs, *pymc_model.deterministics)]
    logger = logging.getLogger("pymc.sampling.forward")
    level = logger.level
    logger.setLevel(logging.WARNING)  # PyMC's "Sampling: [...]" line, once per fit
    try:
        with warnings.catch_warnings():
            # the likelihood of the cross-entropy families is a potential: the prior leaves
            # it out, which is what a prior is
            warnings.filterwarnings("ignore", message="The effect of Potentials",
                                    category=UserWarning)
            prior = pm.sample_prior_predictive(draws=draws, model=pymc_model, var_names=names,
                                               random_seed=random_seed,
                                               compile_kwargs={"mode": "FAST_COMPILE"})
    finally:
        logger.setLevel(level)
    return prior["prior"].to_dataset()


def _label_draws(description, params_of, rng):
    with np.errstate(all="ignore"):  # extreme prior draws give atoms, not errors
        return description.family.draws(rng, **description.params(params_of, rng=rng))


def add_predictive(idata, description, pymc_model, *, random_seed):
    """Add ``posterior_predictive`` (one draw of the labels per posterior draw), ``prior``
    (:data:`PRIOR_DRAWS` draws of the parameters) and ``prior_predictive`` (the labels of
    each) to ``idata``, seeded by ``random_seed``."""
    obs = obs_coords(description.data)
    seeds = np.random.SeedSequence(int(random_seed)).spawn(3)
    post = posterior_dataset(idata)
    sample = {"chain": post["chain"].values, "draw": post["draw"].values}
    pp = _label_draws(description, post, np.random.default_rng(seeds[0]))
    idata["posterior_predictive"] = predictive_dataset(description, pp, sample, obs)
    prior = _prior_draws(pymc_model, PRIOR_DRAWS, int(seeds[1].generate_state(1)[0]))
    idata["prior"] = prior
    sample = {"chain": prior["chain"].values, "draw": prior["draw"].values}
    draws = _label_draws(description, prior, np.random.default_rng(seeds[2]))
    idata["prior_predictive"] = predictive_dataset(description, draws, sample, obs)
    return idata


def add_data_groups(idata, description):
    """Add ``observed_data`` (the labels as the likelihood saw them), ``constant_data``
    (``X``, ``X_phi``, ``weights``) and ``training_data`` (the used columns), over the
    observations' coords (:func:`~softbayes.io.fits.obs_coords`)."""
    obs = obs_coords(description.data)
    coords = {OBS_DIM: obs}
    if description.family.multiclass:
        coords[CLASS_DIM] = description.class_labels
    idata["observed_data"] = xr.Dataset(
        {likelihood_var(description): (label_dims(description), description.labels)},
        coords=coords)
    const = {"X": ((OBS_DIM, "coef"), description.main.design.X)}
    cc = {OBS_DIM: obs, "coef": description.main.design.common_labels}
    if description.phi is not None:
        const["X_phi"] = ((OBS_DIM, "phi_coef"), description.phi.design.X)
        cc["phi_coef"] = description.phi.design.common_labels
    if description.weights is not None:
        const["weights"] = ((OBS_DIM,), description.weights)
    idata["constant_data"] = xr.Dataset(const, coords=cc)
    idata[TRAINING_GROUP] = frame_to_dataset(description.data)
    return idata


def complete_fit(idata, description, pymc_model, attrs: FitAttrs, *, log_likelihood=True,
                 max_log_likelihood_values=None, predictive=None) -> int:
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
        Written as the fit's root attrs (its ``random_seed`` seeds the predictive draws).
    log_likelihood : bool, default True
    max_log_likelihood_values : int, optional
        Cap on ``chains * draws * n`` values: beyond it the log-likelihood is computed on
        the first draws of each chain that fit.
    predictive : bool, optional
        Add the predictive groups (:func:`add_predictive`); None: when
        :func:`wants_predictive` says so (at most :data:`PREDICTIVE_MAX_VALUES` values,
        prior predictive included).
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
    if wants_predictive(predictive, description, post.sizes["chain"], draws):
        seed = attrs.random_seed if attrs.random_seed is not None else 0
        add_predictive(idata, description, pymc_model, random_seed=seed)
    add_data_groups(idata, description)
    hide_internal(idata, description)
    attrs.write(idata)
    return ll_draws
